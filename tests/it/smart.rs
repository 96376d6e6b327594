//! The smart collector end to end: a stand-in smartctl in each fixture tree (found under
//! `--path.rootfs`) prints captured smartctl 7 JSON, so the real command path runs.

use std::time::{Duration, Instant};

use sparewatch_collectors::smart::{SmartCollector, SmartConfig};
use sparewatch_collectors::{Collector, Roots};

use crate::hwmon::{check, only_down};
use crate::support::*;

fn value(text: &str, metric: &str, device: &str) -> Option<f64> {
    metric_value(text, &format!("{metric}{{device=\"{device}\"}}"))
}

#[test]
fn smart_healthy() {
    let text = check("smart-healthy", "smart", &[]);
    for d in ["sda", "sdb", "nvme0", "megaraid:0:12", "megaraid:0:13"] {
        assert_eq!(
            value(&text, "sparewatch_smart_at_risk", d),
            Some(0.0),
            "{d}"
        );
        assert_eq!(
            value(&text, "sparewatch_smart_standby", d),
            Some(0.0),
            "{d}"
        );
    }
    // sdc sleeps: queried with -n standby, not spun up, nothing known yet.
    assert_eq!(value(&text, "sparewatch_smart_standby", "sdc"), Some(1.0));
    assert_eq!(
        value(&text, "sparewatch_smart_exit_status", "sdc"),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "sparewatch_smart_temperature_celsius", "sdc"),
        None
    );
    assert_eq!(
        value(
            &text,
            "sparewatch_smart_nvme_available_spare_ratio",
            "nvme0"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "sparewatch_smart_power_on_seconds", "sda"),
        Some(31012.0 * 3600.0)
    );
}

#[test]
fn smart_failing_disks_are_device_risks() {
    let text = check("smart-failing", "smart", &[]);
    for (d, risk) in [
        ("sda", 0.0),
        ("sdb", 1.0),
        ("nvme0", 1.0),
        ("megaraid:0:12", 1.0),
        ("megaraid:0:13", 0.0),
    ] {
        assert_eq!(
            value(&text, "sparewatch_smart_at_risk", d),
            Some(risk),
            "{d}"
        );
    }
    assert_eq!(
        value(&text, "sparewatch_smart_health_passed", "sdb"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "sparewatch_smart_reallocated_sectors", "sdb"),
        Some(1848.0)
    );
    assert_eq!(
        value(&text, "sparewatch_smart_nvme_critical_warning", "nvme0"),
        Some(4.0)
    );
    // The collection itself: the keys other collectors' members name.
    let roots = Roots::under(&fixture("smart-failing"));
    let mut c = SmartCollector::new(roots, SmartConfig::default());
    let col = c.collect().expect("collects");
    let keys: Vec<&str> = col.device_risks.iter().map(|r| r.device.as_str()).collect();
    assert_eq!(keys, vec!["sdb", "nvme0n1", "megaraid:0:12"]);
    assert!(
        col.device_risks[0]
            .reason
            .contains("1848 reallocated sectors"),
        "{:?}",
        col.device_risks[0]
    );
    assert!(col.device_risks[1]
        .reason
        .contains("NVM subsystem reliability degraded"));
}

#[test]
fn smart_sleeping_disk_keeps_its_last_report() {
    // Same collector twice: first sdc answers, then it sleeps; the second pass must keep
    // the first pass's values (and risk) without waking the disk.
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("smartctl");
    std::fs::create_dir_all(&data).expect("mkdir");
    let src = fixture("smart-failing");
    for f in ["scan.json", "sat_dev_sdb.json"] {
        std::fs::copy(src.join("smartctl").join(f), data.join(f)).expect("copy");
    }
    // Only sdb in the scan.
    let scan = std::fs::read_to_string(data.join("scan.json")).expect("read");
    let v: serde_json::Value = serde_json::from_str(&scan).expect("json");
    let mut v2 = v.clone();
    v2["devices"] = serde_json::Value::Array(vec![v["devices"][1].clone()]);
    std::fs::write(data.join("scan.json"), v2.to_string()).expect("write");
    std::fs::create_dir_all(dir.path().join("usr/sbin")).expect("mkdir");
    std::fs::copy(
        src.join("usr/sbin/smartctl"),
        dir.path().join("usr/sbin/smartctl"),
    )
    .expect("copy script");
    std::fs::write(data.join("sat_dev_sdb.rc"), "24\n").expect("rc");
    let mut c = SmartCollector::new(Roots::under(dir.path()), SmartConfig::default());
    let first = c.collect().expect("first");
    assert_eq!(first.device_risks.len(), 1);
    std::fs::copy(
        src.join("smartctl/sat_dev_sdc.json"),
        data.join("sat_dev_sdb.json"),
    )
    .expect("standby");
    std::fs::write(data.join("sat_dev_sdb.rc"), "2\n").expect("rc");
    let second = c.collect().expect("second");
    assert_eq!(
        second.device_risks, first.device_risks,
        "risk kept while asleep"
    );
    let standby = second
        .readings
        .iter()
        .find(|r| r.name == "sparewatch_smart_standby")
        .expect("standby reading");
    assert_eq!(standby.value, 1.0);
    assert!(second
        .readings
        .iter()
        .any(|r| r.name == "sparewatch_smart_reallocated_sectors" && r.value == 1848.0));
}

