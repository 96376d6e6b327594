//! Builds sysfs trees of simulated hardware: the demo's server, the benchmark's large
//! host, and test scenarios. Writes the same attribute files the kernel shows.

use std::io;
use std::path::{Path, PathBuf};

/// A simulated `/sys` (and `/proc`) under a directory.
pub struct SysTree {
    root: PathBuf,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write + rename: a collector reading concurrently never sees half a value.
    let tmp = path.with_extension("sw-tmp");
    std::fs::write(&tmp, format!("{value}\n"))?;
    std::fs::rename(&tmp, path)
}

impl SysTree {
    /// `root` receives `sys/` and `proc/`.
    pub fn new(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("sys/class/net"))?;
        std::fs::create_dir_all(root.join("proc"))?;
        Ok(SysTree {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn net(&self, dev: &str) -> PathBuf {
        self.root.join("sys/class/net").join(dev)
    }

    /// Writes one attribute relative to the tree's root (`sys/class/net/eth0/carrier`).
    pub fn set(&self, rel: &str, value: &str) -> io::Result<()> {
        write(&self.root.join(rel), value)
    }

    /// A physical NIC (has a `device` link) with carrier, up, 10 Gb/s full duplex.
    pub fn nic(&self, dev: &str) -> io::Result<()> {
        let d = self.net(dev);
        std::fs::create_dir_all(d.join("device"))?;
        write(&d.join("device/vendor"), "0x8086")?;
        write(&d.join("flags"), "0x1003")?;
        write(&d.join("uevent"), &format!("INTERFACE={dev}\nIFINDEX=2"))?;
        write(&d.join("speed"), "10000")?;
        write(&d.join("duplex"), "full")?;
        write(&d.join("carrier_changes"), "1")?;
        self.link(dev, true)
    }

    /// Link up or down as the kernel shows it (carrier, operstate).
    pub fn link(&self, dev: &str, up: bool) -> io::Result<()> {
        let d = self.net(dev);
        write(&d.join("carrier"), if up { "1" } else { "0" })?;
        write(&d.join("operstate"), if up { "up" } else { "down" })?;
        if d.join("bonding_slave").is_dir() {
            write(
                &d.join("bonding_slave/mii_status"),
                if up { "up" } else { "down" },
            )?;
        }
        Ok(())
    }

    /// A bond over `slaves` (which must exist as NICs). `mode`: "active-backup 1",
    /// "802.3ad 4", "balance-rr 0"… The first slave is active; in 802.3ad all are in
    /// aggregator 1.
    pub fn bond(&self, dev: &str, mode: &str, slaves: &[&str], min_links: u32) -> io::Result<()> {
        let d = self.net(dev);
        std::fs::create_dir_all(&d)?;
        write(&d.join("flags"), "0x1403")?;
        write(&d.join("uevent"), &format!("DEVTYPE=bond\nINTERFACE={dev}"))?;
        write(&d.join("carrier"), "1")?;
        write(&d.join("operstate"), "up")?;
        write(&d.join("bonding/mode"), mode)?;
        write(&d.join("bonding/slaves"), &slaves.join(" "))?;
        write(&d.join("bonding/min_links"), &min_links.to_string())?;
        write(&d.join("bonding/miimon"), "100")?;
        let ab = mode.starts_with("active-backup");
        let lacp = mode.starts_with("802.3ad");
        write(
            &d.join("bonding/active_slave"),
            if ab {
                slaves.first().copied().unwrap_or("")
            } else {
                ""
            },
        )?;
        write(
            &d.join("bonding/ad_aggregator"),
            if lacp { "1" } else { "" },
        )?;
        for (i, s) in slaves.iter().enumerate() {
            let sd = self.net(s);
            let state = if ab && i > 0 { "backup" } else { "active" };
            write(&sd.join("bonding_slave/state"), state)?;
            write(&sd.join("bonding_slave/mii_status"), "up")?;
            write(&sd.join("bonding_slave/link_failure_count"), "0")?;
            write(
                &sd.join("bonding_slave/ad_aggregator_id"),
                if lacp { "1" } else { "" },
            )?;
            let master = sd.join("master");
            let _ = std::fs::remove_file(&master);
            std::os::unix::fs::symlink(format!("../{dev}"), &master)?;
        }
        Ok(())
    }

    /// Active-backup failover: `slave` becomes the active one.
    pub fn set_active_slave(&self, bond: &str, slave: &str) -> io::Result<()> {
        let slaves = std::fs::read_to_string(self.net(bond).join("bonding/slaves"))?;
        for s in slaves.split_whitespace() {
            let state = if s == slave { "active" } else { "backup" };
            write(&self.net(s).join("bonding_slave/state"), state)?;
        }
        write(&self.net(bond).join("bonding/active_slave"), slave)
    }

    /// Puts an 802.3ad slave into another aggregator than the bond's active one.
    pub fn set_aggregator(&self, slave: &str, id: u32) -> io::Result<()> {
        write(
            &self.net(slave).join("bonding_slave/ad_aggregator_id"),
            &id.to_string(),
        )
    }

    /// The bond's carrier (the kernel drops it when fewer than min_links slaves are up).
    pub fn bond_carrier(&self, bond: &str, up: bool) -> io::Result<()> {
        write(&self.net(bond).join("carrier"), if up { "1" } else { "0" })?;
        write(
            &self.net(bond).join("operstate"),
            if up { "up" } else { "down" },
        )
    }

    /// `count` md RAID1 arrays `md0`…: each array's `/sys/block/mdN/md` directory and its
    /// paragraph of `/proc/mdstat` (rewritten whole), in the shapes drivers/md/md.c prints:
    /// `array_state`, `degraded`, `dev-*/state` "in_sync" or "faulty", `dev-*/slot` "none"
    /// for a faulty member, and mdstat's `[2/1] [U_]` with `(F)`. Members are NVMe
    /// partitions (`nvme<N>n1p1`, `nvme<N>n2p1`); an array for which `failed` holds has its
    /// second member faulty.
    pub fn md_raid1_arrays(&self, count: usize, failed: impl Fn(usize) -> bool) -> io::Result<()> {
        let mut mdstat = String::from("Personalities : [raid1] \n");
        for a in 0..count {
            let md = self.root.join(format!("sys/block/md{a}/md"));
            let failed = failed(a);
            for (attr, value) in [
                ("level", "raid1"),
                ("raid_disks", "2"),
                ("degraded", if failed { "1" } else { "0" }),
                ("array_state", "clean"),
                ("sync_action", "idle"),
                ("sync_completed", "none"),
                ("mismatch_cnt", "0"),
                ("metadata_version", "1.2"),
            ] {
                write(&md.join(attr), value)?;
            }
            let mut devs = Vec::new();
            for m in 0..2 {
                let dev = format!("nvme{a}n{}p1", m + 1);
                let bad = failed && m == 1;
                let d = md.join(format!("dev-{dev}"));
                write(&d.join("state"), if bad { "faulty" } else { "in_sync" })?;
                write(
                    &d.join("slot"),
                    &if bad { "none".into() } else { m.to_string() },
                )?;
                write(&d.join("errors"), "0")?;
                devs.push(format!("{dev}[{m}]{}", if bad { "(F)" } else { "" }));
            }
            let (n, map) = if failed { (1, "U_") } else { (2, "UU") };
            mdstat.push_str(&format!(
                "md{a} : active raid1 {}\n      4186112 blocks super 1.2 [2/{n}] [{map}]\n\n",
                devs.join(" ")
            ));
        }
        mdstat.push_str("unused devices: <none>");
        write(&self.root.join("proc/mdstat"), &mdstat)
    }
}
