//! What the kernel fault lab (tests/lab, docs/lab.md) saw a real kernel show that the other
//! fixture trees did not have, kept as fixtures so the collectors are held to it without
//! a VM.

use crate::support::{
    assert_golden, metric_value, normalized_metrics, promtool_check_metrics, snapshot,
};

/// A dm-multipath map right after it was loaded, before any I/O: the kernel reports
/// `queue_io` 1 and its only path group as enabled (`E`), not active. Captured in the lab
/// with `dmsetup status --target multipath` (tests/fixtures/mpath-fresh-map).
#[test]
fn mpath_fresh_map_is_redundant_with_its_paths_active() {
    let s = snapshot("mpath-fresh-map", &["multipath"]);
    let g = s
        .groups
        .iter()
        .find(|g| g.name == "mpath:mpatha")
        .expect("group mpath:mpatha");
    assert_eq!(
        (g.state.as_str(), g.members_healthy, g.members_total),
        ("redundant", 2, 2)
    );
    let roles: Vec<(&str, &str)> = g
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.role.as_str()))
        .collect();
    assert_eq!(roles, [("sda", "active"), ("sdb", "active")]);
    let text = String::from_utf8_lossy(&s.metrics_text).into_owned();
    assert_eq!(
        metric_value(&text, "sparewatch_multipath_queue_io{map=\"mpatha\"}"),
        Some(1.0)
    );
    promtool_check_metrics(&text);
    assert_golden("mpath-fresh-map", &normalized_metrics(&s));
}
