//! Bond redundancy: pure functions from what sysfs says about a bond to a group.

use crate::{GroupReading, MemberHealth, MemberReading, Role};

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
        match s.mii_status.as_deref() {
            None => return MemberHealth::Unknown("mii_status unreadable".into()),
            Some("up") => {}
            Some(other) => return MemberHealth::Unhealthy(format!("mii {other}")),
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
