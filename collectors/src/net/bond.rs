//! Bond redundancy: pure functions from what sysfs says about a bond to a group.

use std::path::{Path, PathBuf};

use crate::{GroupReading, MemberHealth, MemberReading, Role};

/// The `bonding_slave` directory of `slave` in `bond`: `/sys/class/net/<slave>/bonding_slave`,
/// else through the bond's own links: `<bond>/lower_<slave>` (the kernel's adjacency link,
/// net/core/dev.c) or `<bond>/slave_<slave>` (older kernels; node_exporter's fixtures have
/// it as the only way to the slave). The first that exists; the first candidate when none
/// does (its attributes then read as absent: unknown).
pub fn slave_dir(class_net: &Path, bond: &str, slave: &str) -> PathBuf {
    let candidates = [
        class_net.join(slave),
        class_net.join(bond).join(format!("lower_{slave}")),
        class_net.join(bond).join(format!("slave_{slave}")),
    ];
    candidates
        .iter()
        .map(|d| d.join("bonding_slave"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| candidates[0].join("bonding_slave"))
}

/// Slave names from the bond's `lower_*` links, for a bond whose `bonding/slaves` cannot
/// be read.
pub fn slaves_from_links(bond_entries: &[String]) -> Vec<String> {
    bond_entries
        .iter()
        .filter_map(|e| e.strip_prefix("lower_"))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// What sysfs says about one bond (`/sys/class/net/<bond>/bonding/*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BondInfo {
    pub name: String,
    /// `mode` as the kernel prints it: "active-backup 1", "802.3ad 4".
    pub mode: String,
    pub slaves: Vec<SlaveInfo>,
    /// `active_slave` (active-backup, balance-tlb/alb): empty when none.
    pub active_slave: Option<String>,
    pub min_links: u32,
    /// `ad_aggregator`: the active aggregator's id (802.3ad only).
    pub active_aggregator: Option<u32>,
}

/// What sysfs says about one slave (`/sys/class/net/<slave>/bonding_slave/*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaveInfo {
    pub name: String,
    /// `mii_status`: "up", "down", "going down", "going back". `None`: unreadable.
    pub mii_status: Option<String>,
    /// `state`: "active" or "backup".
    pub state: Option<String>,
    pub aggregator_id: Option<u32>,
    pub link_failure_count: Option<u64>,
}

/// The mode's name without its number: "active-backup 1" → "active-backup".
pub fn mode_name(mode: &str) -> &str {
    mode.split_whitespace().next().unwrap_or("")
}

impl BondInfo {
    pub fn is_active_backup(&self) -> bool {
        mode_name(&self.mode) == "active-backup"
    }
    pub fn is_8023ad(&self) -> bool {
        mode_name(&self.mode) == "802.3ad"
    }

    /// The redundancy group `bond:<name>`: members are the slaves, `required` is
    /// max(1, min_links). The standby of an active-backup bond is checked like the active.
    pub fn group(&self) -> GroupReading {
        let mut g = GroupReading::new(format!("bond:{}", self.name), "bond", self.min_links.max(1));
        for s in &self.slaves {
            g.members
                .push(MemberReading::new(&s.name, self.role(s), self.health(s)));
        }
        g
    }

