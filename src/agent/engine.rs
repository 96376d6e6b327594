//! The redundancy engine: turns collections into evaluated groups.
//!
//! Per member it applies hysteresis (unhealthy at once, healthy only after `hold_down`), per
//! group the state table ([`crate::policy`]), per collector staleness (a down or stale
//! collector makes its groups `unknown`), and it keeps each group's since-timestamp and
//! remembered members in a [`Persisted`] image. It never touches the disk: after an
//! evaluation, [`Engine::take_changes`] hands a changed image to the store's writer thread.
//!
//! Memory rules (docs/architecture.md, "What is remembered"):
//! - a remembered group the agent has not heard about yet is *pending* (not shown, never
//!   pruned) until its collector has finished a pass;
//! - a remembered group its collector no longer reports is `unknown`, "vanished at …";
//! - a member seen healthy is remembered; absent later, it counts unhealthy, "absent since …";
//! - only `sparewatch forget` removes a remembered group or member.
//!
//! Size: about 710 lines of code (plus tests), over the ~500 the project aims for: the
//! tracks (collector, member, group: hysteresis and memory, ~180), `Engine` itself (taking
//! collections, pending/vanished groups, the persisted image, deadlines: ~300) and the
//! per-group evaluation (~150). They share the tracks' state and the order of their steps is
//! the engine's correctness, so they are read together; the state table is in
//! [`crate::policy`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use crate::clock::Stamp;

use sparewatch_collectors::{Collection, GroupReading, GroupState, MemberHealth, Role};

use crate::policy::{self, Effective};
use crate::snapshot::{from_unix, unix, CollectorView, GroupView, MemberView, Snapshot};
use crate::store::{Persisted, PersistedGroup, RememberedMember};

/// Per-group policy overrides from the config file (`groups:`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupOverride {
    pub required: Option<u32>,
    pub by_design: Option<bool>,
    /// Shared failure domains accepted by design: a kind (`switch`) or one domain
    /// (`card:0000:3b:00`); they do not lower the effective spare.
    pub accept_shared_domains: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub hold_down: Duration,
    pub overrides: BTreeMap<String, GroupOverride>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hold_down: Duration::from_secs(5),
            overrides: BTreeMap::new(),
        }
    }
}

/// Static facts about one collector the engine tracks.
#[derive(Clone, Debug)]
pub struct CollectorInfo {
    pub name: &'static str,
    pub interval: Duration,
    pub timeout: Duration,
}

impl CollectorInfo {
    /// Data older than this is stale: two missed intervals plus one timeout.
    pub fn stale_after(&self) -> Duration {
        self.interval * 2 + self.timeout
    }
}

struct CollectorTrack {
    info: CollectorInfo,
    latest: Option<Collection>,
    last_success: Option<Stamp>,
    last_attempt_failed: bool,
    running_since: Option<Stamp>,
    /// The running pass was logged as hanging (logged once, and once on recovery).
    hang_logged: bool,
    /// A pass has finished (with data or an error) since the agent started.
    attempted: bool,
    duration: Duration,
    errors_total: u64,
    last_error: Option<String>,
}

impl CollectorTrack {
    /// Why the collector's data cannot be trusted now, if it cannot.
    fn down_reason(&self, now: Stamp) -> Option<String> {
        if let Some(start) = self.running_since {
            if age(now, start) > self.info.timeout {
                return Some(format!(
                    "collection running for more than {:?}",
                    self.info.timeout
                ));
            }
        }
        if self.last_attempt_failed {
            return Some(
                self.last_error
                    .clone()
                    .unwrap_or_else(|| "collection failed".into()),
            );
        }
        match self.last_success {
            None => Some("no collection yet".into()),
            Some(t) if age(now, t) > self.info.stale_after() => Some(format!(
                "last success {:.0}s ago",
                age(now, t).as_secs_f64()
            )),
            Some(_) => None,
        }
    }
}

#[derive(Default)]
struct MemberTrack {
    reported_healthy: Option<bool>,
    healthy_since: Option<Stamp>,
    transitions: u64,
}

impl MemberTrack {
    /// Hysteresis: a member going unhealthy is reported at once; recovery only after it
    /// stayed healthy for `hold_down`, counted from the collection that first saw it
    /// healthy again (`seen_at`). Returns the reported health.
    fn update(
        &mut self,
        raw_healthy: bool,
        seen_at: Stamp,
        now: Stamp,
        hold_down: Duration,
    ) -> bool {
        match (self.reported_healthy, raw_healthy) {
            (None, raw) => self.reported_healthy = Some(raw),
            (Some(true), false) => {
                self.reported_healthy = Some(false);
                self.healthy_since = None;
                self.transitions += 1;
            }
            (Some(false), true) => {
                let since = *self.healthy_since.get_or_insert(seen_at);
                if age(now, since) >= hold_down {
                    self.reported_healthy = Some(true);
                    self.healthy_since = None;
                    self.transitions += 1;
                }
            }
            (Some(false), false) => self.healthy_since = None,
            (Some(true), true) => {}
        }
        self.reported_healthy.unwrap_or(raw_healthy)
    }
}

