//! The demo server's storage: an md RAID1 `md0` over sda1/sdb1 and a dm-multipath map
//! `mpatha` with an active and a standby path, written as the kernel shows them, plus a
//! stand-in `dmsetup` (a script that prints the map's current status) under the tree's root.

use std::io;
use std::os::unix::fs::PermissionsExt;

use crate::fixture::SysTree;

/// md0's member states for the story: (sdb1 state, sdb1 slot, sync action, progress).
#[derive(Clone, Copy)]
pub enum Md0 {
    Healthy,
    Sdb1Failed,
    Sdb1Rebuilding,
}

const MD: &str = "sys/block/md0/md";

fn mdstat(state: Md0) -> String {
    let (devs, counts, sync) = match state {
        Md0::Healthy => ("sdb1[1] sda1[0]", "[2/2] [UU]", ""),
        Md0::Sdb1Failed => ("sdb1[1](F) sda1[0]", "[2/1] [U_]", ""),
        Md0::Sdb1Rebuilding => (
            "sdb1[2] sda1[0]",
            "[2/1] [U_]",
            "\n      [=========>...........]  recovery = 45.0% (471040/1046528) finish=0.5min speed=19000K/sec",
        ),
    };
    format!(
        "Personalities : [raid1] \nmd0 : active raid1 {devs}\n      1046528 blocks super 1.2 {counts}{sync}\n      bitmap: 0/8 pages [0KB], 65536KB chunk\n\nunused devices: <none>"
    )
}

/// Writes md0 in `state`.
pub fn md0(t: &SysTree, state: Md0) -> io::Result<()> {
    let (sdb1, degraded, action, completed, speed) = match state {
        Md0::Healthy => ("in_sync", "0", "idle", "none", "none"),
        Md0::Sdb1Failed => ("faulty", "1", "idle", "none", "none"),
        Md0::Sdb1Rebuilding => ("spare", "1", "recover", "942080 / 2093056", "19000"),
    };
    t.set(&format!("{MD}/level"), "raid1")?;
    t.set(&format!("{MD}/raid_disks"), "2")?;
    t.set(&format!("{MD}/metadata_version"), "1.2")?;
    t.set(&format!("{MD}/array_state"), "clean")?;
    t.set(&format!("{MD}/degraded"), degraded)?;
    t.set(&format!("{MD}/sync_action"), action)?;
    t.set(&format!("{MD}/sync_completed"), completed)?;
    t.set(&format!("{MD}/sync_speed"), speed)?;
    t.set(&format!("{MD}/mismatch_cnt"), "0")?;
    for (dev, slot, st) in [("sda1", "0", "in_sync"), ("sdb1", "1", sdb1)] {
        t.set(&format!("{MD}/dev-{dev}/state"), st)?;
        t.set(&format!("{MD}/dev-{dev}/slot"), slot)?;
        t.set(&format!("{MD}/dev-{dev}/errors"), "0")?;
    }
    t.set("proc/mdstat", &mdstat(state))
}

const DMSETUP: &str = "#!/bin/sh
# sparewatch demo: stands in for dmsetup and prints the simulated map's status.
[ \"$*\" = \"status --target multipath\" ] || exit 2
exec cat \"$(dirname \"$0\")/../demo-dmsetup-status\"";

/// Writes mpatha's status: the standby path sdc usable or failed.
pub fn mpatha(t: &SysTree, sdc_ok: bool, sdc_failures: u32) -> io::Result<()> {
    let sdc = if sdc_ok { "A" } else { "F" };
    t.set(
        "demo-dmsetup-status",
        &format!("mpatha: 0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 {sdc} {sdc_failures} 0 1"),
    )
}

fn symlink(t: &SysTree, link: &str, target: &str) -> io::Result<()> {
    let path = t.root().join(link);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink(target, path)
}

/// The storage of the demo server, all redundant.
pub fn build(t: &SysTree) -> io::Result<()> {
    md0(t, Md0::Healthy)?;
    t.set("sys/block/dm-0/dm/name", "mpatha")?;
    t.set(
        "sys/block/dm-0/dm/uuid",
        "mpath-3600a098038303053453f463045727a41",
    )?;
    for (dev, mm) in [("sdb", "8:16"), ("sdc", "8:32")] {
        t.set(&format!("sys/devices/demo/block/{dev}/dev"), mm)?;
        symlink(
            t,
            &format!("sys/dev/block/{mm}"),
            &format!("../../devices/demo/block/{dev}"),
        )?;
    }
    t.set("sbin/dmsetup", DMSETUP)?;
    std::fs::set_permissions(
        t.root().join("sbin/dmsetup"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    mpatha(t, true, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparewatch_collectors::md::MdCollector;
    use sparewatch_collectors::multipath::MultipathCollector;
    use sparewatch_collectors::{Collector, MemberHealth, Roots};

    fn healthy(c: &mut dyn Collector, group: &str) -> usize {
        let col = c.collect().expect("collects");
        col.groups
            .iter()
            .find(|g| g.name == group)
            .expect("group")
            .members
            .iter()
            .filter(|m| m.health == MemberHealth::Healthy)
            .count()
    }

    #[test]
    fn the_story_moves_the_collectors() {
        let dir = tempfile::tempdir().unwrap();
        let t = SysTree::new(dir.path()).unwrap();
        build(&t).unwrap();
        let roots = Roots::under(dir.path());
        let mut md = MdCollector::new(roots.clone());
        let mut mp = MultipathCollector::new(roots, None, std::time::Duration::from_secs(5));
        assert_eq!(healthy(&mut md, "md:md0"), 2);
        assert_eq!(healthy(&mut mp, "mpath:mpatha"), 2);
        md0(&t, Md0::Sdb1Failed).unwrap();
        assert_eq!(healthy(&mut md, "md:md0"), 1);
        md0(&t, Md0::Sdb1Rebuilding).unwrap();
        assert_eq!(healthy(&mut md, "md:md0"), 1);
        md0(&t, Md0::Healthy).unwrap();
        assert_eq!(healthy(&mut md, "md:md0"), 2);
        mpatha(&t, false, 1).unwrap();
        assert_eq!(healthy(&mut mp, "mpath:mpatha"), 1);
    }
}
