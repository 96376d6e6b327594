//! The redundancy engine: turns collections into evaluated groups.
//!
//! Per member it applies hysteresis (unhealthy at once, healthy only after `hold_down`), per
//! group the state table ([`crate::policy`]), per collector staleness (a down or stale
//! collector makes its groups `unknown`), and it keeps each group's since-timestamp,
//! persisted through [`crate::state_file`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use sparewatch_collectors::{Collection, GroupReading, GroupState, MemberHealth};

use crate::policy::{self, Effective};
use crate::snapshot::{from_unix, unix, CollectorView, GroupView, MemberView, Snapshot};
use crate::state_file::{Persisted, PersistedGroup, StateFile};

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
    last_success: Option<SystemTime>,
    last_attempt_failed: bool,
    running_since: Option<SystemTime>,
    duration: Duration,
    errors_total: u64,
    last_error: Option<String>,
}

impl CollectorTrack {
    /// Why the collector's data cannot be trusted now, if it cannot.
    fn down_reason(&self, now: SystemTime) -> Option<String> {
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
    healthy_since: Option<SystemTime>,
    transitions: u64,
}

impl MemberTrack {
    /// Hysteresis: a member going unhealthy is reported at once; recovery only after it
    /// stayed healthy for `hold_down`, counted from the collection that first saw it
    /// healthy again (`seen_at`). Returns the reported health.
    fn update(
        &mut self,
        raw_healthy: bool,
        seen_at: SystemTime,
        now: SystemTime,
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
    before_unknown: Option<(GroupState, SystemTime)>,
    transitions: u64,
    members: HashMap<String, MemberTrack>,
}

pub struct Engine {
    config: EngineConfig,
    collectors: Vec<CollectorTrack>,
    groups: BTreeMap<String, GroupTrack>,
    persisted: Persisted,
    state_file: Option<StateFile>,
}

fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        collectors: Vec<CollectorInfo>,
        state_file: Option<StateFile>,
    ) -> Self {
        let persisted = state_file.as_ref().map(StateFile::load).unwrap_or_default();
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
                    duration: Duration::ZERO,
                    errors_total: 0,
                    last_error: None,
                })
                .collect(),
            groups: BTreeMap::new(),
            persisted,
            state_file,
        }
    }

    /// Uses persisted since-timestamps without writing them back (one-shot `status`).
    pub fn seed(&mut self, persisted: Persisted) {
        self.persisted = persisted;
    }

    fn track(&mut self, name: &str) -> Option<&mut CollectorTrack> {
        self.collectors.iter_mut().find(|c| c.info.name == name)
    }

    /// A collection pass started (used to detect hung collectors).
    pub fn started(&mut self, collector: &str, now: SystemTime) {
        if let Some(c) = self.track(collector) {
            c.running_since = Some(now);
        }
    }

    /// A collection pass ended with a result or an error (panics arrive as errors).
    pub fn finished(
        &mut self,
        collector: &str,
        result: Result<Collection, String>,
        duration: Duration,
        now: SystemTime,
    ) {
        let Some(c) = self.track(collector) else {
            return;
        };
        c.running_since = None;
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
    }

    /// Evaluates every group at `now` and returns the snapshot (metrics not yet rendered).
    pub fn evaluate(&mut self, now: SystemTime) -> Snapshot {
        let hold_down = self.config.hold_down;
        // Risks seen by any trustworthy collector apply to members of every collector.
        let mut risks: HashMap<String, String> = HashMap::new();
        for c in &self.collectors {
            if c.down_reason(now).is_none() {
                for r in c.latest.iter().flat_map(|l| &l.device_risks) {
                    risks.insert(r.device.clone(), r.reason.clone());
                }
            }
        }
        let mut views = Vec::new();
        let mut seen = Vec::new();
        let mut persist = false;
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
                seen.push(reading.name.clone());
                let is_new = !self.groups.contains_key(&reading.name);
                let track = self.groups.entry(reading.name.clone()).or_insert_with(|| {
                    let p = self.persisted.groups.get(&reading.name);
                    GroupTrack {
                        state: p
                            .and_then(|p| GroupState::parse(&p.state))
                            .unwrap_or(GroupState::Unknown),
                        since: p.and_then(|p| from_unix(p.since)).unwrap_or(now),
                        transitions: p.map_or(0, |p| p.transitions),
                        before_unknown: None,
                        members: HashMap::new(),
                    }
                });
                let mut view = evaluate_group(
                    c.info.name,
                    &reading,
                    track,
                    down.as_deref(),
                    &risks,
                    c.last_success.unwrap_or(now),
                    now,
                    c.info.stale_after(),
                    hold_down,
                    is_new && !self.persisted.groups.contains_key(&reading.name),
                );
                let accept = self
                    .config
                    .overrides
                    .get(&reading.name)
                    .and_then(|o| o.accept_shared_domains.as_deref())
                    .unwrap_or_default();
                view.domains = Some(crate::domains::evaluate(&reading, &view, accept));
                if self
                    .persisted
                    .groups
                    .get(&reading.name)
                    .map(|p| (&p.state, p.since))
                    != Some((&view.state, view.since))
                {
                    self.persisted.groups.insert(
                        reading.name.clone(),
                        PersistedGroup {
                            state: view.state.clone(),
                            since: view.since,
                            transitions: view.transitions,
                        },
                    );
                    persist = true;
                }
                views.push(view);
            }
        }
        // Groups whose collector no longer reports them are forgotten.
        self.groups.retain(|name, _| seen.contains(name));
        let before = self.persisted.groups.len();
        self.persisted.groups.retain(|name, _| seen.contains(name));
        persist |= before != self.persisted.groups.len();
        if persist {
            if let Some(f) = &self.state_file {
                if let Err(e) = f.save(&self.persisted) {
                    tracing::warn!(error = %e, "cannot persist group states");
                }
            }
        }
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            generated_at: unix(now),
            groups: views,
            collectors: self
                .collectors
                .iter()
                .map(|c| CollectorView {
                    name: c.info.name.to_string(),
                    present: c.latest.as_ref().is_some_and(|l| l.present),
                    up: c.down_reason(now).is_none(),
                    last_success: c.last_success.map(unix),
                    duration_seconds: c.duration.as_secs_f64(),
                    errors_total: c.errors_total,
                    last_error: c.down_reason(now),
                })
                .collect(),
            metrics_text: Default::default(),
        }
    }

    /// The earliest moment a held-down member may be reported healthy again, so the engine
    /// re-evaluates exactly then instead of on its next tick.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let hold_down = self.config.hold_down;
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .filter_map(|m| m.healthy_since.map(|t| t + hold_down))
            .min()
    }

    /// Raw readings of every collector whose data is current (a down collector's old
    /// readings are not served as if they were fresh).
    pub fn current_collections(&self, now: SystemTime) -> Vec<(&'static str, &Collection)> {
        self.collectors
            .iter()
            .filter(|c| c.down_reason(now).is_none())
            .filter_map(|c| c.latest.as_ref().map(|l| (c.info.name, l)))
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate_group(
    collector: &str,
    reading: &GroupReading,
    track: &mut GroupTrack,
    down: Option<&str>,
    risks: &HashMap<String, String>,
    seen_at: SystemTime,
    now: SystemTime,
    blip: Duration,
    hold_down: Duration,
    first_sight: bool,
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
        policy_in.push((m.role, eff));
        members.push(MemberView {
            name: m.name.clone(),
            role: m.role.as_str().to_string(),
            healthy: matches!(eff, Effective::Healthy | Effective::AtRisk),
            at_risk: eff == Effective::AtRisk,
            unknown: eff == Effective::Unknown,
            reason,
            transitions: mt.transitions,
        });
    }
    track
        .members
        .retain(|name, _| reading.members.iter().any(|m| &m.name == name));
    let stated = if down.is_some() { None } else { reading.stated };
    let verdict = policy::evaluate(&policy_in, reading.required, stated);
    let state = if down.is_some() {
        GroupState::Unknown
    } else {
        crate::domains::capacity_state(verdict.state, reading.capacity.as_ref())
    };
    if state != track.state {
        if !first_sight {
            track.transitions += 1;
        }
        let restored = match track.before_unknown.take() {
            Some((before, since))
                if before == state
                    && track.state == GroupState::Unknown
                    && age(now, track.since) <= blip =>
            {
                Some(since)
            }
            _ => None,
        };
        if state == GroupState::Unknown {
            track.before_unknown = Some((track.state, track.since));
        }
        track.state = state;
        track.since = restored.unwrap_or(now);
    }
    GroupView {
        name: reading.name.clone(),
        kind: reading.kind.to_string(),
        collector: collector.to_string(),
        state: state.as_str().to_string(),
        by_design: reading.by_design,
        members_total: reading.members.len() as u32,
        members_healthy: verdict.healthy,
        members_required: reading.required,
        spare: verdict.spare,
        since: unix(track.since),
        transitions: track.transitions,
        stated_state: stated.map(|s| s.as_state().as_str().to_string()),
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

    fn engine(dir: Option<&std::path::Path>) -> Engine {
        Engine::new(
            EngineConfig::default(),
            vec![CollectorInfo {
                name: "net",
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
            }],
            dir.map(StateFile::new),
        )
    }

    fn state(e: &mut Engine, now: SystemTime) -> (String, f64) {
        let s = e.evaluate(now);
        (s.groups[0].state.clone(), s.groups[0].since)
    }

    #[test]
    fn hysteresis_fast_down_slow_up() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)).0, "redundant");
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(1));
        assert_eq!(state(&mut e, t(1)), ("no_redundancy".into(), unix(t(1))));
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(2));
        assert_eq!(state(&mut e, t(2)).0, "no_redundancy", "held down");
        assert_eq!(state(&mut e, t(6)).0, "no_redundancy", "still held down");
        let snap = e.evaluate(t(7));
        assert_eq!(snap.groups[0].state, "redundant");
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
        assert_eq!(state(&mut e, t(8)).0, "no_redundancy");
        assert_eq!(state(&mut e, t(9)).0, "redundant");
    }

    #[test]
    fn failed_or_stale_collector_makes_groups_unknown() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)).0, "redundant");
        e.finished("net", Err("EIO".into()), Duration::ZERO, t(30));
        let s = e.evaluate(t(30));
        assert_eq!(s.groups[0].state, "unknown");
        assert!(!s.collectors[0].up);
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(60));
        assert_eq!(state(&mut e, t(60)).0, "redundant");
        // No success for longer than 2 intervals + timeout: stale.
        assert_eq!(state(&mut e, t(60 + 71)).0, "unknown");
        // Hung: started but not finished within the timeout.
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(200));
        e.started("net", t(201));
        assert_eq!(state(&mut e, t(205)).0, "redundant");
        assert_eq!(state(&mut e, t(212)).0, "unknown");
    }

    #[test]
    fn a_short_unknown_blip_keeps_the_since() {
        let mut e = engine(None);
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)), ("no_redundancy".into(), unix(t(0))));
        e.finished("net", Err("timeout".into()), Duration::ZERO, t(100));
        assert_eq!(state(&mut e, t(100)).0, "unknown");
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(130));
        assert_eq!(state(&mut e, t(130)), ("no_redundancy".into(), unix(t(0))));
        // A long gap (beyond 2 intervals + timeout = 70 s) starts a new since.
        e.finished("net", Err("timeout".into()), Duration::ZERO, t(200));
        assert_eq!(state(&mut e, t(200)).0, "unknown");
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(300));
        assert_eq!(
            state(&mut e, t(300)),
            ("no_redundancy".into(), unix(t(300)))
        );
    }

    #[test]
    fn since_survives_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut e = engine(Some(dir.path()));
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(0));
        assert_eq!(state(&mut e, t(0)), ("no_redundancy".into(), unix(t(0))));
        drop(e);
        let mut e = engine(Some(dir.path()));
        e.finished("net", Ok(bond(false)), Duration::ZERO, t(500));
        assert_eq!(state(&mut e, t(500)), ("no_redundancy".into(), unix(t(0))));
        // A different state at restart starts a new since.
        let mut e = engine(Some(dir.path()));
        e.finished("net", Ok(bond(true)), Duration::ZERO, t(900));
        assert_eq!(state(&mut e, t(900)), ("redundant".into(), unix(t(900))));
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
        assert_eq!(s.groups[0].state, "degraded");
        assert!(s.groups[0].members[1].at_risk);
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
                    proptest::prop_assert!(GroupState::parse(&g.state).is_some());
                    proptest::prop_assert_eq!(g.spare, i64::from(g.members_healthy) - i64::from(g.members_required));
                    if fail {
                        proptest::prop_assert_eq!(g.state.as_str(), "unknown");
                    } else {
                        for (m, h) in g.members.iter().zip(&members) {
                            if matches!(h, MemberHealth::Unhealthy(_)) {
                                proptest::prop_assert!(!m.healthy);
                            }
                        }
                        if members.iter().any(|h| !matches!(h, MemberHealth::Healthy)) {
                            proptest::prop_assert_ne!(g.state.as_str(), "redundant");
                        }
                    }
                }
            }
        }
    }
}