/// Collector up, the broken disk's query failed, the other disk's risk kept.
fn one_disk_query_failed(scenario: &str) -> String {
    let text = check(scenario, "smart", &[]);
    assert_eq!(
        metric_value(&text, "sparewatch_collector_up{collector=\"smart\"}"),
        Some(1.0),
        "{scenario}: one disk's failed query never takes the collector down"
    );
    assert_eq!(
        value(&text, "sparewatch_smart_device_query_ok", "sda"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "sparewatch_smart_device_query_ok", "sdb"),
        Some(1.0)
    );
    assert_eq!(value(&text, "sparewatch_smart_at_risk", "sdb"), Some(1.0));
    assert_eq!(value(&text, "sparewatch_smart_at_risk", "sda"), Some(0.0));
    text
}

#[test]
fn smart_command_that_never_exits_fails_only_that_disk() {
    let start = Instant::now();
    one_disk_query_failed("smart-timeout");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the 500ms command timeout was not applied"
    );
}

#[test]
fn smart_broken_json_fails_only_that_disk() {
    one_disk_query_failed("smart-broken-json");
}

#[test]
fn smart_broken_scan_marks_only_smart_down() {
    let text = only_down(
        "smart-scan-broken",
        "smart",
        "hwmon",
        "parsing smartctl --scan-open --json",
    );
    assert_golden("smart-scan-broken", &text);
}

