//! Net collector edge cases seen on real hosts: the unused bond the bonding module creates,
//! one unreadable interface that must not hide the others, and the real-world shapes of
//! tests/fixtures/realworld-net-* (golden files tests/golden/<scenario>.prom).

use sparewatch::fixture::SysTree;

use crate::support::fixed_now;

fn states(dir: &std::path::Path) -> Vec<(String, String)> {
    let sys = dir.join("sys").display().to_string();
    let snap = sparewatch::collect_with_args(
        [
            "sparewatch",
            "--collector.disable-defaults",
            "--collector.net",
            "--path.sysfs",
            &sys,
        ],
        fixed_now(),
    )
    .expect("collects");
    assert!(
        snap.collectors.iter().all(|c| c.up),
        "collector stays up: {:?}",
        snap.collectors
    );
    snap.groups
        .iter()
        .map(|g| (g.name.clone(), g.state.to_string()))
        .collect()
}

fn two_bonds(t: &SysTree) {
    for n in ["eth0", "eth1", "eth2", "eth3"] {
        t.nic(n).expect("nic");
    }
    t.bond("bond0", "active-backup 1", &["eth0", "eth1"], 0)
        .expect("bond");
    t.bond("bond1", "active-backup 1", &["eth2", "eth3"], 0)
        .expect("bond");
}

#[test]
fn unused_bond_without_slaves_is_not_a_group_but_an_up_one_is_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = SysTree::new(dir.path()).expect("tree");
    two_bonds(&t);
    t.bond("bond9", "balance-rr 0", &[], 0).expect("bond");
    t.set("sys/class/net/bond9/flags", "0x1002").expect("down");
    let s = states(dir.path());
    assert!(!s.iter().any(|(g, _)| g == "bond:bond9"), "{s:?}");
    t.set("sys/class/net/bond9/flags", "0x1003").expect("up");
    let s = states(dir.path());
    assert!(s.contains(&("bond:bond9".into(), "failed".into())), "{s:?}");
}

#[test]
fn an_unreadable_slave_or_bond_makes_only_its_group_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = SysTree::new(dir.path()).expect("tree");
    two_bonds(&t);
    // A directory where a file should be: reading it fails with EISDIR, like an EIO would.
    let mii = t.net("eth1").join("bonding_slave/mii_status");
    std::fs::remove_file(&mii).expect("rm");
    std::fs::create_dir(&mii).expect("mkdir");
    let s = states(dir.path());
    assert!(
        s.contains(&("bond:bond0".into(), "unknown".into())),
        "{s:?}"
    );
    assert!(
        s.contains(&("bond:bond1".into(), "redundant".into())),
        "{s:?}"
    );

    let slaves = t.net("bond1").join("bonding/slaves");
    std::fs::remove_file(&slaves).expect("rm");
    std::fs::create_dir(&slaves).expect("mkdir");
    let s = states(dir.path());
    assert!(
        s.contains(&("bond:bond1".into(), "unknown".into())),
        "{s:?}"
    );
}

// ------------------------------------------------ real-world shapes (issue 15)

fn realworld(scenario: &str) -> sparewatch::snapshot::Snapshot {
    let snap = crate::support::snapshot(scenario, &["net"]);
    assert!(
        snap.collectors.iter().all(|c| c.up),
        "{:?}",
        snap.collectors
    );
    crate::support::promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    crate::support::assert_golden(scenario, &crate::support::normalized_metrics(&snap));
    snap
}

fn member_states(s: &sparewatch::snapshot::Snapshot) -> Vec<(String, String, bool, bool)> {
    s.groups
        .iter()
        .flat_map(|g| {
            g.members.iter().map(|m| {
                (
                    format!("{}/{}", g.name, m.name),
                    m.role.as_str().to_string(),
                    m.healthy,
                    m.unknown,
                )
            })
        })
        .collect()
}

/// Slaves found only through the bond's `slave_*` directories (node_exporter's fixture
/// shape) and `lower_*` links: their attributes are read there, not "unreadable".
#[test]
fn bond_slaves_found_through_the_bonds_own_links() {
    let s = realworld("realworld-net-bond-slave-links");
    let got: Vec<(String, String)> = s
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.state.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("bond:dmz".to_string(), "redundant".to_string()),
            ("bond:int".to_string(), "no_redundancy".to_string()),
        ]
    );
    assert_eq!(
        member_states(&s),
        [
            ("bond:dmz/eth0".into(), "active".into(), true, false),
            ("bond:dmz/eth4".into(), "active".into(), true, false),
            ("bond:int/eth5".into(), "active".into(), true, false),
            ("bond:int/eth1".into(), "standby".into(), false, false),
        ]
    );
}

/// Both slaves' mii_status empty / garbage: unknown with the reason, not failed 0/2.
#[test]
fn bond_with_unreadable_mii_status_is_unknown_not_failed() {
    let s = realworld("realworld-net-bond-mii-unreadable");
    let g = s
        .groups
        .iter()
        .find(|g| g.name == "bond:bond0")
        .expect("bond0");
    assert_eq!(g.state, "unknown");
    let why: Vec<&str> = g
        .members
        .iter()
        .filter_map(|m| m.reason.as_deref())
        .collect();
    assert_eq!(why.len(), 2, "{why:?}");
    assert_eq!(why[0], "mii_status empty");
    assert!(why[1].starts_with("mii_status unrecognised"), "{why:?}");
    let g1 = s
        .groups
        .iter()
        .find(|g| g.name == "bond:bond1")
        .expect("bond1");
    assert_eq!(g1.state, "redundant");
}
