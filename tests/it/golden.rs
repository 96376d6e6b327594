//! Whole-`/metrics` golden files per fixture scenario, plus the state each scenario must
//! show (so a wrong golden file cannot be accepted silently).

use crate::support::*;

fn state_line(group: &str, kind: &str, state: &str) -> String {
    format!("sparewatch_group_state{{group=\"{group}\",kind=\"{kind}\",state=\"{state}\",by_design=\"false\"}}")
}

fn check_net(scenario: &str, expect: &[(&str, &str)]) {
    let snap = snapshot(scenario, &["net"]);
    let text = normalized_metrics(&snap);
    for (group, state) in expect {
        assert_eq!(
            metric_value(&text, &state_line(group, "bond", state)),
            Some(1.0),
            "{scenario}: {group} should be {state}:\n{text}"
        );
    }
    promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    assert_golden(scenario, &text);
}

#[test]
fn net_healthy() {
    check_net(
        "net-healthy",
        &[("bond:bond0", "redundant"), ("bond:bond1", "redundant")],
    );
}

#[test]
fn net_standby_lost() {
    check_net("net-standby-lost", &[("bond:bond0", "no_redundancy")]);
}

#[test]
fn net_active_lost() {
    check_net("net-active-lost", &[("bond:bond0", "no_redundancy")]);
    let snap = snapshot("net-active-lost", &["net"]);
    let text = String::from_utf8_lossy(&snap.metrics_text);
    assert!(text.contains("sparewatch_net_bond_active_slave{bond=\"bond0\",slave=\"eth1\"} 1"));
}

#[test]
fn net_all_lost() {
    check_net("net-all-lost", &[("bond:bond0", "failed")]);
}

#[test]
fn net_lacp_aggregator_mismatch() {
    // Four slaves all up, two outside the active aggregator, min_links 2: no spare left.
    check_net("net-lacp-mismatch", &[("bond:bond1", "no_redundancy")]);
    let snap = snapshot("net-lacp-mismatch", &["net"]);
    let g = &snap.groups[0];
    assert_eq!((g.members_healthy, g.members_required, g.spare), (2, 2, 0));
}
