//! The stretched safety net of the net collector over a fixture tree, on a clock the test
//! drives: an interval pass within the period reads nothing (the exported counters say so),
//! lost events and a stopped watcher still force a full pass.

use super::*;
use crate::safety_net::{reading_value as value, stepping_clock};

fn nic(root: &Path, name: &str, carrier: &str) {
    let d = root.join("sys/class/net").join(name);
    std::fs::create_dir_all(d.join("device")).unwrap();
    for (f, v) in [
        ("flags", "0x1003"),
        ("carrier", carrier),
        ("operstate", "up"),
        ("uevent", &format!("INTERFACE={name}\nIFINDEX=2")),
    ] {
        std::fs::write(d.join(f), format!("{v}\n")).unwrap();
    }
}

/// (full passes, skipped passes, interfaces read), as exported.
fn counters(c: &Collection) -> (f64, f64, f64) {
    (
        value(c, "sparewatch_net_full_passes_total", None),
        value(c, "sparewatch_net_full_passes_skipped_total", None),
        value(c, "sparewatch_net_interfaces_read_total", None),
    )
}

#[test]
fn interval_passes_read_nothing_while_events_are_live_until_the_period_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    nic(dir.path(), "eth0", "1");
    nic(dir.path(), "eth1", "1");
    let (t, clock) = stepping_clock();
    let config = NetConfig {
        groups: vec![LinkGroupConfig {
            name: "uplinks".into(),
            members: vec!["eth0".into(), "eth1".into()],
            required: 2,
            by_design: false,
        }],
        ..NetConfig::default()
    };
    let mut c = NetCollector::with_clock(Roots::under(dir.path()), config, None, clock);
    // As `watch` does; `watcher` stands for the rtnetlink thread's reference.
    let pending = Arc::new(Mutex::new(Pending::default()));
    let watcher = Arc::clone(&pending);
    c.pending = Some(pending);

    let first = c.collect().unwrap();
    assert_eq!(counters(&first), (1.0, 0.0, 2.0), "start: a full pass");
    // The pass took one second on this clock: the period is 200 s.
    assert_eq!(
        value(&first, "sparewatch_net_safety_net_period_seconds", None),
        200.0
    );

    // A change no event announced is not read by an interval pass within the period.
    nic(dir.path(), "eth1", "0");
    let idle = c.collect().unwrap();
    assert_eq!(
        counters(&idle),
        (1.0, 1.0, 2.0),
        "the interval pass read nothing"
    );
    assert_eq!(
        value(&idle, "sparewatch_net_link_carrier", Some("eth1")),
        1.0,
        "remembered reading"
    );
    assert_eq!(idle.groups, first.groups, "the last pass's groups");
    assert_eq!(idle.groups.len(), 1);

    // An event naming eth1 re-reads it alone.
    watcher.lock().unwrap().names.insert("eth1".into());
    let event = c.collect().unwrap();
    assert_eq!(counters(&event), (1.0, 1.0, 3.0));
    assert_eq!(
        value(&event, "sparewatch_net_link_carrier", Some("eth1")),
        0.0
    );
    assert_ne!(event.groups, first.groups, "eth1 is down in its group");
    let after_event = c.collect().unwrap();
    assert_eq!(counters(&after_event), (1.0, 2.0, 3.0), "skipped");
    assert_eq!(
        after_event.groups, event.groups,
        "the event's reading is kept"
    );

    // Lost events (ENOBUFS) force a full pass within the period.
    nic(dir.path(), "eth0", "0");
    watcher.lock().unwrap().all = true;
    let lost = c.collect().unwrap();
    assert_eq!(counters(&lost), (2.0, 2.0, 5.0), "lost events: full pass");
    assert_eq!(
        value(&lost, "sparewatch_net_link_carrier", Some("eth0")),
        0.0
    );

    // The period ran out: the interval pass is a full one again.
    *t.lock().unwrap() += Duration::from_secs(200);
    let due = c.collect().unwrap();
    assert_eq!(counters(&due), (3.0, 2.0, 7.0), "period over: full pass");
    let skipped = c.collect().unwrap();
    assert_eq!(counters(&skipped), (3.0, 3.0, 7.0));

    // The watcher thread stopped (its reference dropped): every interval pass is full.
    drop(watcher);
    let dead = c.collect().unwrap();
    assert_eq!(counters(&dead), (4.0, 3.0, 9.0), "no events: full pass");
    let dead = c.collect().unwrap();
    assert_eq!(counters(&dead), (5.0, 3.0, 11.0));
}

#[test]
fn without_events_every_pass_is_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    nic(dir.path(), "eth0", "1");
    let (_t, clock) = stepping_clock();
    let mut c =
        NetCollector::with_clock(Roots::under(dir.path()), NetConfig::default(), None, clock);
    for n in 1..=3 {
        c.collect().unwrap();
        assert_eq!(c.passes(), (n, 0));
        assert_eq!(c.interfaces_read(), n);
    }
}
