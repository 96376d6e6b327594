//! md RAID, dm-multipath and NVMe multipath against the fixture trees in
//! tests/fixtures/{md,mpath,nvme}-*: the collectors' groups, the engine's states, `status`,
//! `check`, and the whole `/metrics` output per scenario (golden files
//! tests/golden/<scenario>.prom, refreshed with `UPDATE_GOLDEN=1 cargo test --test it storage`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{
    assert_golden, fixed_now, fixture, fixture_args, normalized_metrics, promtool_check_metrics,
};
use sparewatch::snapshot::{GroupView, Snapshot};
use sparewatch_collectors::md::MdCollector;
use sparewatch_collectors::multipath::MultipathCollector;
use sparewatch_collectors::{Collector, GroupState, MemberHealth, Role, Roots};

/// `sparewatch status` over a tree with only `collector` enabled, at the fixed clock.
fn snapshot_with(root: &Path, collector: &str, extra: &[&str]) -> Snapshot {
    let mut args: Vec<String> = vec![
        "sparewatch".into(),
        "status".into(),
        "--collector.disable-defaults".into(),
        format!("--collector.{collector}"),
    ];
    args.extend(fixture_args(root));
    args.extend(extra.iter().map(|s| s.to_string()));
    sparewatch::collect_with_args(args, fixed_now()).expect("collects")
}

fn snapshot(scenario: &str, collector: &str) -> Snapshot {
    crate::support::snapshot(scenario, &[collector])
}

fn group<'a>(s: &'a Snapshot, name: &str) -> &'a GroupView {
    s.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name} in {:?}", names(s)))
}

/// (member, role, healthy) of a group's members, in order.
fn roles<'a>(s: &'a Snapshot, name: &str) -> Vec<(&'a str, &'a str, bool)> {
    group(s, name)
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.role.as_str(), m.healthy))
        .collect()
}

fn names(s: &Snapshot) -> Vec<&str> {
    s.groups.iter().map(|g| g.name.as_str()).collect()
}

/// (group, state, healthy, required, by_design) for every group, sorted by name.
fn states(s: &Snapshot) -> Vec<(String, String, u32, u32, bool)> {
    let mut v: Vec<_> = s
        .groups
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                g.state.to_string(),
                g.members_healthy,
                g.members_required,
                g.by_design,
            )
        })
        .collect();
    v.sort();
    v
}

fn row(
    name: &str,
    state: &str,
    healthy: u32,
    required: u32,
    by_design: bool,
) -> (String, String, u32, u32, bool) {
    (
        name.to_string(),
        state.to_string(),
        healthy,
        required,
        by_design,
    )
}

fn stable_metrics(s: &Snapshot) -> String {
    normalized_metrics(s)
}

/// promtool-clean, and equal to tests/golden/<scenario>.prom.
fn golden(scenario: &str, s: &Snapshot) {
    promtool_check_metrics(&String::from_utf8_lossy(&s.metrics_text));
    assert_golden(scenario, &normalized_metrics(s));
}

fn collector_up(s: &Snapshot, name: &str) -> bool {
    s.collectors
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.up)
        .unwrap_or(false)
}

// ------------------------------------------------------------------------------- md

#[test]
fn md_healthy_every_level() {
    let s = snapshot("md-healthy", "md");
    assert!(collector_up(&s, "md"));
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "redundant", 2, 1, false),
            row("md:md1", "redundant", 3, 1, false),
            row("md:md2", "redundant", 3, 2, false),
            row("md:md3", "redundant", 3, 2, false),
            row("md:md4", "redundant", 4, 2, false),
            row("md:md5", "redundant", 4, 3, false),
            row("md:md6", "no_redundancy", 2, 2, true),
            row("md:md7", "no_redundancy", 2, 2, true),
        ]
    );
    golden("md-healthy", &s);
}

/// The redundant levels (md0..md5 in the fixtures) with one member out of service
/// (failed, or rebuilding: a rebuilding member is not yet healthy).
fn one_member_down() -> Vec<(String, String, u32, u32, bool)> {
    vec![
        // 2-way raid1: the survivor is the last copy.
        row("md:md0", "no_redundancy", 1, 1, false),
        // 3-way raid1 with one down: still survives one more failure.
        row("md:md1", "degraded", 2, 1, false),
        row("md:md2", "no_redundancy", 2, 2, false),
        // RAID5 of three with one down.
        row("md:md3", "no_redundancy", 2, 2, false),
        // RAID6 of four with one down.
        row("md:md4", "degraded", 3, 2, false),
        // raid10 near=2: the next failure may hit the mirror partner.
        row("md:md5", "no_redundancy", 3, 3, false),
    ]
}

