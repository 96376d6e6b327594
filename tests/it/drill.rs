//! `sparewatch drill` on fixture trees: every guardrail refuses with a clear message, exit 1,
//! and nothing written (neither the tree nor the state dir); the drill's own flow (journal,
//! rollback on SIGINT, rollback by the next start after SIGKILL, the history rendered as
//! metrics) with the built binary. The drills against a real kernel are in the lab
//! (tests/lab/scenarios/drill.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sparewatch::fixture::SysTree;

use crate::support::*;

/// Every file and link under `dir` with its content and mtime: "nothing written" is this
/// map unchanged.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, Option<std::time::SystemTime>)> {
    let mut m = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                todo.push(p.clone());
            }
            let content = if meta.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                std::fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            m.insert(p, (content, meta.modified().ok()));
        }
    }
    m
}

/// A host with two active-backup bonds over four NICs, bond1's standby link down when
/// `bond1_broken`; rootfs with an `arping` that answers (for the flow tests).
fn host(bond1_broken: bool) -> (tempfile::TempDir, SysTree) {
    let d = tempfile::tempdir().expect("tempdir");
    let t = SysTree::new(d.path()).expect("tree");
    for n in ["eth0", "eth1", "eth2", "eth3"] {
        t.nic(n).expect("nic");
    }
    t.bond("bond0", "active-backup 1", &["eth0", "eth1"], 0)
        .expect("bond0");
    t.bond("bond1", "active-backup 1", &["eth2", "eth3"], 0)
        .expect("bond1");
    if bond1_broken {
        t.link("eth3", false).expect("link");
    }
    (d, t)
}

fn args(root: &Path, state: &Path, extra: &[&str]) -> Vec<String> {
    args_with("--collector.net", root, state, extra)
}

/// [`args`] with another collector than net.
fn args_with(collector: &str, root: &Path, state: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    a.extend(
        [
            "--collector.disable-defaults",
            collector,
            "--path.sysfs",
            &root.join("sys").display().to_string(),
            "--path.procfs",
            &root.join("proc").display().to_string(),
            "--path.rootfs",
            &root.display().to_string(),
            "--state.dir",
            &state.display().to_string(),
        ]
        .map(String::from),
    );
    a
}

/// Runs `drill` and asserts a refusal: exit 1, the reason on stderr, nothing written.
fn refused(root: &Path, extra: &[&str], reason: &str) -> String {
    let state = tempfile::tempdir().expect("state dir");
    let before = tree(root);
    let a = args(root, state.path(), extra);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = sparewatch(&refs);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit code of {extra:?}: {err}");
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains(reason), "expected {reason:?} in: {err}");
    assert!(err.contains("Nothing was changed"), "{err}");
    assert_eq!(tree(root), before, "the host tree was written to");
    assert_eq!(
        std::fs::read_dir(state.path()).expect("ls").count(),
        0,
        "the state dir was written to"
    );
    err
}

#[test]
fn the_drilled_group_not_redundant_is_refused() {
    let (d, t) = host(false);
    t.link("eth1", false).expect("link");
    refused(
        d.path(),
        &["drill", "bond:bond0", "--yes"],
        "bond:bond0 is no_redundancy, not redundant",
    );
    // --force does not override this one.
    refused(
        d.path(),
        &["drill", "bond:bond0", "--yes", "--force"],
        "not redundant",
    );
}

#[test]
fn another_group_not_redundant_is_refused_unless_forced() {
    let (d, _t) = host(true);
    let err = refused(
        d.path(),
        &["drill", "bond:bond0", "--yes"],
        "bond:bond1 is no_redundancy",
    );
    assert!(err.contains("--force"), "{err}");
    // --force lets the plan through (printed, nothing run).
    let state = tempfile::tempdir().expect("state");
    let before = tree(d.path());
    let a = args(
        d.path(),
        state.path(),
        &["drill", "bond:bond0", "--plan", "--force"],
    );
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = sparewatch(&refs);
    let so = exit_with(&out, 0);
    assert!(so.contains("make eth1 the active slave of bond0"), "{so}");
    assert_eq!(tree(d.path()), before);
    assert_eq!(std::fs::read_dir(state.path()).expect("ls").count(), 0);
}

