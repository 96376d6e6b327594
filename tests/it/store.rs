//! The store, proven with the built binary started, stopped, killed and restarted on one
//! `--state.dir` against a fixture tree (issue 10): since and transitions survive restarts,
//! kill -9 never leaves a store that does not load or that lost a completed write, two
//! agents cannot share a directory, remembered members and vanished groups, `forget`.
//!
//! `SPAREWATCH_BIN` runs these against another build (the release binary) than the one
//! cargo built for the tests.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sparewatch::fixture::SysTree;

use crate::support::{metric_value, RunningAgent};

/// A fixture tree with `bond0` over `slaves` (active-backup) and a config polling net
/// every 100 ms.
fn tree(dir: &Path, slaves: &[&str]) -> SysTree {
    let t = SysTree::new(dir).expect("tree");
    for s in slaves {
        t.nic(s).expect("nic");
    }
    t.bond("bond0", "active-backup 1", slaves, 0).expect("bond");
    std::fs::write(
        dir.join("config.yml"),
        "collectors:\n  net:\n    interval: 100ms\n",
    )
    .expect("config");
    t
}

fn common_args(dir: &Path, state: &Path) -> Vec<String> {
    vec![
        "--collector.disable-defaults".into(),
        "--collector.net".into(),
        format!("--path.sysfs={}", dir.join("sys").display()),
        format!("--path.procfs={}", dir.join("proc").display()),
        format!("--path.rootfs={}", dir.display()),
        format!("--config.file={}", dir.join("config.yml").display()),
        format!("--state.dir={}", state.display()),
        "--engine.hold-down=100ms".into(),
    ]
}

/// The agent on the store's fixture tree and state dir.
struct Agent;

impl Agent {
    fn start(dir: &Path, state: &Path) -> RunningAgent {
        let mut args = vec!["run".to_string()];
        args.extend(common_args(dir, state));
        RunningAgent::start(&args, dir, "bond0")
    }
}

fn state_is(text: &str, group: &str, state: &str) -> bool {
    metric_value(
        text,
        &format!("sparewatch_group_state{{group=\"{group}\",kind=\"bond\",state=\"{state}\",by_design=\"false\"}}"),
    ) == Some(1.0)
}

fn since_and_transitions(text: &str) -> (f64, f64) {
    let g = "{group=\"bond:bond0\",kind=\"bond\"}";
    (
        metric_value(
            text,
            &format!("sparewatch_group_state_since_timestamp_seconds{g}"),
        )
        .expect("since"),
        metric_value(
            text,
            &format!("sparewatch_group_state_transitions_total{g}"),
        )
        .expect("transitions"),
    )
}

fn stored(state: &Path) -> Option<sparewatch::store::PersistedGroup> {
    let bytes = std::fs::read(state.join("groups.json")).ok()?;
    let p = sparewatch::store::parse(&bytes).expect("the store always loads");
    p.groups.get("bond:bond0").cloned()
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(crate::support::agent_bin())
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn ten_restarts_keep_since_and_transitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path(), &["eth0", "eth1"]);
    let state = dir.path().join("state");
    // Redundant, then the standby fails: no_redundancy with one transition.
    let a = Agent::start(dir.path(), &state);
    a.wait_for("redundant", |m| state_is(m, "bond:bond0", "redundant"));
    t.link("eth1", false).expect("link");
    let first = a.wait_for("no_redundancy", |m| {
        state_is(m, "bond:bond0", "no_redundancy")
    });
    let want = since_and_transitions(&first);
    assert_eq!(want.1, 1.0);
    let t0 = Instant::now();
    while stored(&state).is_none_or(|g| g.state != "no_redundancy") {
        assert!(t0.elapsed() < Duration::from_secs(5), "never written");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.stop();
    for i in 0..10 {
        let a = Agent::start(dir.path(), &state);
        let m = a.wait_for("bond0 reported", |m| {
            metric_value(
                m,
                "sparewatch_group_state_transitions_total{group=\"bond:bond0\",kind=\"bond\"}",
            )
            .is_some()
        });
        assert!(
            state_is(&m, "bond:bond0", "no_redundancy"),
            "restart {i}: not no_redundancy:\n{}\nlog:\n{}",
            m.lines()
                .filter(|l| l.contains("bond0") || l.contains("collector_up"))
                .collect::<Vec<_>>()
                .join("\n"),
            std::fs::read_to_string(&a.log).unwrap_or_default()
        );
        assert_eq!(
            since_and_transitions(&m),
            want,
            "restart {i}: since/transitions moved"
        );
        // A few more passes: still the same, on the wire and on disk.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(since_and_transitions(&a.scrape()), want, "restart {i}");
        let g = stored(&state).expect("stored");
        assert_eq!(
            (g.since, g.transitions as f64),
            want,
            "restart {i}: on disk"
        );
        a.stop();
    }
}

