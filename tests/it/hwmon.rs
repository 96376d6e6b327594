//! The hwmon collector end to end: fixture sysfs trees → collector → engine → `/metrics`.

use crate::support::*;
use std::path::{Path, PathBuf};

/// `sparewatch_group_state` of one group, whatever its `by_design` label.
pub fn group_state(text: &str, group: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with("sparewatch_group_state{") && l.ends_with(" 1"))
        .find(|l| l.contains(&format!("group=\"{group}\"")))
        .and_then(|l| l.split("state=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .map(str::to_string)
}

/// Collects `scenario` with only `collector`, checks the expected group states, promtool,
/// and the whole-output golden file. Returns the normalized text for extra checks.
pub fn check(scenario: &str, collector: &str, expect: &[(&str, &str)]) -> String {
    let snap = snapshot(scenario, &[collector]);
    let text = normalized_metrics(&snap);
    for (group, state) in expect {
        assert_eq!(
            group_state(&text, group).as_deref(),
            Some(*state),
            "{scenario}: {group} should be {state}:\n{text}"
        );
    }
    promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    assert_golden(scenario, &text);
    text
}

/// Collects `scenario` with collectors `down` and `up`: `down` must be down with an error
/// containing `error`, `up` must be up (one broken collector never takes others along).
pub fn only_down(scenario: &str, down: &str, up: &str, error: &str) -> String {
    let snap = snapshot(scenario, &[down, up]);
    let text = normalized_metrics(&snap);
    for (name, want) in [(down, 0.0), (up, 1.0)] {
        assert_eq!(
            metric_value(
                &text,
                &format!("sparewatch_collector_up{{collector=\"{name}\"}}")
            ),
            Some(want),
            "{scenario}: collector {name}"
        );
    }
    let c = snap
        .collectors
        .iter()
        .find(|c| c.name == down)
        .expect("collector listed");
    assert!(
        c.last_error.as_deref().is_some_and(|e| e.contains(error)),
        "{scenario}: {down} error should contain {error:?}: {:?}",
        c.last_error
    );
    text
}

#[test]
fn hwmon_redundant() {
    let text = check(
        "hwmon-redundant",
        "hwmon",
        &[("fan:nct6775", "redundant"), ("psu:pmbus", "redundant")],
    );
    // The empty header fan4 (0 rpm, no minimum) is a reading but not a member.
    assert!(text
        .contains("sparewatch_hwmon_fan_speed_rpm{chip=\"nct6775\",sensor=\"fan4\",label=\"\"} 0"));
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_members{group=\"fan:nct6775\",kind=\"fan\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_members_required{group=\"fan:nct6775\",kind=\"fan\"}"
        ),
        Some(2.0)
    );
    // Base units: microwatts → watts, millivolts → volts, milliamperes → amperes.
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwmon_power_watts{chip=\"pmbus@7-0058\",sensor=\"power1\",label=\"pin\"}"
        ),
        Some(285.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwmon_voltage_volts{chip=\"pmbus@7-0058\",sensor=\"in1\",label=\"vin\"}"
        ),
        Some(230.25)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwmon_current_amperes{chip=\"pmbus@7-0058\",sensor=\"curr2\",label=\"iout1\"}"
        ),
        Some(22.5)
    );
    // The PSUs' own fans count for the PSU, they form no fan group of their own.
    assert!(!text.contains("group=\"fan:pmbus"));
}