#[test]
fn md_one_failed_every_level() {
    let s = snapshot("md-one-failed", "md");
    assert_eq!(
        states(&s),
        [
            one_member_down(),
            vec![
                // raid0/linear with a member gone: the array is broken.
                row("md:md6", "failed", 1, 2, true),
                row("md:md7", "failed", 1, 2, true),
            ],
        ]
        .concat()
    );
    let md3 = group(&s, "md:md3");
    let failed = md3.members.iter().find(|m| m.name == "nvme1n1p1").unwrap();
    assert!(!failed.healthy);
    assert_eq!(failed.reason.as_deref(), Some("faulty"));
    let (code, line) = sparewatch::status::check(&s);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("md:md3 no_redundancy (nvme1n1p1: faulty)"),
        "{line}"
    );
    let table = sparewatch::status::table(&s);
    assert!(table.contains("md:md4"), "{table}");
    golden("md-one-failed", &s);
}

#[test]
fn md_recovering_member_is_not_yet_healthy() {
    let s = snapshot("md-recovering", "md");
    assert_eq!(states(&s), one_member_down());
    let m = &group(&s, "md:md0").members[1];
    assert_eq!((m.name.as_str(), m.healthy), ("sdb1", false));
    assert_eq!(m.reason.as_deref(), Some("rebuilding"));
    let text = stable_metrics(&s);
    assert!(
        text.contains("sparewatch_md_sync_completed_ratio{device=\"md0\"} 0.2255"),
        "rebuild progress not exported"
    );
    assert!(text.contains("sparewatch_md_sync_action{device=\"md3\",action=\"recover\"} 1"));
    golden("md-recovering", &s);
}

#[test]
fn md_resync_keeps_members_in_sync() {
    let s = snapshot("md-resync", "md");
    assert!(
        s.groups.iter().all(|g| g.state == "redundant"),
        "{:?}",
        states(&s)
    );
    let text = stable_metrics(&s);
    assert!(text.contains("sparewatch_md_sync_action{device=\"md1\",action=\"resync\"} 1"));
    assert!(text.contains("sparewatch_md_array_state{device=\"md0\",state=\"read-auto\"} 1"));
    golden("md-resync", &s);
}

#[test]
fn md_hot_spares_are_spare_members() {
    let s = snapshot("md-spare", "md");
    for g in s.groups.iter().filter(|g| g.name != "md:md8") {
        assert_eq!(g.state, "redundant", "{}", g.name);
        let spares: Vec<_> = g.members.iter().filter(|m| m.role == "spare").collect();
        assert_eq!(spares.len(), 1, "{}", g.name);
        assert!(spares[0].healthy);
    }
    // Rebuilt onto its spare, the failed member still attached: a dead spare, so the
    // array is fully redundant again but degraded until the disk is removed and replaced.
    let md8 = group(&s, "md:md8");
    assert_eq!(md8.state, "degraded");
    assert_eq!(md8.spare, 1);
    let dead = md8.members.iter().find(|m| m.name == "sdaa").unwrap();
    assert_eq!((dead.role.as_str(), dead.healthy), ("spare", false));
    golden("md-spare", &s);
}

#[test]
fn md_inactive_array_is_failed() {
    let s = snapshot("md-inactive", "md");
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "redundant", 2, 1, false),
            row("md:md127", "failed", 0, 1, false),
        ]
    );
    assert!(group(&s, "md:md127")
        .members
        .iter()
        .all(|m| m.reason.as_deref() == Some("array inactive")));
    golden("md-inactive", &s);
}

#[test]
fn md_removed_members_leave_missing_slots() {
    let s = snapshot("md-removed", "md");
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "no_redundancy", 2, 2, false),
            row("md:md1", "degraded", 3, 2, false),
        ]
    );
    let slot = group(&s, "md:md1")
        .members
        .iter()
        .find(|m| m.name == "slot2")
        .expect("the emptied slot is a member");
    assert_eq!(slot.reason.as_deref(), Some("missing"));
    golden("md-removed", &s);
}