#[test]
fn kill_9_at_random_moments_never_loses_a_completed_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path(), &["eth0", "eth1"]);
    let state = dir.path().join("state");
    // States change all the time: eth1 flaps every 40 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flapper = {
        let stop = stop.clone();
        let root = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let t = SysTree::new(&root).expect("tree");
            let mut up = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = t.link("eth1", up);
                up = !up;
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let _ = t;
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut last_transitions = 0;
    let mut writes_seen = 0;
    let mut last_bytes = Vec::new();
    for i in 0..200 {
        let mut a = Agent::start(dir.path(), &state);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 250));
        let _ = a.child.kill();
        let _ = a.child.wait();
        // The store always loads (or is not there yet) ...
        let bytes = std::fs::read(state.join("groups.json")).unwrap_or_default();
        if bytes.is_empty() {
            assert_eq!(last_transitions, 0, "kill {i}: a written store disappeared");
            continue;
        }
        let p = sparewatch::store::parse(&bytes)
            .unwrap_or_else(|e| panic!("kill {i}: the store does not load: {e}"));
        // ... and nothing a completed write held is lost: transitions only grow.
        let g = p.groups.get("bond:bond0").expect("bond0 kept");
        assert!(
            g.transitions >= last_transitions,
            "kill {i}: transitions went back from {last_transitions} to {}",
            g.transitions
        );
        last_transitions = g.transitions;
        if bytes != last_bytes {
            writes_seen += 1;
            last_bytes = bytes;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = flapper.join();
    // The test is only worth something if the kills hit an agent that was writing.
    assert!(
        writes_seen >= 50 && last_transitions >= 50,
        "only {writes_seen} distinct stores, {last_transitions} transitions"
    );
    // Temp files of killed writers are removed by the next agent, under the lock.
    let a = Agent::start(dir.path(), &state);
    a.wait_for("bond0", |m| m.contains("bond:bond0"));
    let temps: Vec<_> = std::fs::read_dir(&state)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temps.len() <= 1, "left-over temp files: {temps:?}");
    println!(
        "kill -9 x200: {writes_seen} distinct stores seen, {last_transitions} transitions kept"
    );
}

#[test]
fn a_second_agent_on_the_same_state_dir_exits_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path(), &["eth0", "eth1"]);
    let state = dir.path().join("state");
    let a = Agent::start(dir.path(), &state);
    a.wait_for("first agent up", |m| m.contains("bond:bond0"));
    let mut b = Agent::start(dir.path(), &state);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = b.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "second agent keeps running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&b.log).expect("log");
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("in use by another sparewatch agent")
            && log.contains(&state.display().to_string()),
        "{log}"
    );
    // The first one is unharmed.
    a.wait_for("first agent still up", |m| m.contains("bond:bond0"));
}

