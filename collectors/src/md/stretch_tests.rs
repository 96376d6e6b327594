//! The md collector's stretched safety net over a fixture tree (a RAID1 in the shape of
//! the kernel's md sysfs attributes and of `/proc/mdstat` as drivers/md/md.c's
//! `md_seq_show` prints it: `sdb[1](F)`, `[2/1] [U_]`), on a clock the test drives: an interval pass
//! with mdstat unchanged reads no array (the exported counters say so); a changed mdstat, a
//! wake, a new array in sysfs, the period running out and a stopped watcher each force a
//! full pass.

use super::*;
use crate::safety_net::{reading_value as value, stepping_clock};

const HEALTHY: &str = "Personalities : [raid1]\nmd0 : active raid1 sdb[1] sda[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\nunused devices: <none>\n";
const SDB_FAILED: &str = "Personalities : [raid1]\nmd0 : active raid1 sdb[1](F) sda[0]\n      1046528 blocks super 1.2 [2/1] [U_]\n\nunused devices: <none>\n";

fn write(path: &Path, v: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{v}\n")).unwrap();
}

fn raid1(root: &Path) {
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/mdstat"), HEALTHY).unwrap();
    let md = root.join("sys/block/md0/md");
    for (f, v) in [
        ("raid_disks", "2"),
        ("array_state", "clean"),
        ("level", "raid1"),
        ("degraded", "0"),
        ("sync_action", "idle"),
        ("mismatch_cnt", "0"),
        ("metadata_version", "1.2"),
    ] {
        write(&md.join(f), v);
    }
    for (i, d) in ["sda", "sdb"].iter().enumerate() {
        write(&md.join(format!("dev-{d}/state")), "in_sync");
        write(&md.join(format!("dev-{d}/slot")), &i.to_string());
        write(&md.join(format!("dev-{d}/errors")), "0");
    }
}

/// (full passes, skipped passes), as exported.
fn counters(c: &Collection) -> (f64, f64) {
    (
        value(c, "sparewatch_md_full_passes_total", None),
        value(c, "sparewatch_md_full_passes_skipped_total", None),
    )
}

fn errors_of_sdb(c: &Collection) -> f64 {
    value(c, "sparewatch_md_member_corrected_errors", Some("sdb"))
}

#[test]
fn interval_passes_read_only_mdstat_while_it_is_unchanged_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    raid1(root);
    // One second per reading of the clock: a full pass takes 1 s, the period is 200 s.
    let (t, clock) = stepping_clock();
    let mut c = MdCollector::with_clock(Roots::under(root), clock);
    // As `watch` does; `watcher` stands for the poll thread's reference.
    let woken = Arc::new(AtomicBool::new(false));
    let watcher = Arc::clone(&woken);
    c.woken = Some(woken);

    let first = c.collect().unwrap();
    assert_eq!(counters(&first), (1.0, 0.0), "start: a full pass");
    assert_eq!(
        value(&first, "sparewatch_md_safety_net_period_seconds", None),
        200.0
    );

    // What mdstat does not show waits for the period: the skipped pass reads no array.
    let md = root.join("sys/block/md0/md");
    write(&md.join("dev-sdb/errors"), "5");
    let idle = c.collect().unwrap();
    assert_eq!(counters(&idle), (1.0, 1.0), "mdstat unchanged: skipped");
    assert_eq!(errors_of_sdb(&idle), 0.0, "the last full pass's reading");
    assert_eq!(idle.groups, first.groups);

    // A member fails: mdstat changes, the next interval pass reads everything.
    write(&md.join("dev-sdb/state"), "faulty");
    std::fs::write(root.join("proc/mdstat"), SDB_FAILED).unwrap();
    let failed = c.collect().unwrap();
    assert_eq!(counters(&failed), (2.0, 1.0), "mdstat changed: full pass");
    assert_eq!(errors_of_sdb(&failed), 5.0);
    assert_ne!(failed.groups, first.groups);
    assert_eq!(counters(&c.collect().unwrap()), (2.0, 2.0));

    // A wake (a watched attribute changed) forces a full pass, mdstat unchanged or not.
    watcher.store(true, Ordering::SeqCst);
    assert_eq!(
        counters(&c.collect().unwrap()),
        (3.0, 2.0),
        "woken: full pass"
    );

    // An array sysfs lists that mdstat does not: full pass.
    write(&root.join("sys/block/md1/md/array_state"), "inactive");
    assert_eq!(
        counters(&c.collect().unwrap()),
        (4.0, 2.0),
        "new array: full"
    );
    assert_eq!(counters(&c.collect().unwrap()), (4.0, 3.0));

    // The period ran out: full pass, then skips again.
    *t.lock().unwrap() += Duration::from_secs(200);
    assert_eq!(
        counters(&c.collect().unwrap()),
        (5.0, 3.0),
        "period over: full"
    );
    assert_eq!(counters(&c.collect().unwrap()), (5.0, 4.0));

    // The watcher stopped (its reference dropped): every pass is a full one.
    drop(watcher);
    assert_eq!(
        counters(&c.collect().unwrap()),
        (6.0, 4.0),
        "no watcher: full"
    );
    assert_eq!(counters(&c.collect().unwrap()), (7.0, 4.0));
}

#[test]
fn without_the_watcher_every_pass_reads_every_array_and_exports_no_counters() {
    let dir = tempfile::tempdir().unwrap();
    raid1(dir.path());
    let mut c = MdCollector::new(Roots::under(dir.path()));
    for n in 1..=3 {
        let got = c.collect().unwrap();
        assert_eq!(c.passes(), (n, 0));
        assert!(got
            .readings
            .iter()
            .chain(&got.pass_stats)
            .all(|r| !r.name.starts_with("sparewatch_md_full_passes")));
    }
}