#[test]
fn md_replacement_and_write_errors_are_risks() {
    let s = snapshot("md-replacing", "md");
    let g = group(&s, "md:md0");
    assert_eq!(g.state, "degraded");
    let by_name = |n: &str| g.members.iter().find(|m| m.name == n).unwrap();
    assert!(by_name("sdb").at_risk);
    assert!(by_name("sdc").at_risk);
    assert_eq!(by_name("sdd").role, "spare");
    golden("md-replacing", &s);
}

/// The files a Debian 6.1 kernel showed under QEMU during a raid5 recovery onto its spare.
#[test]
fn md_captured_recovery_from_a_real_kernel() {
    let s = snapshot("md-captured-recovery", "md");
    assert_eq!(
        states(&s),
        vec![row("md:md1", "no_redundancy", 2, 2, false)]
    );
    assert_eq!(
        roles(&s, "md:md1"),
        [
            ("vdc", "active", true),
            ("vdd", "spare", false),
            ("vde", "active", true),
            ("vdf", "active", false),
        ]
    );
    golden("md-captured-recovery", &s);
}

#[test]
fn md_without_sysfs_uses_mdstat_slots() {
    let s = snapshot("md-mdstat-only", "md");
    assert_eq!(
        states(&s),
        vec![row("md:md0", "no_redundancy", 2, 2, false)]
    );
    golden("md-mdstat-only", &s);
}

#[test]
fn md_members_name_their_disks() {
    let mut c = MdCollector::new(Roots::under(&fixture("md-healthy")));
    let col = c.collect().expect("collects");
    assert!(col.present);
    let devices = |g: &str| -> Vec<Option<String>> {
        col.groups
            .iter()
            .find(|x| x.name == g)
            .unwrap()
            .members
            .iter()
            .map(|m| m.device.clone())
            .collect()
    };
    assert_eq!(devices("md:md0"), [Some("sda".into()), Some("sdb".into())]);
    assert_eq!(devices("md:md1")[0], Some("sdc".into()));
    assert_eq!(devices("md:md3")[1], Some("nvme1n1".into()));
}

#[test]
fn md_absent_is_not_present() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/block")).unwrap();
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    let mut c = MdCollector::new(Roots::under(dir.path()));
    assert!(!c.collect().unwrap().present);
    std::fs::write(
        dir.path().join("proc/mdstat"),
        "Personalities : \nunused devices: <none>\n",
    )
    .unwrap();
    assert!(!c.collect().unwrap().present);
}

/// An array line of a shape no kernel printed costs only that array: it is `unknown`
/// with the line as the reason, the collector stays up and the next array is reported.
#[test]
fn md_unknown_array_shape_costs_only_that_array() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/block")).unwrap();
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    std::fs::write(
        dir.path().join("proc/mdstat"),
        "md0 : exploded raid1 sda[0]\n      100 blocks [2/2] [UU]\n\n\
         md1 : active raid1 sdc[1] sdb[0]\n      100 blocks super 1.2 [2/2] [UU]\n",
    )
    .unwrap();
    let s = snapshot_with(dir.path(), "md", &[]);
    assert!(collector_up(&s, "md"));
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "unknown", 0, 1, false),
            row("md:md1", "redundant", 2, 1, false),
        ]
    );
    let why = group(&s, "md:md0").members[0]
        .reason
        .clone()
        .unwrap_or_default();
    assert!(
        why.contains("/proc/mdstat line 1") && why.contains("exploded"),
        "{why}"
    );
}

/// The source as a whole unreadable (here `/proc/mdstat` is a directory: EISDIR) is
/// still the collector down, with the file in the error.
#[test]
fn md_unreadable_mdstat_marks_only_md_down() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/block")).unwrap();
    std::fs::create_dir_all(dir.path().join("proc/mdstat")).unwrap();
    let s = snapshot_with(dir.path(), "md", &[]);
    assert!(!collector_up(&s, "md"));
    let err = s
        .collectors
        .iter()
        .find(|c| c.name == "md")
        .and_then(|c| c.last_error.clone())
        .unwrap_or_default();
    assert!(err.contains("mdstat"), "{err}");
}

// ------------------------------------------------- md: real-world shapes (issue 15)