#[test]
fn remembered_member_vanished_bond_and_forget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path(), &["eth0", "eth1", "eth2"]);
    let state = dir.path().join("state");
    let s = state.to_str().expect("utf8").to_string();
    let a = Agent::start(dir.path(), &state);
    a.wait_for("redundant 3/3", |m| {
        state_is(m, "bond:bond0", "redundant")
            && metric_value(
                m,
                "sparewatch_group_members{group=\"bond:bond0\",kind=\"bond\"}",
            ) == Some(3.0)
    });
    // eth2 leaves the bond entirely (driver died, `nomaster`).
    t.set("sys/class/net/bond0/bonding/slaves", "eth0 eth1")
        .expect("slaves");
    let m = a.wait_for("degraded 2/3", |m| state_is(m, "bond:bond0", "degraded"));
    assert_eq!(
        metric_value(
            &m,
            "sparewatch_group_members{group=\"bond:bond0\",kind=\"bond\"}"
        ),
        Some(3.0)
    );
    assert!(
        m.lines().any(|l| l.starts_with(
            "sparewatch_member_healthy{group=\"bond:bond0\",kind=\"bond\",member=\"eth2\""
        ) && l.ends_with(" 0")),
        "eth2 listed unhealthy"
    );
    a.stop();

    // Stopped: `status` shows the memory and writes nothing.
    let mut status_args = vec!["status", "--format", "json"];
    let common = common_args(dir.path(), &state);
    status_args.extend(common.iter().map(String::as_str));
    let before = std::fs::read(state.join("groups.json")).expect("stored");
    let out = cli(&status_args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["groups"][0]["state"], "degraded");
    let eth2 = &json["groups"][0]["members"][2];
    assert_eq!(eth2["name"], "eth2");
    assert!(
        eth2["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("absent since ")),
        "{eth2}"
    );
    assert_eq!(
        std::fs::read(state.join("groups.json")).expect("stored"),
        before
    );

    // Forget while stopped: unknown names refused, eth2 forgotten.
    let out = cli(&["forget", "--state.dir", &s, "bond:bond0/eth9"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no remembered member eth9"));
    let out = cli(&["forget", "--state.dir", &s, "bond:bond0/eth2"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "forgot member eth2 of group bond:bond0\n"
    );
    let out = cli(&status_args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["groups"][0]["state"], "redundant");

    // The bond is deleted while the agent is down: after the restart it is unknown,
    // "vanished at", until forgotten while the agent runs.
    std::fs::remove_dir_all(t.net("bond0")).expect("rm bond0");
    let a = Agent::start(dir.path(), &state);
    let m = a.wait_for("bond0 unknown", |m| state_is(m, "bond:bond0", "unknown"));
    assert_eq!(
        metric_value(
            &m,
            "sparewatch_group_spare{group=\"bond:bond0\",kind=\"bond\"}"
        ),
        Some(0.0),
        "an unknown group's spare is never negative"
    );
    let out = cli(&status_args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        json["groups"][0]["members"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("group vanished at ")),
        "{json}"
    );
    let out = cli(&["forget", "--state.dir", &s, "bond:bond9"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no group bond:bond9"));
    let t0 = Instant::now();
    let out = cli(&["forget", "--state.dir", &s, "bond:bond0"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "forgot group bond:bond0 (applied by the running agent)\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.wait_for("bond0 gone", |m| {
        m.contains("sparewatch_collector_up") && !m.contains("bond:bond0")
    });
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(stored(&state).is_none());
    a.stop();
}

#[test]
fn status_and_check_never_write_the_state_dir() {
    // hwmon remembers fans and group sizes: a one-shot run reads that memory, never writes.
    let fixture = crate::support::fixture("hwmon-redundant");
    let state = tempfile::tempdir().expect("tempdir");
    let s = format!("--state.dir={}", state.path().display());
    for cmd in ["status", "check"] {
        let mut a = vec![cmd.to_string(), s.clone()];
        a.extend(crate::support::fixture_args(&fixture));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = cli(&a);
        assert!(
            out.status.code().is_some_and(|c| c < 3),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left: Vec<_> = std::fs::read_dir(state.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{cmd} wrote {left:?}");
    }
}
