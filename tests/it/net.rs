//! Net collector edge cases seen on real hosts: the unused bond the bonding module creates,
//! and one unreadable interface that must not hide the others.

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
        .map(|g| (g.name.clone(), g.state.clone()))
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