/// Kernel 6.13+ `broken` raid5 beside a healthy mirror (tests/fixtures/realworld-md-broken).
#[test]
fn md_broken_array_is_failed_and_the_others_stay() {
    let s = snapshot("realworld-md-broken", "md");
    assert!(collector_up(&s, "md"));
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "failed", 0, 3, false),
            row("md:md1", "redundant", 2, 1, false),
        ]
    );
    assert_eq!(group(&s, "md:md0").stated_state, Some(GroupState::Failed));
    golden("realworld-md-broken", &s);
}

/// The same files without sysfs: `broken` from /proc/mdstat alone is failed too.
#[test]
fn md_broken_array_from_mdstat_alone_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sys/block")).unwrap();
    std::fs::create_dir_all(tree.join("proc")).unwrap();
    std::fs::copy(
        fixture("realworld-md-broken").join("proc/mdstat"),
        tree.join("proc/mdstat"),
    )
    .unwrap();
    let s = snapshot_with(&tree, "md", &[]);
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "failed", 0, 3, false),
            row("md:md1", "redundant", 2, 1, false),
        ]
    );
}

/// /proc/mdstat alone with the shapes other projects met (see the tree's README.md).
#[test]
fn md_mdstat_shapes_each_cost_only_themselves() {
    let s = snapshot("realworld-md-mdstat-shapes", "md");
    assert!(collector_up(&s, "md"));
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "no_redundancy", 1, 1, false),
            row("md:md10", "no_redundancy", 2, 2, true),
            row("md:md11", "no_redundancy", 2, 2, true),
            row("md:md126", "redundant", 2, 1, false),
            row("md:md4", "failed", 0, 1, false),
            row("md:md5", "no_redundancy", 3, 3, false),
            row("md:md9", "degraded", 4, 1, false),
        ]
    );
    assert_eq!(
        roles(&s, "md:md9")[4..],
        [
            ("sdo", "spare", false),
            ("sdp", "spare", false),
            ("sdq", "spare", true)
        ]
    );
    golden("realworld-md-mdstat-shapes", &s);
}

/// `md/rdN` links are the slot source when `dev-*/slot` is absent; with neither, in-sync
/// members still fill the slots (a missing attribute never makes an array failed).
#[test]
fn md_rd_links_give_the_slots() {
    let s = snapshot("realworld-md-rd-links", "md");
    assert_eq!(
        states(&s),
        vec![
            row("md:md0", "no_redundancy", 2, 2, true),
            row("md:md1", "redundant", 2, 1, false),
            row("md:md2", "redundant", 2, 1, false),
            row("md:md6", "degraded", 3, 2, false),
        ]
    );
    assert_eq!(
        roles(&s, "md:md6"),
        [
            ("sdq", "active", true),
            ("sdr", "active", true),
            ("sds", "active", true),
            ("sdt", "active", false),
        ]
    );
    golden("realworld-md-rd-links", &s);
}

/// Both members' `state` empty: unknown with the reason, never failed.
#[test]
fn md_unreadable_member_states_are_unknown_not_failed() {
    let s = snapshot("realworld-md-state-unreadable", "md");
    let g = group(&s, "md:md0");
    assert_eq!(g.state, "unknown");
    for m in &g.members {
        assert!(m.unknown, "{m:?}");
        assert!(
            m.reason.as_deref().unwrap_or("").contains("state empty"),
            "{m:?}"
        );
    }
    assert_eq!(group(&s, "md:md1").state, "redundant");
    let (code, line) = sparewatch::status::check(&s);
    assert_eq!(code, 1, "{line}");
    golden("realworld-md-state-unreadable", &s);
}

/// A copy of md-healthy in which md3 has a member with a malformed `slot` and md4 a
/// malformed `raid_disks`.
fn md_two_malformed_arrays(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    crate::monitoring::copy_tree(&fixture("md-healthy"), &tree);
    let md = tree.join("sys/block");
    std::fs::write(md.join("md3/md/dev-nvme1n1p1/slot"), "banana\n").unwrap();
    std::fs::write(md.join("md4/md/raid_disks"), "x\n").unwrap();
    tree
}

