//! Cost follows change (issue 14), on the built binary: a collector pass that finds what the
//! last one found re-renders only the tail of `/metrics` (the collector's own figures), not
//! the groups; a pass that finds a change renders everything.

use std::time::{Duration, Instant};

use sparewatch::fixture::SysTree;

use crate::support::{metric_value, RunningAgent};

const RENDERS: &str = "sparewatch_engine_renders_total";
const LAST_SUCCESS: &str = "sparewatch_collector_last_success_timestamp_seconds{collector=\"net\"}";
const NO_REDUNDANCY: &str = "sparewatch_group_state{group=\"bond:bond0\",kind=\"bond\",state=\"no_redundancy\",by_design=\"false\"}";

#[test]
fn passes_that_find_nothing_new_render_no_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = SysTree::new(dir.path()).expect("tree");
    for s in ["eth0", "eth1"] {
        t.nic(s).expect("nic");
    }
    t.bond("bond0", "active-backup 1", &["eth0", "eth1"], 0)
        .expect("bond");
    std::fs::write(
        dir.path().join("config.yml"),
        "collectors:\n  net:\n    interval: 100ms\n",
    )
    .expect("config");
    let args: Vec<String> = vec![
        "run".into(),
        "--collector.disable-defaults".into(),
        "--collector.net".into(),
        format!("--path.sysfs={}", dir.path().join("sys").display()),
        format!("--path.procfs={}", dir.path().join("proc").display()),
        format!("--config.file={}", dir.path().join("config.yml").display()),
        format!("--state.dir={}", dir.path().join("state").display()),
        "--engine.hold-down=100ms".into(),
    ];
    let agent = RunningAgent::start(&args, dir.path(), "bond0");
    agent.wait_for("bond0 reported", |m| {
        metric_value(m, RENDERS).is_some() && m.contains("bond:bond0")
    });
    // Let start-up settle, then watch ten intervals' worth of passes.
    std::thread::sleep(Duration::from_millis(500));
    let before = agent.scrape();
    std::thread::sleep(Duration::from_millis(1000));
    let after = agent.scrape();
    let value = |m: &str, s: &str| metric_value(m, s).unwrap_or_else(|| panic!("{s}:\n{m}"));
    assert!(
        value(&after, LAST_SUCCESS) > value(&before, LAST_SUCCESS),
        "no pass in a second at a 100 ms interval"
    );
    assert_eq!(
        value(&after, RENDERS),
        value(&before, RENDERS),
        "a pass that found nothing new rendered the body"
    );

    // A change: the next pass renders, and the group shows it.
    let t0 = Instant::now();
    t.link("eth1", false).expect("link");
    let changed = agent.wait_for("no_redundancy", |m| {
        metric_value(m, NO_REDUNDANCY) == Some(1.0)
    });
    assert!(value(&changed, RENDERS) > value(&after, RENDERS));
    assert!(t0.elapsed() < Duration::from_secs(10));
    agent.stop();
}