/// A disk whose query fails keeps the risk of its last good report, across collections.
#[test]
fn smart_failed_query_keeps_the_last_reports_risk() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = fixture("smart-failing").join("smartctl");
    let bin = root.path().join("smartctl");
    let answer = root.path().join("sdb.json");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--scan*) cat '{scan}'; exit 0 ;; esac\ncat '{answer}'\nexit 24\n",
            scan = root.path().join("scan.json").display(),
            answer = answer.display(),
        ),
    )
    .expect("write");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::copy(
        fixture("smart-timeout").join("smartctl/scan.json"),
        root.path().join("scan.json"),
    )
    .expect("copy");
    std::fs::copy(data.join("sat_dev_sdb.json"), &answer).expect("copy");
    let config = SmartConfig {
        smartctl: Some(bin.clone()),
        ..SmartConfig::default()
    };
    let mut c = SmartCollector::new(Roots::under(root.path()), config);
    let first = c.collect().expect("collects");
    let risky = |col: &sparewatch_collectors::Collection| {
        col.device_risks
            .iter()
            .map(|r| r.device.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(risky(&first), vec!["sda", "sdb"]);
    // Now every query answers garbage: the collection still succeeds, the marks stay.
    std::fs::write(&answer, b"{\"json_format_version\": [1, 0], \"dev").expect("write");
    let second = c
        .collect()
        .expect("a failed disk query never fails the collection");
    assert!(second.present);
    assert_eq!(risky(&second), vec!["sda", "sdb"]);
    let ok: Vec<f64> = second
        .readings
        .iter()
        .filter(|r| r.name == "sparewatch_smart_device_query_ok")
        .map(|r| r.value)
        .collect();
    assert_eq!(ok, vec![0.0, 0.0]);
    // A fresh agent has no last report: no marks, but still up and present.
    let mut fresh = SmartCollector::new(
        Roots::under(root.path()),
        SmartConfig {
            smartctl: Some(bin),
            ..SmartConfig::default()
        },
    );
    let col = fresh.collect().expect("collects");
    assert!(col.present && col.device_risks.is_empty());
}

#[test]
fn smart_absent_binary_is_not_present() {
    let snap = snapshot("hwmon-redundant", &["smart"]);
    let text = normalized_metrics(&snap);
    assert_eq!(
        metric_value(&text, "sparewatch_collector_present{collector=\"smart\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&text, "sparewatch_collector_up{collector=\"smart\"}"),
        Some(1.0)
    );
}

/// The real smartctl of this machine (Debian package `smartmontools`, installed by
/// scripts/test): its scan output must parse, and the collector is present exactly when the
/// scan finds a disk.
#[test]
fn smart_real_smartctl() {
    let smartctl = std::path::Path::new("/usr/sbin/smartctl");
    assert!(
        smartctl.exists(),
        "smartctl not found: install the Debian package `smartmontools` (scripts/test does)"
    );
    let config = SmartConfig {
        smartctl: Some(smartctl.to_path_buf()),
        ..SmartConfig::default()
    };
    let scan = std::process::Command::new(smartctl)
        .args(["--json=c", "--scan-open"])
        .output()
        .expect("smartctl runs");
    let devices = sparewatch_collectors::smart::report::parse_scan(&scan.stdout)
        .expect("the real smartctl's scan output parses");
    let mut c = SmartCollector::new(Roots::default(), config);
    let col = c.collect().expect("the real smartctl's output parses");
    // Present exactly when the scan finds a disk (this VM's virtio disks: none).
    assert_eq!(col.present, !devices.is_empty(), "scan: {devices:?}");
}

/// The md and smart collectors: md arrays from `md`'s tree, disks as `smart`'s smartctl
/// sees them.
fn md_with_smart(md: &str, smart: &str) -> String {
    let md = fixture(md);
    let args = vec![
        "sparewatch".to_string(),
        "--collector.disable-defaults".into(),
        "--collector.md".into(),
        "--collector.smart".into(),
        "--path.sysfs".into(),
        md.join("sys").display().to_string(),
        "--path.procfs".into(),
        md.join("proc").display().to_string(),
        "--path.rootfs".into(),
        fixture(smart).display().to_string(),
    ];
    let snap = sparewatch::collect_with_args(args, fixed_now()).expect("collects");
    normalized_metrics(&snap)
}

#[test]
fn smart_failing_disk_degrades_md_arrays_built_on_it() {
    // md arrays from the storage fixtures, disks as smart-failing's smartctl sees them:
    // sdb (under md0's sdb1) fails SMART, nvme0 (md3's nvme0n1p1) has a critical warning.
    let text = md_with_smart("md-healthy", "smart-failing");
    let state = |g: &str| crate::hwmon::group_state(&text, g);
    assert_eq!(state("md:md0").as_deref(), Some("degraded"), "{text}");
    assert_eq!(state("md:md3").as_deref(), Some("degraded"));
    assert_eq!(state("md:md1").as_deref(), Some("redundant"));
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_at_risk{group=\"md:md0\",kind=\"md\",member=\"sdb1\",role=\"active\"}"
        ),
        Some(1.0)
    );
}

/// Self-test logs in smartctl 7's JSON shapes (`ata_smart_self_test_log` as in scrutiny's
/// smart-fail2.json capture, `nvme_self_test_log` as smartmontools' nvmeprint.cpp writes it):
/// the newest entry is exported, and a failed one makes the disk at risk.
#[test]
fn smart_selftest() {
    let text = check("smart-selftest", "smart", &[]);
    let result = |d: &str, test: &str, result: &str| {
        metric_value(
            &text,
            &format!("sparewatch_smart_selftest_last_result{{device=\"{d}\",test=\"{test}\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(
        result("sdu", "Extended offline", "failed"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(result("sdv", "Short offline", "passed"), Some(1.0));
    assert_eq!(result("nvme0", "Short", "passed"), Some(1.0));
    let age = |d: &str| {
        value(
            &text,
            "sparewatch_smart_selftest_last_age_power_on_seconds",
            d,
        )
    };
    assert_eq!(age("sdu"), Some(6.0 * 3600.0));
    // sdv is past 65535 power-on hours: its log holds them modulo 65536.
    assert_eq!(age("sdv"), Some(4.0 * 3600.0));
    assert_eq!(age("nvme0"), Some(12.0 * 3600.0));
    assert_eq!(value(&text, "sparewatch_smart_at_risk", "sdu"), Some(1.0));
    assert_eq!(value(&text, "sparewatch_smart_at_risk", "sdv"), Some(0.0));
    assert_eq!(value(&text, "sparewatch_smart_at_risk", "nvme0"), Some(0.0));
}

/// A hot spare whose last self-test failed is an unhealthy standby: md0's spare sdu is at
/// risk, md1's spare sdv (an old failure a later test superseded) is not.
#[test]
fn smart_failed_selftest_marks_the_spare() {
    let text = md_with_smart("md-spare", "smart-selftest");
    let at_risk = |g: &str, m: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("sparewatch_member_at_risk{")
                    && l.contains(&format!("group=\"{g}\""))
                    && l.contains(&format!("member=\"{m}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(at_risk("md:md0", "sdu").as_deref(), Some("1"), "{text}");
    assert_eq!(at_risk("md:md1", "sdv").as_deref(), Some("0"));
}