#[test]
fn psu_and_fan_have_no_safe_drill_and_say_what_to_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("host");
    crate::monitoring::copy_tree(&fixture("hwmon-redundant"), &root);
    assert!(root.join("sys/class/hwmon").is_dir());
    for (group, hint) in [
        ("psu:pmbus", "pull the power cord"),
        ("fan:nct6775", "fan zone"),
    ] {
        let state = tempfile::tempdir().expect("state");
        let before = tree(root.as_path());
        let out = sparewatch(&[
            "drill",
            group,
            "--yes",
            "--collector.disable-defaults",
            "--collector.hwmon",
            "--path.sysfs",
            &root.as_path().join("sys").display().to_string(),
            "--state.dir",
            &state.path().display().to_string(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("no software drill"), "{err}");
        assert!(err.contains(hint), "{err}");
        assert_eq!(tree(root.as_path()), before);
        assert_eq!(std::fs::read_dir(state.path()).expect("ls").count(), 0);
    }
}

#[test]
fn a_kind_without_drill_and_an_unknown_group_are_refused() {
    let hw = fixture("hwraid-optimal");
    let state = tempfile::tempdir().expect("state");
    let out = sparewatch(&[
        "drill",
        "hwraid:c0/v0",
        "--yes",
        "--collector.disable-defaults",
        "--collector.hwraid",
        "--path.rootfs",
        &hw.display().to_string(),
        "--path.sysfs",
        &hw.join("sys").display().to_string(),
        "--state.dir",
        &state.path().display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hwraid:c0/v0 is of kind hwraid, which has no safe drill"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(state.path()).expect("ls").count(), 0);
    let (d, _t) = host(false);
    refused(
        d.path(),
        &["drill", "bond:bond9", "--yes"],
        "no group \"bond:bond9\" on this host (groups: bond:bond0, bond:bond1)",
    );
}

#[test]
fn stale_agent_data_is_refused_even_with_force() {
    let (d, _t) = host(false);
    // A smartctl whose output is cut off: the smart collector is down.
    let sbin = d.path().join("usr/sbin");
    std::fs::create_dir_all(&sbin).expect("mkdir");
    std::fs::copy(
        fixture("smart-scan-broken").join("usr/sbin/smartctl"),
        sbin.join("smartctl"),
    )
    .expect("copy");
    refused(
        d.path(),
        &[
            "drill",
            "bond:bond0",
            "--yes",
            "--force",
            "--collector.smart",
        ],
        "the agent's data is stale or broken",
    );
}

/// A drill journal in `state` owned by a live process (a `sleep` started here, to be
/// killed by the caller), as a manual drill running in another process leaves it.
fn live_journal(state: &Path) -> (std::process::Child, String) {
    let sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    let pid = sleeper.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let start: u64 = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().nth(19)?.parse().ok())
        .expect("start time");
    let journal = format!(
        r#"{{"version":1,"pid":{pid},"pid_start":{start},"group":"bond:bond1","kind":"bond","started":1.0,
            "undo":[{{"undo":"active_slave","bond":"bond1","slave":"eth2"}}]}}"#
    );
    std::fs::write(state.join("drill-journal.json"), &journal).expect("journal");
    (sleeper, journal)
}