#[test]
fn md_malformed_array_is_unknown_and_the_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let tree = md_two_malformed_arrays(dir.path());
    let s = snapshot_with(&tree, "md", &[]);
    assert!(collector_up(&s, "md"));
    let got = states(&s);
    let healthy = snapshot("md-healthy", "md");
    for (want, got) in states(&healthy).iter().zip(&got) {
        match want.0.as_str() {
            "md:md3" | "md:md4" => {
                assert_eq!(got.0, want.0);
                assert_eq!(got.1, "unknown", "{got:?}");
                // required still follows the level (from /proc/mdstat).
                assert_eq!(got.3, want.3, "{got:?}");
            }
            _ => assert_eq!(got, want),
        }
    }
    assert_eq!(got.len(), 8);
    let md3 = group(&s, "md:md3");
    let names: Vec<&str> = md3.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["nvme0n1p1", "nvme1n1p1", "nvme2n1p1"]);
    for m in &md3.members {
        let why = m.reason.as_deref().unwrap_or("");
        assert!(
            !m.healthy && why.contains("dev-nvme1n1p1/slot") && why.contains("banana"),
            "{m:?}"
        );
    }
    let why = group(&s, "md:md4").members[0]
        .reason
        .clone()
        .unwrap_or_default();
    assert!(why.contains("raid_disks"), "{why}");
    // Unknown is a warning in `check`, naming the group and why.
    let (code, line) = sparewatch::status::check(&s);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("md:md3 unknown (nvme0n1p1: parsing"),
        "{line}"
    );
}

