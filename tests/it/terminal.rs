//! The operator's terminal: `status -v`, colour only on a terminal without `NO_COLOR`,
//! `status --watch` redrawing when a fixture changes, and `explain GROUP`, all with the
//! built binary.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::monitoring::{copy_tree, set_link};
use crate::support::*;

fn net_args(dir: &std::path::Path, first: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    a.push("--collector.disable-defaults".into());
    a.push("--collector.net".into());
    a.extend(fixture_args(dir));
    a
}

fn run(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sparewatch(&refs)
}

#[test]
fn status_verbose_lists_members_under_each_group() {
    let out = run(&net_args(&fixture("net-standby-lost"), &["status", "-v"]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("bond:bond0"))
        .unwrap_or_else(|| panic!("bond0 row: {text}"));
    assert!(
        lines[at + 1].contains("eth0")
            && lines[at + 1].contains("active")
            && lines[at + 1].contains("healthy"),
        "{text}"
    );
    assert!(
        lines[at + 2].contains("eth1")
            && lines[at + 2].contains("standby")
            && lines[at + 2].contains("UNHEALTHY")
            && lines[at + 2].contains("mii down"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text:?}");
    // Without -v: one line per group.
    let out = run(&net_args(&fixture("net-standby-lost"), &["status"]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("eth0  active"));
}

/// `status` with stdout on a pseudo-terminal (util-linux `script`).
fn status_on_a_terminal(no_color: Option<&str>) -> String {
    let args = net_args(&fixture("net-standby-lost"), &["status"]);
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_sparewatch").to_string())
        .chain(args)
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c
        .output()
        .expect("script runs: install the Debian package util-linux (bsdutils on older releases)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let tty = status_on_a_terminal(None);
    assert!(
        tty.contains("\x1b[1;33mno_redundancy"),
        "state coloured on a terminal: {tty:?}"
    );
    let plain = status_on_a_terminal(Some("1"));
    assert!(plain.contains("no_redundancy"), "{plain:?}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR=1 turns colour off: {plain:?}"
    );
    // no-color.org: an empty NO_COLOR does not count.
    assert!(status_on_a_terminal(Some("")).contains('\x1b'));
}

#[test]
fn watch_redraws_when_the_fixture_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    copy_tree(&fixture("net-healthy"), &tree);
    let config = dir.path().join("watch.yml");
    std::fs::write(&config, "collectors:\n  net:\n    interval: 300ms\n").expect("config");
    let mut args = net_args(&tree, &["status", "--watch", "--engine.hold-down", "1s"]);
    args.push("--config.file".into());
    args.push(config.display().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                return;
            }
        }
    });
    let mut seen = String::new();
    let wait = |what: &str, pred: &dyn Fn(&str) -> bool, seen: &mut String| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if pred(seen) {
                return;
            }
            if let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push_str(&s);
            }
        }
        panic!("--watch never showed {what}:\n{seen}");
    };
    let row = |text: &str, state: &str| {
        text.lines()
            .any(|l| l.starts_with("bond:bond0") && l.contains(state))
    };
    wait("bond0 redundant", &|s| row(s, "redundant"), &mut seen);
    set_link(&tree, "eth1", false);
    wait(
        "bond0 without redundancy",
        &|s| row(s, "no_redundancy") && s.contains("eth1 (standby): mii down"),
        &mut seen,
    );
    let before = seen.len();
    set_link(&tree, "eth1", true);
    wait(
        "bond0 redundant again",
        &|s| row(&s[before..], "redundant"),
        &mut seen,
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn explain_says_why_bond0_has_no_redundancy() {
    let out = run(&net_args(
        &fixture("net-standby-lost"),
        &["explain", "bond:bond0"],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "bond:bond0 (bond group, collector net) is no_redundancy since",
        "spare = 0: it works, but it runs on its last member",
        "The function needs 1 healthy member; 1 of 2 is healthy, so spare = 1 - 1 = 0.",
        "eth1  standby  UNHEALTHY: mii down",
        "counts again after 5s healthy",
        "Failure domains",
        "Bring back or replace eth1 (standby)",
        "/proc/net/bonding/bond0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let out = run(&net_args(
        &fixture("net-standby-lost"),
        &["explain", "bond:bond9"],
    ));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no group \"bond:bond9\"") && err.contains("bond:bond0"),
        "{err}"
    );
}

/// A drill history in a state dir, as `sparewatch drill` writes it (through its own store).
fn state_with_drill(result: &str, ago_secs: f64) -> tempfile::TempDir {
    use sparewatch::drill::store::{DrillStore, FileStore, Record};
    let dir = tempfile::tempdir().expect("tempdir");
    let now = sparewatch::snapshot::unix(std::time::SystemTime::now());
    FileStore::new(dir.path())
        .append_history(Record {
            group: "bond:bond0".into(),
            kind: "bond".into(),
            result: result.into(),
            finished: now - ago_secs,
            failover_seconds: Some(0.312),
            failback_seconds: Some(0.298),
            probes_lost: Some(0),
            detail: String::new(),
        })
        .expect("drill history");
    dir
}

#[test]
fn status_shows_effective_spare_and_the_last_drill() {
    // Both slaves of bond0 on one card: spare 1, effective 0.
    let tree = fixture("domains-bond-one-card");
    let state = state_with_drill("passed", 3.0 * 86400.0);
    let history = state.path().join(sparewatch::drill::store::HISTORY_FILE);
    let before = std::fs::read(&history).expect("history");
    let state_arg = state.path().display().to_string();
    let out = run(&net_args(&tree, &["status", "--state.dir", &state_arg]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let header = text.lines().next().expect("header");
    assert!(
        header.contains("SPARE") && header.contains("LAST DRILL"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("bond:bond0"))
        .unwrap_or_else(|| panic!("bond0 row: {text}"));
    assert!(row.contains("1 (effective 0: card 0000:3b:00)"), "{row}");
    assert!(
        row.contains("passed 3days ago (failover 0.31s, failback 0.30s)"),
        "{row}"
    );
    // The same through the API shape.
    let out = run(&net_args(
        &tree,
        &["status", "--format", "json", "--state.dir", &state_arg],
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let g = &v["groups"][0];
    assert_eq!(g["name"], "bond:bond0");
    assert_eq!(g["domains"]["effective_spare"], 0);
    assert_eq!(g["domains"]["shared"][0]["id"], "0000:3b:00");
    assert_eq!(g["last_drill"]["result"], "passed");
    assert_eq!(g["last_drill"]["failover_seconds"], 0.312);
    // `explain` says both.
    let out = run(&net_args(
        &tree,
        &["explain", "bond:bond0", "--state.dir", &state_arg],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "Effective spare 0, lower than the spare 1",
        "2 healthy members share card 0000:3b:00.",
        "Last drill",
        "bond drill passed, ended ",
        "takeover 0.312s, failback 0.298s, 0 probes lost.",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // Read only: the one-shot commands left the history as it was.
    assert_eq!(std::fs::read(&history).expect("history"), before);
    // Without a state dir there is no history: "never", and explain says so.
    let out = run(&net_args(&tree, &["status"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("bond:bond0"))
        .unwrap_or_else(|| panic!("bond0 row: {text}"));
    assert!(row.contains("  never"), "{row}");
    let out = run(&net_args(&tree, &["explain", "bond:bond0"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("None recorded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