#[test]
fn hwmon_fan_stopped() {
    let text = check(
        "hwmon-fan-stopped",
        "hwmon",
        &[("fan:nct6775", "no_redundancy"), ("psu:pmbus", "redundant")],
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_healthy{group=\"fan:nct6775\",kind=\"fan\",member=\"SYS_FAN1\",role=\"active\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn hwmon_psu_lost() {
    let text = check(
        "hwmon-psu-lost",
        "hwmon",
        &[("fan:nct6775", "redundant"), ("psu:pmbus", "no_redundancy")],
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_healthy{group=\"psu:pmbus\",kind=\"psu\",member=\"pmbus@7-0059\",role=\"active\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwmon_psu_alarm{chip=\"pmbus@7-0059\",attribute=\"in1_lcrit_alarm\",label=\"vin\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn hwmon_mains_supplies() {
    let text = check(
        "hwmon-mains",
        "hwmon",
        &[("psu:power_supply", "no_redundancy")],
    );
    assert!(text.contains("sparewatch_power_supply_online{supply=\"AC2\"} 0"));
    assert!(!text.contains("BAT0"), "batteries are not mains supplies");
}

#[test]
fn hwmon_absent_is_not_present() {
    let snap = snapshot("net-healthy", &["hwmon"]);
    let text = normalized_metrics(&snap);
    assert_eq!(
        metric_value(&text, "sparewatch_collector_present{collector=\"hwmon\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&text, "sparewatch_collector_up{collector=\"hwmon\"}"),
        Some(1.0)
    );
}

/// Runs the real binary's `cmd` (`check`, `status`) on a fixture with only `collector`.
pub fn run_on(cmd: &str, scenario: &str, collector: &str) -> std::process::Output {
    let dir = fixture(scenario);
    let mut args: Vec<String> = vec![
        cmd.into(),
        "--collector.disable-defaults".into(),
        format!("--collector.{collector}"),
    ];
    args.extend(fixture_args(&dir));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    sparewatch(&argv)
}

#[test]
fn hwmon_status_and_check() {
    let out = run_on("check", "hwmon-fan-stopped", "hwmon");
    assert_eq!(out.status.code(), Some(1), "no_redundancy is a warning");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fan:nct6775"), "{stdout}");
    let out = run_on("status", "hwmon-fan-stopped", "hwmon");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SYS_FAN1 (active): stopped (0 rpm), fan alarm"),
        "{stdout}"
    );
}

#[test]
fn demo_story_fan_and_psu_steps() {
    use sparewatch::demo::{build_server, STORY};
    use sparewatch::fixture::SysTree;
    let dir = tempfile::tempdir().expect("tmp");
    let tree = SysTree::new(dir.path()).expect("tree");
    build_server(&tree).expect("server");
    let states = || {
        let mut args = vec![
            "sparewatch".to_string(),
            "--collector.disable-defaults".into(),
            "--collector.hwmon".into(),
        ];
        args.extend(fixture_args(dir.path()));
        let snap = sparewatch::collect_with_args(args, fixed_now()).expect("collects");
        let text = normalized_metrics(&snap);
        (
            group_state(&text, "fan:nct6775").unwrap_or_default(),
            group_state(&text, "psu:pmbus").unwrap_or_default(),
        )
    };
    assert_eq!(states(), ("redundant".into(), "redundant".into()));
    let mut seen = Vec::new();
    for step in STORY
        .iter()
        .filter(|s| s.says.starts_with("fan:") || s.says.starts_with("psu:"))
    {
        (step.apply)(&tree).expect("step applies");
        seen.push(states());
    }
    let want = |f: &str, p: &str| (f.to_string(), p.to_string());
    assert_eq!(
        seen,
        vec![
            want("no_redundancy", "redundant"),
            want("redundant", "redundant"),
            want("redundant", "no_redundancy"),
            want("redundant", "redundant"),
        ]
    );
}

/// The `hwmon` section of the store in `state` (`groups.json`), if it has one.
fn hwmon_section(state: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(state.join("groups.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("collectors")?.get("hwmon").cloned()
}

/// A two-fan nct6775 chip under `root`, both fans spinning.
fn two_fan_chip(root: &Path) -> PathBuf {
    let chip = root.join("sys/class/hwmon/hwmon0");
    std::fs::create_dir_all(&chip).expect("mkdir");
    std::fs::create_dir_all(root.join("proc")).expect("mkdir");
    std::fs::write(chip.join("name"), "nct6775\n").expect("write");
    std::fs::write(chip.join("fan1_input"), "1200\n").expect("write");
    std::fs::write(chip.join("fan2_input"), "1300\n").expect("write");
    chip
}

/// `sparewatch status` of the hwmon collector alone with `--state.dir state`.
fn hwmon_status(root: &Path, state: &Path) -> String {
    let mut args: Vec<String> = vec![
        "status".into(),
        "--collector.disable-defaults".into(),
        "--collector.hwmon".into(),
        "--state.dir".into(),
        state.display().to_string(),
    ];
    args.extend(fixture_args(root));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    String::from_utf8_lossy(&sparewatch(&argv).stdout).into_owned()
}

/// Runs the agent on `root` with `--state.dir state` until the store has an hwmon section
/// (at most 10 s), then kills it.
fn run_agent_until_hwmon_saved(root: &Path, state: &Path) {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--collector.disable-defaults".into(),
        "--collector.hwmon".into(),
        "--web.listen-address=127.0.0.1:0".into(),
        "--state.dir".into(),
        state.display().to_string(),
    ];
    args.extend(fixture_args(root));
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let t = std::time::Instant::now();
    while hwmon_section(state).is_none() && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = agent.kill();
    let _ = agent.wait();
}

/// The real binary's `--state.dir` reaches the collector: a fan that was seen spinning by a
/// previous agent and is stopped now (no fanN_min, no alarm) is still a failed member, so a
/// two-fan chip is `no_redundancy`, not a healthy single fan by design. The memory is kept
/// in the agent's one store (`groups.json`), not in a file of the collector's own.
#[test]
fn hwmon_state_dir_remembers_fans_across_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let chip = two_fan_chip(root.path());
    let first = hwmon_status(root.path(), state.path());
    assert!(first.contains("redundant"), "{first}");
    // `status` never writes the state dir: an agent run is what remembers the fans.
    assert!(std::fs::read_dir(state.path())
        .expect("ls")
        .next()
        .is_none());
    run_agent_until_hwmon_saved(root.path(), state.path());
    std::fs::write(chip.join("fan1_input"), "0\n").expect("write");
    let second = hwmon_status(root.path(), state.path());
    let line = second
        .lines()
        .find(|l| l.contains("fan:nct6775"))
        .unwrap_or_else(|| panic!("no fan group: {second}"));
    assert!(line.contains("no_redundancy"), "{second}");
    assert!(
        second.contains("fan1 (active): stopped (0 rpm)"),
        "{second}"
    );
    assert!(hwmon_section(state.path()).is_some());
    assert!(!state.path().join("hwmon.json").exists());
}

/// A `hwmon.json` an older release wrote is read by `status` (without writing anything) and
/// migrated into the store by the agent; the old file is left as it was.
#[test]
fn hwmon_old_state_file_is_migrated_into_the_store() {
    let root = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let chip = two_fan_chip(root.path());
    // fan1 stopped while no agent ran; the old file remembers it spinning.
    std::fs::write(chip.join("fan1_input"), "0\n").expect("write");
    let old = br#"{
  "version": 1,
  "seen_spinning": ["nct6775/fan1", "nct6775/fan2"],
  "max_members": {"fan:nct6775": 2}
}"#;
    std::fs::write(state.path().join("hwmon.json"), old).expect("write");
    let no_redundancy = |out: &str| {
        out.lines()
            .find(|l| l.contains("fan:nct6775"))
            .is_some_and(|l| l.contains("no_redundancy"))
    };
    let before = hwmon_status(root.path(), state.path());
    assert!(no_redundancy(&before), "old file read by status: {before}");
    assert!(
        !state.path().join("groups.json").exists(),
        "status wrote the store"
    );
    run_agent_until_hwmon_saved(root.path(), state.path());
    let section = hwmon_section(state.path()).expect("hwmon section written by the agent");
    let old_json: serde_json::Value = serde_json::from_slice(old).expect("json");
    assert_eq!(section, old_json);
    assert_eq!(
        std::fs::read(state.path().join("hwmon.json")).expect("old file kept"),
        old.to_vec()
    );
    // From now on the store is what remembers: without the old file fan1 is still missed.
    std::fs::remove_file(state.path().join("hwmon.json")).expect("rm");
    let after = hwmon_status(root.path(), state.path());
    assert!(no_redundancy(&after), "memory from the store: {after}");
}

/// A cold-standby PMBus PSU (input present, output 0 V, no alarm or fault bit) is a healthy
/// standby member (DESIGN §2), not a PSU with "no output voltage".
#[test]
fn hwmon_cold_standby_psu_is_a_healthy_standby() {
    let text = check(
        "hwmon-psu-cold-standby",
        "hwmon",
        &[("fan:nct6775", "redundant"), ("psu:pmbus", "redundant")],
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_healthy{group=\"psu:pmbus\",kind=\"psu\",member=\"pmbus@7-0059\",role=\"standby\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwmon_voltage_volts{chip=\"pmbus@7-0059\",sensor=\"in2\",label=\"vout1\"}"
        ),
        Some(0.0)
    );
}

/// Real-world fan shapes (tests/fixtures/realworld-hwmon-fan-min): applesmc's `fanN_min` is
/// a set point (1998 rpm with min 2000 works), jitter within 5 % of an alarm limit is no
/// failure, and a -5 rpm reading is unknown with the reason, never "stopped".
#[test]
fn hwmon_fan_min_per_driver_and_unreadable_speed() {
    let snap = crate::support::snapshot("realworld-hwmon-fan-min", &["hwmon"]);
    let states: Vec<(&str, &str)> = snap
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [("fan:applesmc", "redundant"), ("fan:nct6775", "unknown")]
    );
    let nct = &snap.groups[1];
    let fan2 = nct
        .members
        .iter()
        .find(|m| m.name == "SYSFAN2")
        .expect("SYSFAN2");
    assert!(fan2.unknown, "{fan2:?}");
    assert!(fan2.reason.as_deref().unwrap_or("").contains("-5 rpm"));
    let text = crate::support::normalized_metrics(&snap);
    assert!(
        !text.contains("} -5\n"),
        "a negative speed is not exported:\n{text}"
    );
    crate::support::promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    crate::support::assert_golden("realworld-hwmon-fan-min", &text);
}