/// `sparewatch status` on `tree` with only `collector` and `--log.level warn`: the
/// stderr lines that contain `needle`, and the whole stderr.
fn warn_lines(tree: &Path, collector: &str, needle: &str) -> (Vec<String>, String) {
    let mut args = vec![
        "status".to_string(),
        "--collector.disable-defaults".into(),
        format!("--collector.{collector}"),
        "--log.level".into(),
        "warn".into(),
    ];
    args.extend(fixture_args(tree));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = crate::support::sparewatch(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = stderr
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect();
    (lines, stderr)
}

/// The broken arrays are logged once per collection, at warn.
#[test]
fn md_malformed_arrays_are_logged_once_at_warn() {
    let dir = tempfile::tempdir().unwrap();
    let tree = md_two_malformed_arrays(dir.path());
    let (warns, stderr) = warn_lines(&tree, "md", "could not be read");
    assert_eq!(warns.len(), 1, "{stderr}");
    assert!(warns[0].contains("WARN"), "{stderr}");
    assert!(
        warns[0].contains("md3") && warns[0].contains("md4") && warns[0].contains("banana"),
        "{stderr}"
    );
}

// ------------------------------------------------------------------------ multipath

#[test]
fn mpath_healthy() {
    let s = snapshot("mpath-healthy", "multipath");
    assert!(collector_up(&s, "multipath"));
    assert_eq!(
        states(&s),
        vec![
            row("mpath:mpatha", "redundant", 2, 1, false),
            row("mpath:mpathb", "redundant", 4, 1, false),
            row("mpath:mpathc", "redundant", 2, 1, false),
        ]
    );
    // Active/passive: the path of the enabled (not current) group is the standby.
    assert_eq!(
        roles(&s, "mpath:mpatha"),
        [("sdb", "active", true), ("sdc", "standby", true)]
    );
    golden("mpath-healthy", &s);
}

#[test]
fn mpath_one_failed_path() {
    let s = snapshot("mpath-one-failed", "multipath");
    assert_eq!(
        states(&s),
        vec![
            // The idle standby path failed: running on the last path.
            row("mpath:mpatha", "no_redundancy", 1, 1, false),
            row("mpath:mpathb", "degraded", 3, 1, false),
            // A 2-path map with one failed path.
            row("mpath:mpathc", "no_redundancy", 1, 1, false),
        ]
    );
    let sdc = &group(&s, "mpath:mpatha").members[1];
    assert_eq!((sdc.name.as_str(), sdc.healthy), ("sdc", false));
    assert_eq!(sdc.reason.as_deref(), Some("path failed"));
    golden("mpath-one-failed", &s);
}

#[test]
fn mpath_all_paths_failed() {
    let s = snapshot("mpath-all-failed", "multipath");
    assert!(
        s.groups.iter().all(|g| g.state == "failed"),
        "{:?}",
        states(&s)
    );
    let text = stable_metrics(&s);
    assert!(text.contains("sparewatch_multipath_queue_io{map=\"mpathb\"} 1"));
    let (code, _) = sparewatch::status::check(&s);
    assert_eq!(code, 2);
    golden("mpath-all-failed", &s);
}

/// Maps exist but dmsetup is absent: the collector stays up and judges the paths from
/// sysfs; here the paths have no SCSI device state, so the map is unknown and says why.
#[test]
fn mpath_maps_without_dmsetup_fall_back_to_sysfs() {
    let s = snapshot("mpath-no-dmsetup", "multipath");
    assert!(collector_up(&s, "multipath"));
    let g = group(&s, "mpath:mpatha");
    assert_eq!(g.state, "unknown");
    for m in &g.members {
        let why = m.reason.as_deref().unwrap_or("");
        assert!(
            m.unknown
                && why.contains("no SCSI device state")
                && why.contains("dmsetup was not found"),
            "{m:?}"
        );
    }
}

/// realworld-mpath-sysfs-fallback: no dmsetup, the paths' SCSI device states decide.
#[test]
fn mpath_sysfs_fallback_judges_paths_by_scsi_state() {
    let s = snapshot("realworld-mpath-sysfs-fallback", "multipath");
    assert!(collector_up(&s, "multipath"));
    assert_eq!(
        states(&s),
        vec![
            row("mpath:mpatha", "redundant", 2, 1, false),
            row("mpath:mpathb", "no_redundancy", 1, 1, false),
        ]
    );
    let sde = group(&s, "mpath:mpathb")
        .members
        .iter()
        .find(|m| m.name == "sde")
        .expect("sde");
    assert_eq!(sde.reason.as_deref(), Some("SCSI device transport-offline"));
    golden("realworld-mpath-sysfs-fallback", &s);
}

/// dmsetup exiting non-zero costs only the dm path states: the maps are still reported.
#[test]
fn mpath_failing_dmsetup_costs_only_the_dm_states() {
    let s = snapshot("realworld-mpath-dmsetup-fails", "multipath");
    assert!(collector_up(&s, "multipath"));
    assert_eq!(
        states(&s),
        vec![
            row("mpath:mpatha", "redundant", 2, 1, false),
            row("mpath:mpathb", "redundant", 2, 1, false),
        ]
    );
    let text = normalized_metrics(&s);
    assert!(
        text.contains("sparewatch_multipath_sysfs_fallback{map=\"mpatha\"} 1"),
        "{text}"
    );
    golden("realworld-mpath-dmsetup-fails", &s);
}

#[test]
fn mpath_dmsetup_flag_points_at_the_binary() {
    // sysfs of one tree, dmsetup (and its captured output) of another.
    let bin = fixture("mpath-one-failed").join("sbin/dmsetup");
    let s = snapshot_with(
        &fixture("mpath-no-dmsetup"),
        "multipath",
        &["--collector.multipath.dmsetup", bin.to_str().unwrap()],
    );
    assert!(collector_up(&s, "multipath"));
    assert_eq!(group(&s, "mpath:mpathc").state, "no_redundancy");
}

/// mpath-healthy's maps and nvme-healthy's namespace in one tree, with a stand-in dmsetup
/// that prints `status` (the fixed arguments are checked as in the fixtures).
fn mpath_and_nvme_tree(dir: &Path, status: &str) -> PathBuf {
    let tree = dir.join("tree");
    crate::monitoring::copy_tree(&fixture("mpath-healthy"), &tree);
    let nvme_sys = fixture("nvme-healthy").join("sys/.");
    crate::monitoring::copy_tree(&nvme_sys, &tree.join("sys"));
    std::fs::write(tree.join("dmsetup-status.txt"), status).unwrap();
    tree
}

/// The captured lines of mpath-healthy, with mpatha's replaced by `line`.
fn healthy_status_with_mpatha(line: &str) -> String {
    let text =
        std::fs::read_to_string(fixture("mpath-healthy").join("dmsetup-status.txt")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("mpatha: "));
    lines[0] = line;
    lines.join("\n") + "\n"
}

fn rows_without(s: &Snapshot, group: &str) -> Vec<(String, String, u32, u32, bool)> {
    states(s).into_iter().filter(|r| r.0 != group).collect()
}

#[test]
fn mpath_unparsable_line_costs_only_its_map() {
    let dir = tempfile::tempdir().unwrap();
    let tree = mpath_and_nvme_tree(
        dir.path(),
        &healthy_status_with_mpatha(
            "mpatha: 0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 Q 0 0 1 E 0 1 2 8:32 A 0 0 1",
        ),
    );
    let s = snapshot_with(&tree, "multipath", &[]);
    assert!(collector_up(&s, "multipath"));
    assert_eq!(
        rows_without(&s, "mpath:mpatha"),
        vec![
            row("mpath:mpathb", "redundant", 4, 1, false),
            row("mpath:mpathc", "redundant", 2, 1, false),
            row("nvme:nvme-subsys0/nvme0n1", "redundant", 2, 1, false),
        ]
    );
    let a = group(&s, "mpath:mpatha");
    assert_eq!(a.state, "unknown");
    // Its paths, from the dm device's slaves in sysfs, unknown with the parse error.
    let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["sdb", "sdc"]);
    for m in &a.members {
        let why = m.reason.as_deref().unwrap_or("");
        assert!(
            !m.healthy && why.contains("mpatha") && why.contains("path state \"Q\""),
            "{m:?}"
        );
    }
    let text = stable_metrics(&s);
    assert!(
        text.contains("sparewatch_multipath_map_info{map=\"mpatha\""),
        "map_info of the unparsable map missing"
    );
}

