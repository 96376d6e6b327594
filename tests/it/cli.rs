//! The binary's one-shot modes against fixture trees: `check` exit codes, `status` output,
//! collector flags, and clear errors for bad input.

use crate::support::*;

fn args_for(scenario: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    a.extend(fixture_args(&fixture(scenario)));
    a
}

fn run(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sparewatch(&refs)
}

#[test]
fn check_exit_codes_follow_nagios() {
    let cases = [
        ("net-healthy", 0, "SPAREWATCH OK"),
        (
            "net-standby-lost",
            1,
            "SPAREWATCH WARNING - bond:bond0 no_redundancy (eth1: mii down)",
        ),
        ("net-all-lost", 2, "SPAREWATCH CRITICAL"),
    ];
    for (scenario, code, line) in cases {
        let out = run(&args_for(scenario, &["check"]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{scenario}: {stdout}");
        assert!(stdout.starts_with(line), "{scenario}: {stdout}");
        assert_eq!(stdout.lines().count(), 1, "one summary line");
    }
}

#[test]
fn status_table_and_json() {
    let out = run(&args_for("net-standby-lost", &["status"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let row = stdout
        .lines()
        .find(|l| l.starts_with("bond:bond0"))
        .expect("bond0 row");
    assert!(
        row.contains("no_redundancy") && row.contains("eth1 (standby): mii down"),
        "{row}"
    );

    let out = run(&args_for(
        "net-standby-lost",
        &["status", "--format", "json"],
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["groups"][0]["name"], "bond:bond0");
    assert_eq!(v["groups"][0]["state"], "no_redundancy");
    assert_eq!(v["groups"][0]["spare"], 0);
    assert_eq!(v["groups"][0]["members"][1]["role"], "standby");
}

#[test]
fn collector_flags_come_from_the_table() {
    let out = run(&args_for(
        "net-standby-lost",
        &["status", "--format", "json", "--no-collector.net"],
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["groups"].as_array().map(Vec::len), Some(0));
    let help = sparewatch(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for spec in sparewatch_collectors::COLLECTORS {
        assert!(
            help.contains(&format!("--collector.{}", spec.name)),
            "{help}"
        );
        assert!(help.contains(&format!("--no-collector.{}", spec.name)));
    }
}

#[test]
fn missing_sysfs_is_not_present_not_an_error() {
    let out = sparewatch(&["status", "--path.sysfs", "/nonexistent", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let net = v["collectors"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "net"))
        .expect("net collector");
    assert_eq!(net["up"], true);
    assert_eq!(net["present"], false);
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.yml");
    std::fs::write(&cfg, "collectors:\n  net:\n    interval: soon\n").expect("write");
    let out = sparewatch(&["check", "--config.file", cfg.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("collectors.net.interval") && err.contains("soon"),
        "{err}"
    );
}

#[test]
fn persisted_since_is_used_by_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("groups.json"),
        r#"{"version":1,"groups":{"bond:bond0":{"state":"no_redundancy","since":1000.0,"transitions":4}}}"#,
    )
    .expect("write");
    let mut a = args_for(
        "net-standby-lost",
        &["status", "--format", "json", "--state.dir"],
    );
    a.insert(4, dir.path().display().to_string());
    let out = run(&a);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["groups"][0]["since"], 1000.0);
    assert_eq!(v["groups"][0]["transitions"], 4);
}

#[test]
fn an_absurd_state_file_is_ignored_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("groups.json"),
        r#"{"version":1,"groups":{"bond:bond0":{"state":"no_redundancy","since":1e300,"transitions":4}}}"#,
    )
    .expect("write");
    let mut a = args_for("net-standby-lost", &["check", "--state.dir"]);
    a.insert(2, dir.path().display().to_string());
    let out = run(&a);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_shows_hot_spares_apart_from_counted_members() {
    let mut a = vec![
        "status".to_string(),
        "--collector.disable-defaults".into(),
        "--collector.md".into(),
    ];
    a.extend(fixture_args(&fixture("md-spare")));
    let out = run(&a);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("md:md0"))
        .expect("md0 row");
    assert!(row.contains("2/2 need 1 +1 spare"), "{row}");
}
