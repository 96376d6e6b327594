//! What one evaluation produced: the rendered `/metrics` text plus the evaluated groups,
//! shared read-only by the HTTP handlers, `status`, `check` and the Alertmanager push.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Unix seconds of the evaluation that produced this snapshot.
    pub generated_at: f64,
    pub groups: Vec<GroupView>,
    pub collectors: Vec<CollectorView>,
    /// The rendered `/metrics` body (cheap to clone: shared bytes).
    #[serde(skip)]
    pub metrics_text: axum::body::Bytes,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupView {
    pub name: String,
    pub kind: String,
    pub collector: String,
    pub state: String,
    pub by_design: bool,
    pub members_total: u32,
    pub members_healthy: u32,
    pub members_required: u32,
    pub spare: i64,
    /// Unix seconds when the group entered its state (persisted across restarts).
    pub since: f64,
    pub transitions: u64,
    /// Redundancy the hardware states, when it states one.
    pub stated_state: Option<String>,
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
                    .map(|r| format!("{} ({}): {}", m.name, m.role, r))
            })
            .chain(crate::domains::capacity_reason(self))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberView {
    pub name: String,
    pub role: String,
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
    /// Groups in a state other than `redundant`, worst first.
    pub fn worst_state(&self) -> Option<&str> {
        const ORDER: [&str; 5] = [
            "failed",
            "unknown",
            "no_redundancy",
            "degraded",
            "redundant",
        ];
        ORDER
            .iter()
            .find(|s| self.groups.iter().any(|g| g.state == **s))
            .copied()
    }
}