/// A line without a readable map name is charged to the multipath map sysfs shows but the
/// output did not cover (mpatha); the others and NVMe are unaffected.
#[test]
fn mpath_unattributable_line_marks_the_uncovered_map_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let tree = mpath_and_nvme_tree(dir.path(), &healthy_status_with_mpatha("§§ garbled §§"));
    let s = snapshot_with(&tree, "multipath", &[]);
    assert!(collector_up(&s, "multipath"));
    assert_eq!(group(&s, "mpath:mpathb").state, "redundant");
    assert_eq!(group(&s, "nvme:nvme-subsys0/nvme0n1").state, "redundant");
    let a = group(&s, "mpath:mpatha");
    assert_eq!(a.state, "unknown");
    assert_eq!(a.members.len(), 2);
    assert!(
        a.members[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("garbled"),
        "{:?}",
        a.members[0]
    );
}

/// The unparsable lines are logged once per collection, at warn.
#[test]
fn mpath_unparsable_lines_are_logged_once_at_warn() {
    let dir = tempfile::tempdir().unwrap();
    let tree = mpath_and_nvme_tree(
        dir.path(),
        &healthy_status_with_mpatha("mpatha: 0 2097152 multipath 2 0 0 0 1 1 A 0 1 0 8:16 Q 0"),
    );
    let (warns, stderr) = warn_lines(&tree, "multipath", "could not be parsed");
    assert_eq!(warns.len(), 1, "{stderr}");
    assert!(
        warns[0].contains("WARN") && warns[0].contains("mpatha"),
        "{stderr}"
    );
}

#[test]
fn mpath_collect_names_paths_and_roles() {
    let mut c = MultipathCollector::new(
        Roots::under(&fixture("mpath-one-failed")),
        None,
        Duration::from_secs(5),
    );
    let col = c.collect().expect("collects");
    let g = col
        .groups
        .iter()
        .find(|g| g.name == "mpath:mpathb")
        .unwrap();
    assert_eq!(g.kind, "mpath");
    assert_eq!(g.required, 1);
    let got: Vec<(&str, Role, bool)> = g
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.role, m.health == MemberHealth::Healthy))
        .collect();
    assert_eq!(
        got,
        [
            ("sdd", Role::Active, true),
            ("sde", Role::Active, false),
            ("sdf", Role::Active, true),
            ("sdg", Role::Active, true),
        ]
    );
    assert_eq!(g.members[1].device.as_deref(), Some("sde"));
}

#[test]
fn nvme_healthy() {
    let s = snapshot("nvme-healthy", "multipath");
    assert_eq!(
        states(&s),
        vec![row("nvme:nvme-subsys0/nvme0n1", "redundant", 2, 1, false)]
    );
    assert_eq!(
        roles(&s, "nvme:nvme-subsys0/nvme0n1"),
        [
            ("nvme0c0n1", "active", true),
            ("nvme0c1n1", "standby", true)
        ]
    );
    golden("nvme-healthy", &s);
}

#[test]
fn nvme_one_path_inaccessible() {
    let s = snapshot("nvme-one-inaccessible", "multipath");
    assert_eq!(
        states(&s),
        vec![
            row("nvme:nvme-subsys0/nvme0n1", "no_redundancy", 1, 1, false),
            row("nvme:nvme-subsys0/nvme0n2", "redundant", 2, 1, false),
            row("nvme:nvme-subsys1/nvme1n1", "no_redundancy", 1, 1, false),
        ]
    );
    let m = &group(&s, "nvme:nvme-subsys0/nvme0n1").members[1];
    assert_eq!(m.reason.as_deref(), Some("ANA inaccessible"));
    let m = &group(&s, "nvme:nvme-subsys1/nvme1n1").members[1];
    assert_eq!(m.reason.as_deref(), Some("controller connecting"));
    golden("nvme-one-inaccessible", &s);
}