    fn in_active_aggregator(&self, s: &SlaveInfo) -> bool {
        match (self.active_aggregator, s.aggregator_id) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    fn role(&self, s: &SlaveInfo) -> Role {
        if self.is_active_backup() {
            let is_active = self.active_slave.as_deref() == Some(s.name.as_str())
                || (self.active_slave.is_none() && s.state.as_deref() == Some("active"));
            if is_active {
                Role::Active
            } else {
                Role::Standby
            }
        } else if self.is_8023ad() && !self.in_active_aggregator(s) {
            Role::Standby
        } else {
            Role::Active
        }
    }

    fn health(&self, s: &SlaveInfo) -> MemberHealth {
        // The values of bond_slave_link_status() (drivers/net/bonding); anything else
        // (empty, "unknown", garbage) is missing data, never a failed link.
        match s.mii_status.as_deref().map(str::trim) {
            None => return MemberHealth::Unknown("mii_status unreadable".into()),
            Some("up") => {}
            Some(v @ ("down" | "going down" | "going back")) => {
                return MemberHealth::Unhealthy(format!("mii {v}"))
            }
            Some("") => return MemberHealth::Unknown("mii_status empty".into()),
            Some(other) => {
                return MemberHealth::Unknown(format!("mii_status unrecognised: {other:?}"))
            }
        }
        if self.is_8023ad() && !self.in_active_aggregator(s) {
            return MemberHealth::Unhealthy(format!(
                "not in the active aggregator (slave aggregator {}, active {})",
                opt(s.aggregator_id),
                opt(self.active_aggregator)
            ));
        }
        MemberHealth::Healthy
    }
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slave(name: &str, mii: &str, state: &str, agg: Option<u32>) -> SlaveInfo {
        SlaveInfo {
            name: name.into(),
            mii_status: Some(mii.into()),
            state: Some(state.into()),
            aggregator_id: agg,
            link_failure_count: Some(0),
        }
    }

    #[test]
    fn active_backup_standby_down_is_unhealthy_standby() {
        let b = BondInfo {
            name: "bond0".into(),
            mode: "active-backup 1".into(),
            slaves: vec![
                slave("eth0", "up", "active", None),
                slave("eth1", "down", "backup", None),
            ],
            active_slave: Some("eth0".into()),
            ..Default::default()
        };
        let g = b.group();
        assert_eq!(g.name, "bond:bond0");
        assert_eq!(g.required, 1);
        assert_eq!(g.members[0].role, Role::Active);
        assert_eq!(g.members[0].health, MemberHealth::Healthy);
        assert_eq!(g.members[1].role, Role::Standby);
        assert_eq!(
            g.members[1].health,
            MemberHealth::Unhealthy("mii down".into())
        );
    }

    /// Both slaves' mii_status empty or garbage: unknown with the reason, never failed.
    #[test]
    fn unreadable_mii_status_is_unknown() {
        let b = BondInfo {
            name: "bond0".into(),
            mode: "active-backup 1".into(),
            slaves: vec![
                slave("eth0", "", "active", None),
                slave("eth1", "\u{fffd}x7", "backup", None),
                slave("eth2", "unknown", "backup", None),
                slave("eth3", "going back", "backup", None),
            ],
            ..Default::default()
        };
        let g = b.group();
        assert_eq!(
            g.members[0].health,
            MemberHealth::Unknown("mii_status empty".into())
        );
        assert!(
            matches!(&g.members[1].health, MemberHealth::Unknown(w) if w.contains("unrecognised"))
        );
        assert!(matches!(&g.members[2].health, MemberHealth::Unknown(_)));
        assert_eq!(
            g.members[3].health,
            MemberHealth::Unhealthy("mii going back".into())
        );
    }

    #[test]
    fn slave_directory_through_the_bonds_links() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path();
        std::fs::create_dir_all(net.join("eth0/bonding_slave")).unwrap();
        std::fs::create_dir_all(net.join("bond0/lower_eth1/bonding_slave")).unwrap();
        std::fs::create_dir_all(net.join("bond0/slave_eth2/bonding_slave")).unwrap();
        assert_eq!(
            slave_dir(net, "bond0", "eth0"),
            net.join("eth0/bonding_slave")
        );
        assert_eq!(
            slave_dir(net, "bond0", "eth1"),
            net.join("bond0/lower_eth1/bonding_slave")
        );
        assert_eq!(
            slave_dir(net, "bond0", "eth2"),
            net.join("bond0/slave_eth2/bonding_slave")
        );
        assert_eq!(
            slave_dir(net, "bond0", "eth9"),
            net.join("eth9/bonding_slave")
        );
        let entries = ["bonding", "lower_eth1", "lower_", "upper_br0", "carrier"];
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        assert_eq!(slaves_from_links(&entries), ["eth1"]);
    }

    #[test]
    fn lacp_slave_outside_active_aggregator_is_unhealthy() {
        let b = BondInfo {
            name: "bond1".into(),
            mode: "802.3ad 4".into(),
            slaves: vec![
                slave("eth2", "up", "active", Some(1)),
                slave("eth3", "up", "backup", Some(2)),
            ],
            active_aggregator: Some(1),
            min_links: 2,
            ..Default::default()
        };
        let g = b.group();
        assert_eq!(g.required, 2);
        assert!(g.members[0].health.counts_healthy());
        assert!(!g.members[1].health.counts_healthy());
        assert_eq!(g.members[1].role, Role::Standby);
    }
}