struct GroupTrack {
    state: GroupState,
    since: SystemTime,
    /// The state and since before the group became `unknown`: a short blip (one BMC
    /// timeout) that returns to the same state keeps the old since, so "without redundancy
    /// for 41 days" is not reset by every hiccup.
    /// The third field is when it became `unknown` (monotonic, for the blip bound).
    before_unknown: Option<(GroupState, SystemTime, Stamp)>,
    transitions: u64,
    members: HashMap<String, MemberTrack>,
    /// Not evaluated yet and not remembered: its first state is not a transition.
    first_sight: bool,
}

pub struct Engine {
    config: EngineConfig,
    collectors: Vec<CollectorTrack>,
    groups: BTreeMap<String, GroupTrack>,
    persisted: Persisted,
    /// The image changed since [`Engine::take_changes`] last took it.
    dirty: bool,
    /// Group names two collectors both reported (IPMI and Redfish on one OpenBMC chassis):
    /// the first collector's group is kept, the clash is logged once per name.
    clashes: std::collections::BTreeSet<String>,
}

fn age(now: Stamp, then: Stamp) -> Duration {
    now.since(then)
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        collectors: Vec<CollectorInfo>,
        memory: Option<Persisted>,
    ) -> Self {
        let persisted = memory.unwrap_or_default();
        Engine {
            config,
            collectors: collectors
                .into_iter()
                .map(|info| CollectorTrack {
                    info,
                    latest: None,
                    last_success: None,
                    last_attempt_failed: false,
                    running_since: None,
                    hang_logged: false,
                    attempted: false,
                    duration: Duration::ZERO,
                    errors_total: 0,
                    last_error: None,
                })
                .collect(),
            groups: BTreeMap::new(),
            persisted,
            dirty: false,
            clashes: Default::default(),
        }
    }

    /// The persisted image, if it changed since the last call (for the store's writer).
    pub fn take_changes(&mut self) -> Option<Persisted> {
        std::mem::take(&mut self.dirty).then(|| self.persisted.clone())
    }

    /// Forgets a remembered group (`GROUP`) or member (`GROUP/MEMBER`); says what it forgot.
    pub fn forget(&mut self, target: &str) -> Result<String, String> {
        let done = crate::store::forget(&mut self.persisted, target)?;
        if self.groups.remove(target).is_none() {
            if let Some((g, m)) = target.rsplit_once('/') {
                if let Some(track) = self.groups.get_mut(g) {
                    track.members.remove(m);
                }
            }
        }
        self.dirty = true;
        Ok(done)
    }

    fn track(&mut self, name: &str) -> Option<&mut CollectorTrack> {
        self.collectors.iter_mut().find(|c| c.info.name == name)
    }

    /// A collection pass started (used to detect hung collectors).
    pub fn started(&mut self, collector: &str, now: impl Into<Stamp>) {
        if let Some(c) = self.track(collector) {
            c.running_since = Some(now.into());
        }
    }

    /// A collection pass ended with a result or an error (panics arrive as errors).
    ///
    /// Returns whether it is news: anything an evaluation could show differently — a first
    /// pass, an error, data unlike the last pass's, or the collector up where it was down
    /// (or the reverse). A pass that found exactly what the last one did (the safety net of
    /// a quiet host) only moved the collector's own figures ([`Engine::collector_views`]):
    /// the agent then re-renders the small tail of `/metrics`, not the groups.
    pub fn finished(
        &mut self,
        collector: &str,
        result: Result<Collection, String>,
        duration: Duration,
        now: impl Into<Stamp>,
    ) -> bool {
        let now = now.into();
        let Some(c) = self.track(collector) else {
            return false;
        };
        let before = (c.attempted, c.down_reason(now));
        let same_data =
            matches!((&result, &c.latest), (Ok(new), Some(old)) if new.same_findings(old));
        c.running_since = None;
        if std::mem::take(&mut c.hang_logged) {
            tracing::info!(collector = c.info.name, took = ?duration, "collector pass finished again after hanging");
        }
        c.attempted = true;
        c.duration = duration;
        match result {
            Ok(collection) => {
                c.latest = Some(collection);
                c.last_success = Some(now);
                c.last_attempt_failed = false;
                c.last_error = None;
            }
            Err(e) => {
                c.errors_total += 1;
                c.last_attempt_failed = true;
                c.last_error = Some(e);
            }
        }
        let quiet = before.0 && same_data && before.1.is_none() && c.down_reason(now).is_none();
        !quiet
    }

    /// Evaluates every group at `now` and returns the snapshot (metrics not yet rendered).
    pub fn evaluate(&mut self, now: impl Into<Stamp>) -> Snapshot {
        let now: Stamp = now.into();
        let hold_down = self.config.hold_down;
        for c in &mut self.collectors {
            if let Some(start) = c.running_since {
                if !c.hang_logged && age(now, start) > c.info.timeout {
                    c.hang_logged = true;
                    tracing::warn!(collector = c.info.name, timeout = ?c.info.timeout,
                        "collector pass is hanging: running longer than its timeout; its groups are unknown");
                }
            }
        }
        // Risks seen by any trustworthy collector apply to members of every collector. A
        // collector that is down keeps its last risks as "risk unknown": evidence never
        // improves by being lost.
        let mut risks: HashMap<String, String> = HashMap::new();
        for c in &self.collectors {
            if c.down_reason(now).is_none() {
                for r in c.latest.iter().flat_map(|l| &l.device_risks) {
                    risks.insert(r.device.clone(), r.reason.clone());
                }
            }
        }
        for c in &self.collectors {
            if let Some(why) = c.down_reason(now) {
                for r in c.latest.iter().flat_map(|l| &l.device_risks) {
                    risks.entry(r.device.clone()).or_insert_with(|| {
                        format!(
                            "risk unknown: collector {} down ({why}); it last reported: {}",
                            c.info.name, r.reason
                        )
                    });
                }
            }
        }
        let mut views = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in &self.collectors {
            let down = c.down_reason(now);
            for reading in c.latest.iter().flat_map(|l| &l.groups) {
                let mut reading = reading.clone();
                if let Some(o) = self.config.overrides.get(&reading.name) {
                    if let Some(r) = o.required {
                        reading.required = r;
                    }
                    if let Some(b) = o.by_design {
                        reading.by_design = b;
                    }
                }
                if !seen.insert(reading.name.clone()) {
                    if self.clashes.insert(reading.name.clone()) {
                        tracing::warn!(group = %reading.name, collector = c.info.name,
                            "two collectors report this group: the first one's is kept, this one's is ignored (disable one of them for this chassis, see docs/collectors/redfish.md)");
                    }
                    continue;
                }
                let was_remembered = self.persisted.groups.contains_key(&reading.name);
                let track = self.groups.entry(reading.name.clone()).or_insert_with(|| {
                    let p = self.persisted.groups.get(&reading.name);
                    GroupTrack {
                        state: p
                            .and_then(|p| GroupState::parse(&p.state))
                            .unwrap_or(GroupState::Unknown),
                        since: p.and_then(|p| from_unix(p.since)).unwrap_or(now.wall),
                        transitions: p.map_or(0, |p| p.transitions),
                        before_unknown: None,
                        members: HashMap::new(),
                        first_sight: p.is_none(),
                    }
                });
                let entry = self
                    .persisted
                    .groups
                    .entry(reading.name.clone())
                    .or_insert_with(|| PersistedGroup::new("unknown", unix(now.wall), 0));
                let before = entry.clone();
                let mut view = evaluate_group(
                    c.info.name,
                    &reading,
                    track,
                    &mut entry.members,
                    down.as_deref(),
                    &risks,
                    c.last_success.unwrap_or(now),
                    now,
                    c.info.stale_after(),
                    hold_down,
                );
                let accept = self
                    .config
                    .overrides
                    .get(&reading.name)
                    .and_then(|o| o.accept_shared_domains.as_deref());
                view.domains = Some(crate::domains::evaluate(&reading, &view, accept));
                entry.state = view.state.as_str().to_string();
                entry.since = view.since;
                entry.transitions = view.transitions;
                entry.collector = Some(c.info.name.to_string());
                entry.kind = Some(view.kind.clone());
                entry.required = Some(view.members_required);
                entry.vanished_at = None;
                if !was_remembered || *entry != before {
                    self.dirty = true;
                }
                views.push(view);
            }
        }
        self.groups.retain(|name, _| seen.contains(name));
        // Remembered groups no collector reported in this evaluation.
        let all_attempted = self.collectors.iter().all(|c| c.attempted);
        for (name, entry) in self.persisted.groups.iter_mut() {
            if seen.contains(name) {
                continue;
            }
            let track = entry
                .collector
                .as_deref()
                .and_then(|n| self.collectors.iter().find(|c| c.info.name == n));
            let why = match (track, &entry.collector) {
                // Its collector has not finished a pass yet (start-up) or is not enabled:
                // pending, neither shown nor pruned.
                (Some(c), _) if !c.attempted => continue,
                (None, Some(_)) => continue,
                // A version-1 entry (no collector recorded): pending until every collector
                // has reported.
                (None, None) if !all_attempted => continue,
                (Some(c), _) => match c.down_reason(now) {
                    Some(why) => Unseen::Down(format!("collector {} down: {why}", c.info.name)),
                    None => Unseen::Vanished,
                },
                (None, None) => Unseen::Vanished,
            };
            let before = entry.clone();
            let view = unseen_group(name, entry, &why, now.wall);
            if *entry != before {
                self.dirty = true;
            }
            views.push(view);
        }
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            generated_at: unix(now.wall),
            groups: views,
            collectors: self.collector_views(now),
            metrics_text: Default::default(),
            metrics_tail: Default::default(),
        }
    }

    /// Each collector's health and pass figures at `now`, without evaluating any group.
    pub fn collector_views(&self, now: impl Into<Stamp>) -> Vec<CollectorView> {
        let now: Stamp = now.into();
        self.collectors
            .iter()
            .map(|c| CollectorView {
                name: c.info.name.to_string(),
                present: c.latest.as_ref().is_some_and(|l| l.present),
                up: c.down_reason(now).is_none(),
                last_success: c.last_success.map(|t| unix(t.wall)),
                duration_seconds: c.duration.as_secs_f64(),
                errors_total: c.errors_total,
                last_error: c.down_reason(now),
                pass_stats: c
                    .latest
                    .as_ref()
                    .map(|l| l.pass_stats.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The earliest moment the evaluation changes without new data: a held-down member may
    /// be reported healthy again, a collector's data turns stale, or a running pass outlives
    /// its timeout. The engine re-evaluates exactly then, and otherwise only on news. Only
    /// moments after `after` (the last evaluation) count: a deadline already evaluated past
    /// (data still stale, a pass still hung) must not wake the engine again.
    pub fn next_deadline(&self, after: Stamp) -> Option<Stamp> {
        let hold_down = self.config.hold_down;
        let held = self
            .groups
            .values()
            .flat_map(|g| g.members.values())
            .filter_map(|m| m.healthy_since.map(|t| t.plus(hold_down)));
        let collectors = self.collectors.iter().flat_map(|c| {
            let stale = c
                .last_success
                .filter(|_| !c.last_attempt_failed)
                .map(|t| t.plus(c.info.stale_after()));
            let hung = c.running_since.map(|t| t.plus(c.info.timeout));
            [stale, hung]
        });
        held.chain(collectors.flatten())
            .filter(|d| *d > after)
            .min()
    }

    /// Raw readings of every collector whose data is current (a down collector's old
    /// readings are not served as if they were fresh).
    pub fn current_collections(&self, now: impl Into<Stamp>) -> Vec<(&'static str, &Collection)> {
        let now = now.into();
        self.collectors
            .iter()
            .filter(|c| c.down_reason(now).is_none())
            .filter_map(|c| c.latest.as_ref().map(|l| (c.info.name, l)))
            .collect()
    }
}

/// Why a remembered group is missing from this evaluation.
enum Unseen {
    /// Its collector reported without it.
    Vanished,
    /// Its collector is down (since start-up, so there is no reading at all).
    Down(String),
}

fn rfc3339(unix_secs: f64) -> String {
    from_unix(unix_secs)
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| format!("{unix_secs}"))
}

fn role_from_str(s: &str) -> Role {
    match s {
        "standby" => Role::Standby,
        "spare" => Role::Spare,
        _ => Role::Active,
    }
}

/// A remembered group with no reading: `unknown`, its remembered members listed as unknown.
fn unseen_group(
    name: &str,
    entry: &mut PersistedGroup,
    why: &Unseen,
    now: SystemTime,
) -> GroupView {
    if entry.state != GroupState::Unknown.as_str() {
        entry.state = GroupState::Unknown.as_str().to_string();
        entry.since = unix(now);
        entry.transitions += 1;
    }
    let reason = match why {
        Unseen::Vanished => {
            let at = *entry.vanished_at.get_or_insert(unix(now));
            format!("group vanished at {}", rfc3339(at))
        }
        Unseen::Down(why) => why.clone(),
    };
    let members: Vec<MemberView> = entry
        .members
        .iter()
        .map(|(m, r)| MemberView {
            name: m.clone(),
            role: role_from_str(&r.role),
            healthy: false,
            at_risk: false,
            unknown: true,
            reason: Some(reason.clone()),
            transitions: 0,
        })
        .collect();
    GroupView {
        name: name.to_string(),
        kind: entry.kind.clone().unwrap_or_else(|| {
            name.split_once(':')
                .map_or("unknown", |(k, _)| k)
                .to_string()
        }),
        collector: entry.collector.clone().unwrap_or_default(),
        state: GroupState::Unknown,
        by_design: false,
        members_total: members.len() as u32,
        members_healthy: 0,
        members_required: entry.required.unwrap_or(0),
        spare: 0,
        since: entry.since,
        transitions: entry.transitions,
        stated_state: None,
        evidence_disagreement: false,
        members,
        domains: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate_group(
    collector: &str,
    reading: &GroupReading,
    track: &mut GroupTrack,
    remembered: &mut BTreeMap<String, RememberedMember>,
    down: Option<&str>,
    risks: &HashMap<String, String>,
    seen_at: Stamp,
    now: Stamp,
    blip: Duration,
    hold_down: Duration,
) -> GroupView {
    let mut members = Vec::new();
    let mut policy_in = Vec::new();
    for m in &reading.members {
        let mt = track.members.entry(m.name.clone()).or_default();
        let mut health = m.health.clone();
        if health == MemberHealth::Healthy {
            if let Some(r) = m.device.as_ref().and_then(|d| risks.get(d)) {
                health = MemberHealth::AtRisk(r.clone());
            }
        }
        let (eff, reason) = if let Some(why) = down {
            (
                Effective::Unknown,
                Some(format!("collector {collector} down: {why}")),
            )
        } else {
            match &health {
                MemberHealth::Unknown(r) => (Effective::Unknown, Some(r.clone())),
                h => {
                    let raw = h.counts_healthy();
                    let reported = mt.update(raw, seen_at, now, hold_down);
                    match (reported, h) {
                        (true, MemberHealth::AtRisk(r)) => (Effective::AtRisk, Some(r.clone())),
                        (true, _) => (Effective::Healthy, None),
                        (false, MemberHealth::Unhealthy(r)) => {
                            (Effective::Unhealthy, Some(r.clone()))
                        }
                        (false, _) => (
                            Effective::Unhealthy,
                            Some(format!(
                                "recovering: healthy again, held down for {hold_down:?}"
                            )),
                        ),
                    }
                }
            }
        };
        // Present again: no longer absent. Seen healthy: remembered from now on.
        if let Some(r) = remembered.get_mut(&m.name) {
            r.absent_since = None;
            if matches!(eff, Effective::Healthy | Effective::AtRisk) {
                r.role = m.role.as_str().to_string();
            }
        } else if matches!(eff, Effective::Healthy | Effective::AtRisk) {
            remembered.insert(
                m.name.clone(),
                RememberedMember {
                    role: m.role.as_str().to_string(),
                    absent_since: None,
                },
            );
        }
        policy_in.push((m.role, eff));
        members.push(MemberView {
            name: m.name.clone(),
            role: m.role,
            healthy: matches!(eff, Effective::Healthy | Effective::AtRisk),
            at_risk: eff == Effective::AtRisk,
            unknown: eff == Effective::Unknown,
            reason,
            transitions: mt.transitions,
        });
    }
    // Remembered members missing from the reading count as missing members.
    for (name, r) in remembered.iter_mut() {
        if reading.members.iter().any(|m| &m.name == name) {
            continue;
        }
        let since = *r.absent_since.get_or_insert(unix(now.wall));
        let why = format!("absent since {}", rfc3339(since));
        let eff = if down.is_some() {
            Effective::Unknown
        } else {
            Effective::Unhealthy
        };
        policy_in.push((role_from_str(&r.role), eff));
        members.push(MemberView {
            name: name.clone(),
            role: role_from_str(&r.role),
            healthy: false,
            at_risk: false,
            unknown: eff == Effective::Unknown,
            reason: Some(why),
            transitions: track.members.get(name).map_or(0, |m| m.transitions),
        });
    }
    track
        .members
        .retain(|name, _| members.iter().any(|m| &m.name == name));
    let stated = if down.is_some() { None } else { reading.stated };
    let verdict = policy::evaluate(&policy_in, reading.required, stated);
    let state = if down.is_some() {
        GroupState::Unknown
    } else {
        crate::domains::capacity_state(verdict.state, reading.capacity.as_ref())
    };
    if state != track.state {
        if !track.first_sight {
            track.transitions += 1;
        }
        let restored = match track.before_unknown.take() {
            Some((before, since, unknown_at))
                if before == state
                    && track.state == GroupState::Unknown
                    && age(now, unknown_at) <= blip =>
            {
                Some(since)
            }
            _ => None,
        };
        if state == GroupState::Unknown {
            track.before_unknown = Some((track.state, track.since, now));
        }
        track.state = state;
        track.since = restored.unwrap_or(now.wall);
    }
    track.first_sight = false;
    // An unknown group's spare is a lower bound that never goes below zero: unknown
    // members are neither surplus nor deficit (only a group known `failed` is negative).
    let spare = if state == GroupState::Unknown {
        verdict.spare.max(0)
    } else {
        verdict.spare
    };
    GroupView {
        name: reading.name.clone(),
        kind: reading.kind.to_string(),
        collector: collector.to_string(),
        state,
        by_design: reading.by_design,
        members_total: members.len() as u32,
        members_healthy: verdict.healthy,
        members_required: reading.required,
        spare,
        since: unix(track.since),
        transitions: track.transitions,
        stated_state: stated.map(|s| s.as_state()),
        evidence_disagreement: verdict.disagreement,
        members,
        domains: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparewatch_collectors::{MemberReading, Role};

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn bond(standby_up: bool) -> Collection {
        let mut g = GroupReading::new("bond:bond0", "bond", 1);
        g.members.push(MemberReading::new(
            "eth0",
            Role::Active,
            MemberHealth::Healthy,
        ));
        let h = if standby_up {
            MemberHealth::Healthy
        } else {
            MemberHealth::Unhealthy("mii down".into())
        };
        g.members.push(MemberReading::new("eth1", Role::Standby, h));
        let mut c = Collection::present();
        c.groups.push(g);
        c
    }

    fn engine(memory: Option<Persisted>) -> Engine {
        Engine::new(
            EngineConfig::default(),
            vec![CollectorInfo {
                name: "net",
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
            }],
            memory,
        )
    }

    fn state(e: &mut Engine, now: SystemTime) -> (GroupState, f64) {
        let now = Stamp::from(now);
        let s = e.evaluate(now);
        (s.groups[0].state, s.groups[0].since)
    }

    /// A pass is news when an evaluation could show something new: the first one, changed
    /// findings, an error, a recovery from stale data; a pass that found the same (its own
    /// counters aside) is not, and only moves the collector's figures.
    #[test]
    fn a_pass_that_found_the_same_is_not_news() {
        let mut e = engine(None);
        let with_stats = |n: f64| {
            let mut c = bond(true);
            c.pass_stats.push(sparewatch_collectors::Reading::counter(
                "sparewatch_net_full_passes_total",
                "",
                Vec::new(),
                n,
            ));
            c
        };
        assert!(
            e.finished("net", Ok(with_stats(1.0)), Duration::ZERO, t(0)),
            "first"
        );
        assert!(
            !e.finished("net", Ok(with_stats(2.0)), Duration::ZERO, t(1)),
            "same"
        );
        let views = e.collector_views(t(1));
        assert_eq!(views[0].last_success, Some(unix(t(1))));
        assert_eq!(views[0].pass_stats[0].value, 2.0, "the counters still move");
        assert!(
            e.finished("net", Ok(bond(false)), Duration::ZERO, t(2)),
            "changed"
        );
        assert!(
            e.finished("net", Err("boom".into()), Duration::ZERO, t(3)),
            "error"
        );
        assert!(
            e.finished("net", Ok(bond(false)), Duration::ZERO, t(4)),
            "back up"
        );
        // Stale (no success for longer than stale_after): the same data again is news, the
        // collector comes back up.
        assert!(
            e.finished("net", Ok(bond(false)), Duration::ZERO, t(500)),
            "was stale"
        );
        assert!(!e.finished("net", Ok(bond(false)), Duration::ZERO, t(501)));
        assert!(
            !e.finished("other", Ok(bond(true)), Duration::ZERO, t(502)),
            "unknown"
        );
    }

    #[test]
    fn hysteresis_fast_down_slow_up() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)).0, GroupState::Redundant);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(1));
        assert_eq!(state(&mut e, t(1)), (GroupState::NoRedundancy, unix(t(1))));
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(2));
        assert_eq!(state(&mut e, t(2)).0, GroupState::NoRedundancy, "held down");
        assert_eq!(
            state(&mut e, t(6)).0,
            GroupState::NoRedundancy,
            "still held down"
        );
        let snap = e.evaluate(t(7));
        assert_eq!(snap.groups[0].state, GroupState::Redundant);
        assert_eq!(snap.groups[0].transitions, 2);
        assert_eq!(snap.groups[0].members[1].transitions, 2);
    }

    #[test]
    fn flap_within_hold_down_restarts_it() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(0));
        e.evaluate(t(0));
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(1));
        e.evaluate(t(1));
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(3));
        e.evaluate(t(3));
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(4));
        assert_eq!(state(&mut e, t(8)).0, GroupState::NoRedundancy);
        assert_eq!(state(&mut e, t(9)).0, GroupState::Redundant);
    }

    #[test]
    fn failed_or_stale_collector_makes_groups_unknown() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)).0, GroupState::Redundant);
        e.finished("net", Err("EIO".into()), Duration::ZERO, t(30));
        let s = e.evaluate(t(30));
        assert_eq!(s.groups[0].state, GroupState::Unknown);
        assert!(!s.collectors[0].up);
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(60));
        assert_eq!(state(&mut e, t(60)).0, GroupState::Redundant);
        // No success for longer than 2 intervals + timeout: stale.
        assert_eq!(state(&mut e, t(60 + 71)).0, GroupState::Unknown);
        // Hung: started but not finished within the timeout.
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(200));
        e.started("net", t(201));
        assert_eq!(state(&mut e, t(205)).0, GroupState::Redundant);
        assert_eq!(state(&mut e, t(212)).0, GroupState::Unknown);
        // The wall clock steps back an hour: hang detection (monotonic) is not disabled.
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(300));
        e.started("net", t(301));
        let mut stepped = Stamp::from(t(312));
        stepped.wall = t(312) - Duration::from_secs(3600);
        assert_eq!(e.evaluate(stepped).groups[0].state, GroupState::Unknown);
    }

    #[test]
    fn a_short_unknown_blip_keeps_the_since() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)), (GroupState::NoRedundancy, unix(t(0))));
        e.finished("net", Err("timeout".into()), Duration::ZERO, t(100));
        assert_eq!(state(&mut e, t(100)).0, GroupState::Unknown);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(130));
        assert_eq!(
            state(&mut e, t(130)),
            (GroupState::NoRedundancy, unix(t(0)))
        );
        // A long gap (beyond 2 intervals + timeout = 70 s) starts a new since.
        e.finished("net", Err("timeout".into()), Duration::ZERO, t(200));
        assert_eq!(state(&mut e, t(200)).0, GroupState::Unknown);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(300));
        assert_eq!(
            state(&mut e, t(300)),
            (GroupState::NoRedundancy, unix(t(300)))
        );
    }

    #[test]
    fn since_survives_restart() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)), (GroupState::NoRedundancy, unix(t(0))));
        let saved = e.take_changes().expect("a first state is saved");
        assert_eq!(e.take_changes(), None, "nothing changed since");
        // Restarted: before the collector reports, the group is pending, not pruned.
        let mut e = engine(Some(saved.clone()));
        assert!(e.evaluate(t(500)).groups.is_empty());
        assert_eq!(e.take_changes(), None, "a pending group is not written");
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(500));
        assert_eq!(
            state(&mut e, t(500)),
            (GroupState::NoRedundancy, unix(t(0)))
        );
        // A different state at restart starts a new since.
        let mut e = engine(Some(saved));
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(900));
        assert_eq!(state(&mut e, t(900)), (GroupState::Redundant, unix(t(900))));
    }

    fn bond3(slaves: &[&str]) -> Collection {
        let mut g = GroupReading::new("bond:bond0", "bond", 1);
        for s in slaves {
            g.members
                .push(MemberReading::new(*s, Role::Active, MemberHealth::Healthy));
        }
        let mut c = Collection::present();
        c.groups.push(g);
        c
    }

    #[test]
    fn an_absent_member_counts_missing_and_a_vanished_group_is_unknown() {
        let mut e = engine(None);
        e.finished(
            "net",
            Ok(bond3(&["eth0", "eth1", "eth2"])),
            Duration::ZERO,
            t(0),
        );
        assert_eq!(state(&mut e, t(0)).0, GroupState::Redundant);
        e.finished("net", Ok(bond3(&["eth0", "eth1"])), Duration::ZERO, t(10));
        let s = e.evaluate(t(10));
        let g = &s.groups[0];
        assert_eq!(
            (g.state, g.members_healthy, g.members_total),
            (GroupState::Degraded, 2, 3)
        );
        let gone = g
            .members
            .iter()
            .find(|m| m.name == "eth2")
            .expect("eth2 listed");
        assert!(!gone.healthy);
        assert!(gone
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("absent since 2023-")));
        // Forget the member: the group is redundant with what it has.
        assert!(e.forget("bond:bond0/eth9").is_err());
        assert_eq!(
            e.forget("bond:bond0/eth2"),
            Ok("member eth2 of group bond:bond0".into())
        );
        assert_eq!(state(&mut e, t(11)).0, GroupState::Redundant);
        // The whole bond goes: kept, unknown, "vanished at".
        e.finished("net", Ok(Collection::present()), Duration::ZERO, t(20));
        let s = e.evaluate(t(20));
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups[0].state, GroupState::Unknown);
        assert_eq!(s.groups[0].spare, 0);
        assert!(s.groups[0].reasons()[0].contains("group vanished at"));
        // After a restart too, once the collector has reported.
        let saved = e.take_changes().expect("saved");
        let mut e = engine(Some(saved));
        e.finished("net", Ok(Collection::present()), Duration::ZERO, t(30));
        let s = e.evaluate(t(30));
        assert_eq!(s.groups[0].state, GroupState::Unknown);
        assert_eq!(
            s.groups[0].since,
            unix(t(20)),
            "since of the vanishing kept"
        );
        assert_eq!(e.forget("bond:bond0"), Ok("group bond:bond0".into()));
        assert!(e.evaluate(t(31)).groups.is_empty());
    }

    #[test]
    fn a_collector_never_heard_of_since_start_shows_its_groups_unknown() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(0));
        e.evaluate(t(0));
        let saved = e.take_changes().expect("saved");
        let mut e = engine(Some(saved));
        e.finished("net", Err("BMC unreachable".into()), Duration::ZERO, t(40));
        let s = e.evaluate(t(40));
        assert_eq!(s.groups[0].state, GroupState::Unknown);
        assert!(s.groups[0].members.iter().all(|m| m.unknown));
    }

    #[test]
    fn device_risk_marks_member_at_risk() {
        let mut e = Engine::new(
            EngineConfig::default(),
            ["md", "smart"]
                .into_iter()
                .map(|name| CollectorInfo {
                    name,
                    interval: Duration::from_secs(30),
                    timeout: Duration::from_secs(10),
                })
                .collect(),
            None,
        );
        let mut g = GroupReading::new("md:md0", "md", 1);
        for d in ["sda", "sdb"] {
            g.members.push(
                MemberReading::new(format!("{d}1"), Role::Active, MemberHealth::Healthy)
                    .with_device(d),
            );
        }
        let mut md = Collection::present();
        md.groups.push(g);
        let mut smart = Collection::present();
        smart.device_risks.push(sparewatch_collectors::DeviceRisk {
            device: "sdb".into(),
            reason: "SMART overall-health FAILED".into(),
        });
        e.finished("md", Ok(md), Duration::ZERO, t(0));
        e.finished("smart", Ok(smart), Duration::ZERO, t(0));
        let s = e.evaluate(t(0));
        assert_eq!(s.groups[0].state, GroupState::Degraded);
        assert!(s.groups[0].members[1].at_risk);
        // smart goes down: its last risk stays, as "risk unknown", until it reports again.
        e.finished(
            "smart",
            Err("smartctl timed out".into()),
            Duration::ZERO,
            t(30),
        );
        let s = e.evaluate(t(30));
        assert_eq!(
            s.groups[0].state,
            GroupState::Degraded,
            "evidence lost must not improve it"
        );
        let reason = s.groups[0].members[1].reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with("risk unknown: collector smart down"),
            "{reason}"
        );
        e.finished("smart", Ok(Collection::present()), Duration::ZERO, t(60));
        assert_eq!(e.evaluate(t(60)).groups[0].state, GroupState::Redundant);
    }

    fn health() -> impl proptest::strategy::Strategy<Value = MemberHealth> {
        use proptest::prelude::*;
        prop_oneof![
            Just(MemberHealth::Healthy),
            Just(MemberHealth::AtRisk("smart".into())),
            Just(MemberHealth::Unhealthy("down".into())),
            Just(MemberHealth::Unknown("?".into())),
        ]
    }

    proptest::proptest! {
        /// Random sequences of collections, errors and clock steps: no panic, exactly one
        /// state per group, a member reported unhealthy the moment it is, and never
        /// `redundant` while the latest reading has an unhealthy member.
        #[test]
        fn engine_invariants(
            steps in proptest::collection::vec(
                (proptest::collection::vec(health(), 0..6), 0u32..4, 0u64..8, proptest::bool::ANY),
                1..30,
            )
        ) {
            let mut e = engine(None);
            let mut now = 0;
            for (members, required, dt, fail) in steps {
                now += dt;
                if fail {
                    e.finished("net", Err("boom".into()), Duration::ZERO, t(now));
                } else {
                    let mut g = GroupReading::new("bond:bond0", "bond", required);
                    for (i, h) in members.iter().enumerate() {
                        g.members.push(MemberReading::new(format!("m{i}"), Role::Active, h.clone()));
                    }
                    let mut c = Collection::present();
                    c.groups.push(g);
                    e.finished("net", Ok(c), Duration::ZERO, t(now));
                }
                let snap = e.evaluate(t(now));
                for g in &snap.groups {
                    let spare = i64::from(g.members_healthy) - i64::from(g.members_required);
                    if g.state == GroupState::Unknown {
                        proptest::prop_assert_eq!(g.spare, spare.max(0));
                    } else {
                        proptest::prop_assert_eq!(g.spare, spare);
                    }
                    if fail {
                        proptest::prop_assert_eq!(g.state, GroupState::Unknown);
                    } else {
                        for (m, h) in g.members.iter().zip(&members) {
                            if matches!(h, MemberHealth::Unhealthy(_)) {
                                proptest::prop_assert!(!m.healthy);
                            }
                        }
                        if members.iter().any(|h| !matches!(h, MemberHealth::Healthy)) {
                            proptest::prop_assert_ne!(g.state, GroupState::Redundant);
                        }
                    }
                }
            }
        }
    }
}