#[test]
fn md_watches_mdstat_and_the_notified_attributes() {
    let root = fixture("md-recovering");
    let files = sparewatch_collectors::md::watched_files(&Roots::under(&root));
    let rel: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    for want in [
        "proc/mdstat",
        "sys/block/md0/md/array_state",
        "sys/block/md0/md/degraded",
        "sys/block/md0/md/sync_action",
        "sys/block/md0/md/dev-sda1/state",
        "sys/block/md5/md/dev-sdp/state",
    ] {
        assert!(rel.iter().any(|r| r == want), "{want} not watched: {rel:?}");
    }
    assert!(files.iter().all(|p| p.exists()), "{rel:?}");
    // Progress is read at the interval, not watched (it is notified every checkpoint).
    assert!(!rel.iter().any(|r| r.ends_with("sync_completed")));
}

/// A disk SMART finds failing (the smart collector's `sdb` in smart-failing) that is a
/// member of a healthy mirror (md-healthy's md0 over sda1/sdb1) makes that member at risk
/// and the group degraded, across collectors.
#[test]
fn md_member_on_a_smart_failing_disk_is_at_risk() {
    let dir = tempfile::tempdir().unwrap();
    let md = fixture("md-healthy");
    let smart = fixture("smart-failing");
    let link = |target: PathBuf, name: &str| {
        std::fs::create_dir_all(dir.path().join(name).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    };
    link(md.join("sys/block"), "sys/block");
    link(md.join("sys/devices"), "sys/devices");
    link(smart.join("sys/class"), "sys/class");
    link(md.join("proc"), "proc");
    link(smart.join("usr"), "usr");
    link(smart.join("smartctl"), "smartctl");
    let s = snapshot_with(dir.path(), "md", &["--collector.smart"]);
    assert!(collector_up(&s, "smart") && collector_up(&s, "md"));
    let g = group(&s, "md:md0");
    assert_eq!(g.state, "degraded");
    let sdb1 = g.members.iter().find(|m| m.name == "sdb1").unwrap();
    assert!(sdb1.at_risk, "{sdb1:?}");
    assert!(
        sdb1.reason.as_deref().unwrap_or("").contains("SMART"),
        "{sdb1:?}"
    );
    assert_eq!(group(&s, "md:md1").state, "redundant");
}

#[test]
fn mpath_checker_states_from_multipathd() {
    let s = snapshot("mpath-checker", "multipath");
    assert_eq!(
        states(&s),
        vec![
            // sdc is still A in the device-mapper, but its checker found it faulty.
            row("mpath:mpatha", "no_redundancy", 1, 1, false),
            // sde shaky: at risk (counts, but the group is no longer clean).
            row("mpath:mpathb", "degraded", 4, 1, false),
            row("mpath:mpathc", "redundant", 2, 1, false),
        ]
    );
    let sdc = &group(&s, "mpath:mpatha").members[1];
    assert_eq!(sdc.reason.as_deref(), Some("checker faulty"));
    let text = stable_metrics(&s);
    assert!(text.contains(
        "sparewatch_multipath_path_checker_state{map=\"mpathb\",path=\"sdf\",state=\"ghost\"} 1"
    ));
    golden("mpath-checker", &s);
}

/// Maps as a 6.1 kernel reports them before their first I/O: no group active yet.
#[test]
fn mpath_captured_fresh_maps_are_redundant() {
    let s = snapshot("mpath-captured-fresh", "multipath");
    assert_eq!(
        states(&s),
        vec![
            row("mpath:mpathx", "redundant", 2, 1, false),
            row("mpath:mpathy", "redundant", 2, 1, false),
        ]
    );
    assert_eq!(
        roles(&s, "mpath:mpathx"),
        [("vdg", "active", true), ("vdh", "standby", true)]
    );
    let text = stable_metrics(&s);
    assert!(text.contains("sparewatch_multipath_queue_io{map=\"mpathx\"} 1"));
    golden("mpath-captured-fresh", &s);
}
