//! What one evaluation produced: the rendered `/metrics` text plus the evaluated groups,
//! shared read-only by the HTTP handlers, `status`, `check` and the Alertmanager push.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use sparewatch_collectors::{GroupState, Role};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Unix seconds of the evaluation that produced this snapshot.
    pub generated_at: f64,
    pub groups: Vec<GroupView>,
    pub collectors: Vec<CollectorView>,
    /// The rendered `/metrics` text (cheap to clone: shared bytes). `/metrics` serves it
    /// followed by [`Snapshot::metrics_tail`]; a one-shot snapshot holds the whole text here.
    #[serde(skip)]
    pub metrics_text: axum::body::Bytes,
    /// The running agent's tail of the text (push and drill counters, the snapshot
    /// timestamp, process metrics): the engine's liveness tick renders it anew and keeps the
    /// body it shares with the previous snapshot, so an idle host costs no render.
    #[serde(skip)]
    pub metrics_tail: axum::body::Bytes,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupView {
    pub name: String,
    pub kind: String,
    pub collector: String,
    /// Serialized as its lower-case name (`"no_redundancy"`), the JSON the tools read.
    #[serde(serialize_with = "state_str")]
    pub state: GroupState,
    pub by_design: bool,
    pub members_total: u32,
    pub members_healthy: u32,
    pub members_required: u32,
    pub spare: i64,
    /// Unix seconds when the group entered its state (persisted across restarts).
    pub since: f64,
    pub transitions: u64,
    /// Redundancy the hardware states, when it states one.
    #[serde(serialize_with = "opt_state_str")]
    pub stated_state: Option<GroupState>,
    pub evidence_disagreement: bool,
    pub members: Vec<MemberView>,
    /// Failure domains, effective spare and power capacity ([`crate::domains`]).
    pub domains: Option<crate::domains::GroupDomains>,
}

impl GroupView {
    /// Why members are not fine: "eth1 (standby): mii down", one entry per such member.
    pub fn reasons(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|m| {
                m.reason
                    .as_ref()
                    .map(|r| format!("{} ({}): {}", m.name, m.role.as_str(), r))
            })
            .chain(crate::domains::capacity_reason(self))
            .collect()
    }

    /// Hot spares (not counted healthy: they only count once a rebuild onto them is done).
    pub fn spares(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.role == Role::Spare)
            .count()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberView {
    pub name: String,
    #[serde(serialize_with = "role_str")]
    pub role: Role,
    pub healthy: bool,
    pub at_risk: bool,
    pub unknown: bool,
    /// Why it is not healthy (or at risk), or that it is held down while recovering.
    pub reason: Option<String>,
    pub transitions: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CollectorView {
    pub name: String,
    pub present: bool,
    pub up: bool,
    pub last_success: Option<f64>,
    pub duration_seconds: f64,
    pub errors_total: u64,
    pub last_error: Option<String>,
    /// The last pass's own counters ([`sparewatch_collectors::Collection::pass_stats`]),
    /// served in the tail of `/metrics`.
    #[serde(skip)]
    pub pass_stats: Vec<sparewatch_collectors::Reading>,
}

/// Unix seconds back to a time; `None` for values no clock of ours produced (negative,
/// non-finite, beyond year 5000), which can only come from a damaged file.
pub fn from_unix(secs: f64) -> Option<SystemTime> {
    if secs.is_finite() && (0.0..1e11).contains(&secs) {
        Some(UNIX_EPOCH + std::time::Duration::from_secs_f64(secs))
    } else {
        None
    }
}

pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Snapshot {
    /// The whole `/metrics` text (body and tail), copied into one buffer.
    pub fn metrics(&self) -> Vec<u8> {
        [&self.metrics_text[..], &self.metrics_tail[..]].concat()
    }

    /// The worst state any group is in (`unknown` ranks between `failed` and
    /// `no_redundancy`), or `None` when there are no groups.
    pub fn worst_state(&self) -> Option<GroupState> {
        const ORDER: [GroupState; 5] = [
            GroupState::Failed,
            GroupState::Unknown,
            GroupState::NoRedundancy,
            GroupState::Degraded,
            GroupState::Redundant,
        ];
        ORDER
            .into_iter()
            .find(|s| self.groups.iter().any(|g| g.state == *s))
    }
}

// The enums serialize as the same lower-case strings the snapshot carried when its fields
// were strings: `status --format json` and the golden files are byte-identical.
fn state_str<S: Serializer>(s: &GroupState, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

fn opt_state_str<S: Serializer>(s: &Option<GroupState>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.as_str()),
        None => ser.serialize_none(),
    }
}

fn role_str<S: Serializer>(r: &Role, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(r.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every enum value serializes as the string the string-typed snapshot carried.
    #[test]
    fn enums_serialize_as_their_lower_case_names() {
        for s in GroupState::ALL {
            let g = GroupView {
                name: "g".into(),
                kind: "bond".into(),
                collector: "bond".into(),
                state: s,
                by_design: false,
                members_total: 0,
                members_healthy: 0,
                members_required: 0,
                spare: 0,
                since: 0.0,
                transitions: 0,
                stated_state: Some(s),
                evidence_disagreement: false,
                members: vec![],
                domains: None,
            };
            let v = serde_json::to_value(&g).expect("serializes");
            assert_eq!(v["state"], s.as_str());
            assert_eq!(v["stated_state"], s.as_str());
        }
        for (r, want) in [
            (Role::Active, "active"),
            (Role::Standby, "standby"),
            (Role::Spare, "spare"),
        ] {
            let m = MemberView {
                name: "m".into(),
                role: r,
                healthy: true,
                at_risk: false,
                unknown: false,
                reason: None,
                transitions: 0,
            };
            let v = serde_json::to_value(&m).expect("serializes");
            assert_eq!(v["role"], want);
        }
    }
}