#[test]
fn another_drill_running_is_refused() {
    let (d, _t) = host(false);
    let state = tempfile::tempdir().expect("state");
    let (mut sleeper, journal) = live_journal(state.path());
    let jpath = state.path().join("drill-journal.json");
    let before = tree(d.path());
    let a = args(d.path(), state.path(), &["drill", "bond:bond0", "--yes"]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = sparewatch(&refs);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another drill is running"), "{err}");
    assert_eq!(tree(d.path()), before);
    assert_eq!(std::fs::read_to_string(&jpath).expect("journal"), journal);
    assert_eq!(std::fs::read_dir(state.path()).expect("ls").count(), 1);
}

#[test]
fn no_state_dir_or_no_confirmation_is_refused() {
    let (d, _t) = host(false);
    let before = tree(d.path());
    let out = sparewatch(&[
        "drill",
        "bond:bond0",
        "--yes",
        "--drill.probe-target",
        "192.0.2.1",
        "--collector.disable-defaults",
        "--collector.net",
        "--path.sysfs",
        &d.path().join("sys").display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs --state.dir"), "{err}");
    assert_eq!(tree(d.path()), before);
    // Without --yes and without a terminal to ask on: not confirmed.
    refused(
        d.path(),
        &["drill", "bond:bond0", "--drill.probe-target", "192.0.2.1"],
        "not confirmed",
    );
}

/// Asserts the exit code; returns stdout (both streams shown when it differs).
fn exit_with(out: &std::process::Output, code: i32) -> String {
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{so}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

// ---- The drill's own flow, with the built binary --------------------------------------
//
// The fixture tree's `active_slave` is a plain file: what the drill writes reads back at
// once, as the kernel's does after a switch. The probe is an `arping` in the tree's rootfs
// that answers; the real ARP through a real bond is proven in the lab.

fn answering_arping(root: &Path) {
    let sbin = root.join("usr/sbin");
    std::fs::create_dir_all(&sbin).expect("mkdir");
    let p = sbin.join("arping");
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&p).expect("meta").permissions(),
        0o755,
    );
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
}

fn active(root: &Path) -> String {
    std::fs::read_to_string(root.join("sys/class/net/bond0/bonding/active_slave"))
        .expect("active_slave")
        .trim()
        .to_string()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_drill(root: &Path, state: &Path, hold: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(args(
            root,
            state,
            &[
                "drill",
                "bond:bond0",
                "--yes",
                "--drill.probe-target",
                "192.0.2.1",
                "--drill.hold",
                hold,
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drill")
}

fn history(state: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state.join("drill-history.json")).expect("history"))
        .expect("json")
}

#[test]
fn a_passing_drill_switches_back_and_is_recorded() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state = tempfile::tempdir().expect("state");
    let out = spawn_drill(d.path(), state.path(), "1s")
        .wait_with_output()
        .expect("drill");
    let so = exit_with(&out, 0);
    assert!(so.contains("drill bond:bond0: passed"), "{so}");
    assert_eq!(active(d.path()), "eth0");
    assert!(!state.path().join("drill-journal.json").exists());
    let h = history(state.path());
    let r = &h["records"][0];
    assert_eq!(r["result"], "passed");
    assert!(r["failover_seconds"].as_f64().is_some(), "{h}");
    assert!(r["failback_seconds"].as_f64().is_some(), "{h}");
    assert_eq!(r["probes_lost"], 0);
}

#[test]
fn sigint_rolls_back_at_once() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state = tempfile::tempdir().expect("state");
    let child = spawn_drill(d.path(), state.path(), "60s");
    wait_for("the failover", Duration::from_secs(30), || {
        active(d.path()) == "eth1"
    });
    let t = Instant::now();
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = child.wait_with_output().expect("drill");
    let took = t.elapsed();
    exit_with(&out, 2);
    assert!(took < Duration::from_secs(10), "rollback took {took:?}");
    assert_eq!(active(d.path()), "eth0");
    assert!(!state.path().join("drill-journal.json").exists());
    assert_eq!(history(state.path())["records"][0]["result"], "aborted");
}

#[test]
fn a_drill_killed_mid_way_is_rolled_back_when_the_agent_starts() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state = tempfile::tempdir().expect("state");
    let mut child = spawn_drill(d.path(), state.path(), "60s");
    wait_for("the failover", Duration::from_secs(30), || {
        active(d.path()) == "eth1"
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(
        active(d.path()),
        "eth1",
        "nothing rolls back without a start"
    );
    assert!(state.path().join("drill-journal.json").exists());

    // The agent starts: it rolls the drill back, records it and exports it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(args(
            d.path(),
            state.path(),
            &["run", "--web.listen-address", &listen],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent");
    let mut text = String::new();
    wait_for(
        "the aborted drill in /metrics",
        Duration::from_secs(30),
        || {
            text = crate::monitoring::http("GET", port, "/metrics", None)
                .map(|(_, b)| b)
                .unwrap_or_default();
            text.contains("sparewatch_drill_last_timestamp_seconds{group=\"bond:bond0\",kind=\"bond\",result=\"aborted\"}")
        },
    );
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(active(d.path()), "eth0");
    assert!(!state.path().join("drill-journal.json").exists());
    let h = history(state.path());
    assert_eq!(h["records"][0]["result"], "aborted");
    assert!(
        h["records"][0]["detail"]
            .as_str()
            .is_some_and(|s| s.contains("rolled back at the next start")),
        "{h}"
    );
    promtool_check_metrics(&text);
    // The drill series are in no golden file: check here that each is documented.
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("metrics.md");
    for l in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE sparewatch_drill_"))
    {
        let name = format!(
            "`sparewatch_drill_{}`",
            l.split_whitespace().next().unwrap_or("")
        );
        assert!(docs.contains(&name), "{name} not in docs/metrics.md");
    }
}

#[test]
fn a_silence_covers_the_drill_and_is_expired_after_it() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state = tempfile::tempdir().expect("state");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_am, port) = crate::monitoring::start_alertmanager(
        tmp.path(),
        "alertmanager",
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    );
    let url = format!("http://127.0.0.1:{port}");
    let mut a = args(
        d.path(),
        state.path(),
        &[
            "drill",
            "bond:bond0",
            "--yes",
            "--drill.probe-target",
            "192.0.2.1",
        ],
    );
    a.extend([
        "--drill.hold".into(),
        "3s".into(),
        "--alertmanager.url".into(),
        url,
    ]);
    let child = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("drill");
    let silences = || {
        crate::monitoring::get_json(port, "/api/v2/silences")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let s = crate::monitoring::wait_for("the drill's silence", Duration::from_secs(20), || {
        silences()
            .into_iter()
            .find(|s| s["status"]["state"] == "active")
    });
    let matchers = s["matchers"].to_string();
    assert!(
        matchers.contains("\"group\"") && matchers.contains("bond:bond0"),
        "{s}"
    );
    assert!(matchers.contains("\"hostname\""), "{s}");
    let out = child.wait_with_output().expect("drill");
    exit_with(&out, 0);
    let all = silences();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["status"]["state"], "expired", "{all:?}");
}

// ---- md: the scrub, then SMART short self-tests of the spare and the idle half ---------

/// The md-spare tree (md0: sda1, sdb1 and the spare sdu), sdb1 made write-mostly and a
/// partition of sdb, with a `smartctl` in the rootfs that logs its arguments.
fn md_host() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(fixture("md-spare").join("."))
        .arg(d.path())
        .status()
        .expect("cp");
    assert!(ok.success());
    let md = d.path().join("sys/block/md0/md");
    std::fs::write(md.join("dev-sdb1/state"), "in_sync,write_mostly\n").expect("state");
    let part = d.path().join("sys/devices/pci0/host1/block/sdb/sdb1");
    std::fs::create_dir_all(&part).expect("mkdir");
    std::fs::write(part.join("partition"), "1\n").expect("partition");
    let class = d.path().join("sys/class/block");
    std::fs::create_dir_all(&class).expect("mkdir");
    std::os::unix::fs::symlink(
        "../../devices/pci0/host1/block/sdb/sdb1",
        class.join("sdb1"),
    )
    .expect("symlink");
    let sbin = d.path().join("usr/sbin");
    std::fs::create_dir_all(&sbin).expect("mkdir");
    let p = sbin.join("smartctl");
    std::fs::write(
        &p,
        "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/../../smartctl.log\"\nexit 0\n",
    )
    .expect("write");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    d
}

