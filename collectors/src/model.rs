//! The typed readings every collector hands to the redundancy engine.
//!
//! A collector never decides a group's *state*: it reports members, their raw health, the
//! group's policy (`required`) and any redundancy the hardware states itself. The engine
//! (in the `sparewatch` crate) applies hysteresis and the state table of DESIGN.md §2.

use std::fmt;

/// What a member is for inside its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Carrying the function right now (active bond slave, active path, in-sync mirror half).
    Active,
    /// Idle but ready to take over (active-backup standby slave, cold-standby PSU).
    Standby,
    /// Not part of the function until something fails and a rebuild completes (md hot spare,
    /// hwraid global spare). A healthy spare does **not** count towards `spare`: a degraded
    /// RAID5 with an idle hot spare still dies on the next failure until the rebuild is done.
    Spare,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
            Role::Spare => "spare",
        }
    }
}

/// Raw health of one member as the collector saw it (before hysteresis).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberHealth {
    Healthy,
    /// Working now, but a predictor (SMART, PSU predictive failure) says it will not last.
    /// Counts as healthy for the spare count, and makes the group at least `degraded`.
    AtRisk(String),
    /// Not able to do its job; the string says why ("mii down", "faulty", "AC lost").
    Unhealthy(String),
    /// The collector could not tell (unreadable attribute, sensor not available).
    Unknown(String),
}

impl MemberHealth {
    /// Counts towards `healthy` in `spare = healthy − required`.
    pub fn counts_healthy(&self) -> bool {
        matches!(self, MemberHealth::Healthy | MemberHealth::AtRisk(_))
    }
    pub fn reason(&self) -> Option<&str> {
        match self {
            MemberHealth::Healthy => None,
            MemberHealth::AtRisk(r) | MemberHealth::Unhealthy(r) | MemberHealth::Unknown(r) => {
                Some(r)
            }
        }
    }
}

/// One member of a redundancy group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberReading {
    /// Stable name inside the group: `eth0`, `sdb1`, `PSU2`, `FAN3`.
    pub name: String,
    pub role: Role,
    pub health: MemberHealth,
    /// The physical disk behind this member, as a [`DeviceRisk::device`] key (`sdb` for the
    /// md member `sdb1`, `megaraid:0:12` for a drive behind a controller), so a risk another
    /// collector saw (failing SMART) can mark this member at risk.
    pub device: Option<String>,
    /// The failure domains this member shares fate with (its PCI card, the switch its link
    /// reaches, the disk a partition lives on, the feed of a PSU), as far as they could be
    /// resolved; a kind that could not be resolved is listed with [`FailureDomain::UNKNOWN`].
    /// See `crate::topology` and docs/failure-domains.md.
    pub domains: Vec<FailureDomain>,
}

impl MemberReading {
    pub fn new(name: impl Into<String>, role: Role, health: MemberHealth) -> Self {
        MemberReading {
            name: name.into(),
            role,
            health,
            device: None,
            domains: Vec::new(),
        }
    }
    pub fn with_device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
    /// Adds failure domains (duplicates are dropped).
    pub fn with_domains(mut self, domains: impl IntoIterator<Item = FailureDomain>) -> Self {
        self.add_domains(domains);
        self
    }
    pub fn add_domains(&mut self, domains: impl IntoIterator<Item = FailureDomain>) {
        for d in domains {
            if !self.domains.contains(&d) {
                self.domains.push(d);
            }
        }
    }
}

/// Something whose failure takes down every member that shares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FailureDomain {
    /// `card`, `switch`, `hba`, `fabric`, `controller`, `disk`, `enclosure`, `feed`.
    pub kind: &'static str,
    /// Stable identity inside its kind (`0000:3b:00`, `be:e8:f8:99:f4:58`, `sdb`, `A`), or
    /// [`FailureDomain::UNKNOWN`] when the kind applies but could not be resolved.
    pub id: String,
}

impl FailureDomain {
    /// The id of a domain the agent looked for and could not resolve: never counted as
    /// independent, never as shared.
    pub const UNKNOWN: &'static str = "unknown";

    pub fn new(kind: &'static str, id: impl Into<String>) -> Self {
        FailureDomain {
            kind,
            id: id.into(),
        }
    }
    pub fn unknown(kind: &'static str) -> Self {
        FailureDomain::new(kind, FailureDomain::UNKNOWN)
    }
    pub fn is_unknown(&self) -> bool {
        self.id == FailureDomain::UNKNOWN
    }
}

/// Whether the power supplies that are left can carry the load if the largest one fails
/// (capacity-true redundancy). Evidence like [`StatedRedundancy`]: the engine merges it,
/// and an insufficient capacity makes a redundant/degraded group `no_redundancy`.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerCapacity {
    /// `Some(false)`: the survivors cannot carry the load; `None`: capacity or load unknown.
    pub sufficient: Option<bool>,
    /// Present load in watts, when known.
    pub load_watts: Option<f64>,
    /// What the healthy supplies deliver after losing the largest one, in watts.
    pub after_loss_watts: Option<f64>,
    /// "load 1100 W > 800 W left after losing PS1", or why it is unknown.
    pub reason: String,
}

