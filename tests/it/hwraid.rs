//! The hwraid collector end to end: a stand-in storcli64 in each fixture tree (found under
//! `--path.rootfs`) prints storcli JSON, so the real command path runs.

use crate::hwmon::{check, group_state, only_down, run_on};
use crate::support::*;

fn member_healthy(text: &str, group: &str, member: &str, role: &str) -> Option<f64> {
    metric_value(
        text,
        &format!("sparewatch_member_healthy{{group=\"{group}\",kind=\"hwraid\",member=\"{member}\",role=\"{role}\"}}"),
    )
}

#[test]
fn hwraid_optimal() {
    let text = check(
        "hwraid-optimal",
        "hwraid",
        &[("hwraid:c0/v0", "redundant"), ("hwraid:c0/v1", "redundant")],
    );
    // The global hot spare is a spare member of every virtual drive, not counted as spare.
    assert_eq!(
        member_healthy(&text, "hwraid:c0/v1", "32:5", "spare"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_spare{group=\"hwraid:c0/v1\",kind=\"hwraid\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_stated_state{group=\"hwraid:c0/v1\",kind=\"hwraid\",state=\"redundant\"}"
        ),
        Some(1.0)
    );
    assert!(text.contains("pci_address=\"0000:18:00.0\",scsi_host=\"0\""));
}

#[test]
fn hwraid_raid5_of_three_with_one_failed_is_no_redundancy() {
    let text = check(
        "hwraid-raid5-failed",
        "hwraid",
        &[
            ("hwraid:c0/v0", "redundant"),
            ("hwraid:c0/v1", "no_redundancy"),
        ],
    );
    assert_eq!(
        member_healthy(&text, "hwraid:c0/v1", "missing:span0/row1", "active"),
        Some(0.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_stated_state{group=\"hwraid:c0/v1\",kind=\"hwraid\",state=\"no_redundancy\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn hwraid_raid6_of_four_rebuilding_one_is_degraded() {
    let text = check(
        "hwraid-raid6-rebuild",
        "hwraid",
        &[("hwraid:c0/v0", "degraded")],
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwraid_rebuild_progress_ratio{controller=\"0\",drive=\"32:2\"}"
        ),
        Some(0.37)
    );
    assert_eq!(
        member_healthy(&text, "hwraid:c0/v0", "32:2", "active"),
        Some(0.0)
    );
    let snap = snapshot("hwraid-raid6-rebuild", &["hwraid"]);
    let table = sparewatch::status::table(&snap);
    assert!(table.contains("32:2 (active): rebuilding (37%)"), "{table}");
}

#[test]
fn hwraid_raid10_one_lost_per_span_is_no_redundancy_not_failed() {
    check(
        "hwraid-raid10-two-spans",
        "hwraid",
        &[("hwraid:c0/v0", "no_redundancy")],
    );
}

#[test]
fn hwraid_smart_risk_marks_the_member_at_risk() {
    // smart sees megaraid:0:1 (device id 1 behind SCSI host 0) failing; hwraid's member
    // 32:1 of v0 is that drive: at risk, so the mirror is at least degraded.
    let snap = snapshot("hwraid-smart-risk", &["hwraid", "smart"]);
    let text = normalized_metrics(&snap);
    assert_eq!(
        group_state(&text, "hwraid:c0/v0").as_deref(),
        Some("degraded")
    );
    assert_eq!(
        group_state(&text, "hwraid:c0/v1").as_deref(),
        Some("redundant")
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_at_risk{group=\"hwraid:c0/v0\",kind=\"hwraid\",member=\"32:1\",role=\"active\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_evidence_disagreement{group=\"hwraid:c0/v0\",kind=\"hwraid\"}"
        ),
        Some(1.0),
        "the controller still says Optimal"
    );
    promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    assert_golden("hwraid-smart-risk", &text);
}

#[test]
fn hwraid_predictive_failure_from_the_controller_is_at_risk() {
    // No smartctl here: the controller's own predictive-failure count and the drive's SMART
    // alert (storcli /call/eall/sall show all J) make 32:3 at risk, its RAID5 degraded.
    let text = check(
        "hwraid-predictive-failure",
        "hwraid",
        &[("hwraid:c0/v0", "redundant"), ("hwraid:c0/v1", "degraded")],
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_at_risk{group=\"hwraid:c0/v1\",kind=\"hwraid\",member=\"32:3\",role=\"active\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_hwraid_drive_predictive_failures{controller=\"0\",drive=\"32:3\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn hwraid_no_controller_is_not_present() {
    let snap = snapshot("hwraid-no-controller", &["hwraid"]);
    let text = normalized_metrics(&snap);
    assert_eq!(
        metric_value(&text, "sparewatch_collector_present{collector=\"hwraid\"}"),
        Some(0.0)
    );
    let snap = snapshot("hwmon-redundant", &["hwraid"]);
    assert_eq!(
        metric_value(
            &normalized_metrics(&snap),
            "sparewatch_collector_present{collector=\"hwraid\"}"
        ),
        Some(0.0),
        "no storcli binary"
    );
}

#[test]
fn hwraid_command_that_never_exits_marks_only_hwraid_down() {
    let text = only_down(
        "hwraid-timeout",
        "hwraid",
        "hwmon",
        "no answer within 500ms",
    );
    assert_eq!(
        group_state(&text, "fan:it8728").as_deref(),
        Some("redundant")
    );
}

#[test]
fn hwraid_broken_json_marks_only_hwraid_down() {
    let text = only_down(
        "hwraid-broken-json",
        "hwraid",
        "hwmon",
        "parsing storcli /call show all J",
    );
    assert_golden("hwraid-broken-json", &text);
}

#[test]
fn hwraid_check_exit_code() {
    let out = run_on("check", "hwraid-raid5-failed", "hwraid");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hwraid:c0/v1"));
}

/// A copy of fixture `name` in a temporary directory, to change before collecting.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture(name).join("."))
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(status.success());
    dir
}

fn collect_hwraid(root: &std::path::Path) -> String {
    let mut args = vec![
        "sparewatch".to_string(),
        "--collector.disable-defaults".into(),
        "--collector.hwraid".into(),
    ];
    args.extend(fixture_args(root));
    let snap = sparewatch::collect_with_args(args, fixed_now()).expect("collects");
    normalized_metrics(&snap)
}

/// A RAID10 of two mirrored pairs that lost one drive: required stays 2 (from the layout),
/// the count alone says degraded, the controller's `Dgrd` makes it no_redundancy.
#[test]
fn hwraid_raid10_one_lost_is_no_redundancy() {
    let root = fixture_copy("hwraid-raid10-two-spans");
    let show = root.path().join("storcli/show-all.json");
    let text = std::fs::read_to_string(&show).expect("read");
    // Offln occurrences: span 0 row 1, span 1 row 0 (topology), PDs 32:1, 32:2.
    let mut n = 0;
    let changed: Vec<String> = text
        .split_inclusive('\n')
        .map(|l| {
            if l.contains("\"State\": \"Offln\"") {
                n += 1;
                if n == 2 || n == 4 {
                    return l.replace("Offln", "Onln");
                }
            }
            l.to_string()
        })
        .collect();
    assert_eq!(n, 4, "fixture layout changed");
    std::fs::write(&show, changed.concat()).expect("write");
    let text = collect_hwraid(root.path());
    assert_eq!(
        crate::hwmon::group_state(&text, "hwraid:c0/v0").as_deref(),
        Some("no_redundancy"),
        "{text}"
    );
    let g = "{group=\"hwraid:c0/v0\",kind=\"hwraid\"}";
    assert_eq!(
        metric_value(&text, &format!("sparewatch_group_members_required{g}")),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&text, &format!("sparewatch_group_members_healthy{g}")),
        Some(3.0)
    );
}

/// The SCSI host lookup only adds device keys: a listing error (here the controller's PCI
/// device is not a directory) is logged, the collector stays up with its groups.
#[test]
fn hwraid_scsi_host_listing_error_keeps_the_collector_up() {
    let root = fixture_copy("hwraid-optimal");
    let pci = root.path().join("sys/bus/pci/devices/0000:18:00.0");
    std::fs::remove_dir_all(&pci).expect("rm");
    std::fs::write(&pci, "not a directory").expect("write");
    let text = collect_hwraid(root.path());
    assert_eq!(
        metric_value(&text, "sparewatch_collector_up{collector=\"hwraid\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        crate::hwmon::group_state(&text, "hwraid:c0/v0").as_deref(),
        Some("redundant")
    );
    assert!(text.contains("scsi_host=\"\""), "{text}");
}