#[test]
fn md_scrub_self_tests_the_spare_and_the_write_mostly_half() {
    let d = md_host();
    let root = d.path();
    let state = tempfile::tempdir().expect("state");
    let child = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(args_with(
            "--collector.md",
            root,
            state.path(),
            &["drill", "md:md0", "--yes", "--force"],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drill");
    // The tree's sync_action is a plain file: the check "ends" when the test says so.
    let action = root.join("sys/block/md0/md/sync_action");
    let read = || std::fs::read_to_string(&action).unwrap_or_default();
    wait_for("the check to start", Duration::from_secs(30), || {
        read().trim() == "check"
    });
    std::fs::write(&action, "idle\n").expect("idle");
    let out = child.wait_with_output().expect("drill");
    let so = exit_with(&out, 0);
    assert!(so.contains("drill md:md0: passed"), "{so}");
    assert!(
        so.contains("SMART short self-test started on sdb (sdb1), sdu (sdu)"),
        "{so}"
    );
    let log = std::fs::read_to_string(root.join("smartctl.log")).expect("smartctl ran");
    assert_eq!(
        log, "-t short -d auto /dev/sdb\n-t short -d auto /dev/sdu\n",
        "only the idle half and the spare, as whole disks"
    );
}

// Scheduled drills (`drills.schedule` in the config file): the agent, started by the test,
// runs a due drill inside its window through the drill's own code path.

/// One `drills.schedule` entry (YAML) of `group` in `window`, due after 7 days.
fn entry(group: &str, window: &str) -> String {
    format!(
        "    - group: {group}\n      window: \"{window}\"\n      every: 7d\n      hold: 1s\n      probe_target: 192.0.2.1\n"
    )
}

/// The agent with `drills` from `schedule` (YAML), checking every second; its stderr piped.
fn scheduled_agent(root: &Path, state: &Path, schedule: &str) -> (std::process::Child, u16) {
    let cfg = state.join("sparewatch-sched.yml");
    std::fs::write(
        &cfg,
        format!("drills:\n  check_interval: 1s\n  schedule:\n{schedule}"),
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let agent = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(args(
            root,
            state,
            &[
                "run",
                "--web.listen-address",
                &listen,
                "--config.file",
                &cfg.display().to_string(),
            ],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    (agent, port)
}

fn metrics(port: u16) -> String {
    crate::monitoring::http("GET", port, "/metrics", None)
        .map(|(_, b)| b)
        .unwrap_or_default()
}

fn stop(agent: std::process::Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    let out = agent.wait_with_output().expect("agent output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_scheduled_drill_runs_once_inside_its_window_and_is_recorded() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    let (agent, port) = scheduled_agent(d.path(), state, &entry("bond:bond0", "* 00:00-24:00"));
    wait_for(
        "the scheduled drill in /metrics",
        Duration::from_secs(60),
        || {
            metrics(port).contains(
            "sparewatch_drill_last_timestamp_seconds{group=\"bond:bond0\",kind=\"bond\",result=\"passed\"}",
        )
        },
    );
    // Several more checks: the drill passed within `every`, so it does not run again.
    std::thread::sleep(Duration::from_secs(4));
    let err = stop(agent);
    let h = history(state);
    let records = h["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "ran more than once: {h}\n{err}");
    assert_eq!(records[0]["group"], "bond:bond0");
    assert_eq!(records[0]["result"], "passed");
    assert_eq!(active(d.path()), "eth0", "not switched back");
    assert!(!state.join("drill-journal.json").exists());
    assert!(err.contains("scheduled drill starts"), "{err}");
}

#[test]
fn a_scheduled_drill_outside_its_window_does_not_run() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    // Every day but today (UTC; 1970-01-01 was a Thursday), the whole day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let today = ((now / 86_400 + 4) % 7) as usize;
    let days: Vec<&str> = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != today && *i != (today + 1) % 7)
        .map(|(_, d)| *d)
        .collect();
    let (agent, port) = scheduled_agent(
        d.path(),
        state,
        &entry("bond:bond0", &format!("{} 00:00-24:00", days.join(","))),
    );
    wait_for("the agent", Duration::from_secs(30), || {
        metrics(port).contains("sparewatch_group_state")
    });
    std::thread::sleep(Duration::from_secs(4));
    let m = metrics(port);
    let err = stop(agent);
    assert!(err.contains("scheduled drills on"), "{err}");
    assert!(!err.contains("scheduled drill starts"), "{err}");
    assert!(!m.contains("sparewatch_drill_"), "{m}");
    assert!(!state.join("drill-history.json").exists());
    assert_eq!(active(d.path()), "eth0");
}

#[test]
fn a_scheduled_drill_of_a_group_not_redundant_is_refused_and_counted() {
    let (d, _t) = host(true);
    answering_arping(d.path());
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    let before = tree(d.path());
    let (agent, port) = scheduled_agent(d.path(), state, &entry("bond:bond1", "* 00:00-24:00"));
    let series =
        "sparewatch_drill_schedule_refusals_total{group=\"bond:bond1\",reason=\"guardrail\"} 1";
    wait_for("the refusal in /metrics", Duration::from_secs(60), || {
        metrics(port).contains(series)
    });
    // Tried once per window: still one refusal a few checks later.
    std::thread::sleep(Duration::from_secs(3));
    let m = metrics(port);
    let err = stop(agent);
    assert!(m.contains(series), "{m}");
    assert!(err.contains("not redundant"), "{err}");
    assert!(!state.join("drill-history.json").exists());
    assert_eq!(tree(d.path()), before, "the host tree was written to");
}

#[test]
fn a_bad_schedule_is_refused_by_check_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("sparewatch.yml");
    for (schedule, key) in [
        (
            entry("bond:bond0", "Sun 04:00-02:00"),
            "drills.schedule[0].window",
        ),
        (
            entry("bond0", "Sun 02:00-04:00"),
            "drills.schedule[0].group",
        ),
    ] {
        std::fs::write(&cfg, format!("drills:\n  schedule:\n{schedule}")).expect("config");
        let out = sparewatch(&["check-config", &cfg.display().to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(key), "expected {key} in: {err}");
    }
}

#[test]
fn a_scheduled_drill_waits_for_a_manual_drill_and_is_counted() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    let (mut sleeper, journal) = live_journal(state);
    let before = tree(d.path());
    let (agent, port) = scheduled_agent(d.path(), state, &entry("bond:bond0", "* 00:00-24:00"));
    let series =
        "sparewatch_drill_schedule_refusals_total{group=\"bond:bond0\",reason=\"drill_running\"} 1";
    wait_for("the refusal in /metrics", Duration::from_secs(60), || {
        metrics(port).contains(series)
    });
    let _ = stop(agent);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(tree(d.path()), before, "the host tree was written to");
    assert_eq!(
        std::fs::read_to_string(state.join("drill-journal.json")).expect("journal"),
        journal
    );
    assert!(!state.join("drill-history.json").exists());
}

#[test]
fn a_scheduled_drill_by_kind_drills_each_group_of_the_kind_once() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    let (agent, port) = scheduled_agent(
        d.path(),
        state,
        "    - kind: bond\n      window: \"* 00:00-24:00\"\n      every: 7d\n      hold: 1s\n      probe_target: 192.0.2.1\n",
    );
    wait_for("both drills in /metrics", Duration::from_secs(90), || {
        let m = metrics(port);
        ["bond0", "bond1"].iter().all(|b| {
            m.contains(&format!(
                "sparewatch_drill_last_timestamp_seconds{{group=\"bond:{b}\",kind=\"bond\",result=\"passed\"}}"
            ))
        })
    });
    std::thread::sleep(Duration::from_secs(3));
    let err = stop(agent);
    let h = history(state);
    let mut groups: Vec<&str> = h["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["group"].as_str())
        .collect();
    groups.sort();
    assert_eq!(groups, ["bond:bond0", "bond:bond1"], "{h}\n{err}");
}

#[test]
fn the_agent_stopped_during_a_scheduled_drill_rolls_it_back_before_it_exits() {
    let (d, _t) = host(false);
    answering_arping(d.path());
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    let (agent, _port) = scheduled_agent(
        d.path(),
        state,
        &entry("bond:bond0", "* 00:00-24:00").replace("hold: 1s", "hold: 60s"),
    );
    wait_for("the standby made active", Duration::from_secs(60), || {
        active(d.path()) == "eth1"
    });
    let err = stop(agent);
    assert_eq!(active(d.path()), "eth0", "not rolled back: {err}");
    assert!(!state.join("drill-journal.json").exists(), "{err}");
    assert_eq!(history(state)["records"][0]["result"], "aborted", "{err}");
}