/// A device that another collector found at risk (SMART failing, NVMe critical warning).
/// The engine turns every healthy member whose `device` matches into `AtRisk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRisk {
    /// Whole-disk kernel name (`sdb`, `nvme0n1`) or `<driver>:<controller>:<id>` for a drive
    /// behind a RAID controller (`megaraid:0:12`).
    pub device: String,
    pub reason: String,
}

/// Redundancy as the hardware states it itself (IPMI generic redundancy reading type 0x0B,
/// Redfish `Redundancy`). Evidence merged with the member count: the worse state wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatedRedundancy {
    FullyRedundant,
    /// "Redundancy Degraded" and its variants.
    Degraded,
    /// "Redundancy Lost" / "Non-redundant: Sufficient Resources".
    Lost,
    /// "Non-redundant: Insufficient Resources".
    Insufficient,
}

/// The five states of DESIGN.md §2, ordered from best to worst for "worse wins"
/// (`Unknown` is handled apart: it is never merged as better than anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    Redundant,
    Degraded,
    NoRedundancy,
    Failed,
    Unknown,
}

impl GroupState {
    pub const ALL: [GroupState; 5] = [
        GroupState::Redundant,
        GroupState::Degraded,
        GroupState::NoRedundancy,
        GroupState::Failed,
        GroupState::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Redundant => "redundant",
            GroupState::Degraded => "degraded",
            GroupState::NoRedundancy => "no_redundancy",
            GroupState::Failed => "failed",
            GroupState::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<GroupState> {
        GroupState::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Comparing with the lower-case name (`state == "degraded"`) keeps tests written against the
// string-typed snapshot compiling; new code compares variants.
impl PartialEq<&str> for GroupState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl StatedRedundancy {
    /// DESIGN.md §2: Fully Redundant → redundant; Degraded → degraded;
    /// Lost / Non-redundant Sufficient → no_redundancy; Insufficient → failed.
    pub fn as_state(self) -> GroupState {
        match self {
            StatedRedundancy::FullyRedundant => GroupState::Redundant,
            StatedRedundancy::Degraded => GroupState::Degraded,
            StatedRedundancy::Lost => GroupState::NoRedundancy,
            StatedRedundancy::Insufficient => GroupState::Failed,
        }
    }
}

/// A set of members providing one function, with its policy.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupReading {
    /// Stable across restarts: `bond:bond0`, `md:md0`, `mpath:mpatha`, `psu:chassis`.
    pub name: String,
    /// `bond`, `team`, `link`, `md`, `mpath`, `nvme`, `psu`, `fan`, `hwraid`.
    pub kind: &'static str,
    /// Healthy members the function needs. `spare = healthy − required`.
    pub required: u32,
    /// Single by design (one PSU, one uplink): reported, not paged.
    pub by_design: bool,
    pub members: Vec<MemberReading>,
    /// Redundancy stated by the hardware, if it states one.
    pub stated: Option<StatedRedundancy>,
    /// Capacity-true power redundancy (psu groups whose supplies report watts).
    pub capacity: Option<PowerCapacity>,
}

impl GroupReading {
    pub fn new(name: impl Into<String>, kind: &'static str, required: u32) -> Self {
        GroupReading {
            name: name.into(),
            kind,
            required,
            by_design: false,
            members: Vec::new(),
            stated: None,
            capacity: None,
        }
    }
}

/// Prometheus metric type of a raw reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
}

/// One raw reading (fan rpm, link speed, md sync progress) exported as-is.
/// `name` must be in the `sparewatch_` namespace with a base-unit suffix.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Reading {
    pub fn gauge(
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) -> Self {
        Reading {
            name,
            help,
            kind: MetricKind::Gauge,
            labels,
            value,
        }
    }
    pub fn counter(
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) -> Self {
        Reading {
            name,
            help,
            kind: MetricKind::Counter,
            labels,
            value,
        }
    }
}

/// What one collection pass produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collection {
    /// False when the subsystem does not exist here (no bond, no md, no BMC): not an error.
    pub present: bool,
    pub groups: Vec<GroupReading>,
    pub readings: Vec<Reading>,
    /// Devices this collector found at risk; applied to members of any collector's groups.
    pub device_risks: Vec<DeviceRisk>,
    /// The collector's own counters about its passes (files read, passes skipped): they
    /// move with every pass, so they are served with the collector's figures and never make
    /// a pass that found nothing new look like news ([`Collection::same_findings`]).
    pub pass_stats: Vec<Reading>,
}

impl Collection {
    /// Whether two passes found the same: everything but [`Collection::pass_stats`].
    pub fn same_findings(&self, other: &Collection) -> bool {
        self.present == other.present
            && self.groups == other.groups
            && self.readings == other.readings
            && self.device_risks == other.device_risks
    }

    /// The subsystem is absent on this machine.
    pub fn not_present() -> Self {
        Collection::default()
    }
    pub fn present() -> Self {
        Collection {
            present: true,
            ..Collection::default()
        }
    }
}
