//! The versioned JSON shape of the agent's status (`/api/v1/status`, `status --format json`,
//! the status page). Documented in docs/api.md; docs/api/status-v1.schema.json is checked
//! against the output of every golden fixture.
//!
//! Version 1 is the snapshot's own JSON (`generated_at`, `groups`, `collectors`, unchanged) plus
//! `api_version`, `host`, `verdict`, and per group `reasons`, `advice` and `last_drill`. Fields
//! are only ever added within a version; a renamed or removed field means `/api/v2/`.
//!
//! The last drill comes from the drill history in `--state.dir` (src/drill/store.rs), read
//! only: the agent and a one-shot `status`/`explain` name the directory once
//! ([`set_state_dir`]); the file is re-read only when it changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::drill::store::{parse_history, History, HISTORY_FILE};
use crate::snapshot::{CollectorView, GroupView, Snapshot};

pub const API_VERSION: u32 = 1;

/// The states from worst to best: the verdict's order, and the page's.
pub const STATES: [&str; 5] = [
    "failed",
    "unknown",
    "no_redundancy",
    "degraded",
    "redundant",
];

/// A group's state as its JSON string. The one place Rust code outside the engine reads it,
/// so a typed state only changes this accessor.
pub fn state(g: &GroupView) -> &str {
    g.state.as_str()
}

/// A member's role as its JSON string (`active`, `standby`, `spare`).
pub fn role(m: &crate::snapshot::MemberView) -> &str {
    m.role.as_str()
}

/// A member's health in one word, as the terminal shows it (`UNHEALTHY` stands out).
pub fn health_word(m: &crate::snapshot::MemberView) -> &'static str {
    if m.unknown {
        "unknown"
    } else if m.at_risk {
        "at risk"
    } else if m.healthy {
        "healthy"
    } else {
        "UNHEALTHY"
    }
}

/// The width of the longest member name of a group, for aligned member lines.
pub fn name_width(g: &GroupView) -> usize {
    g.members
        .iter()
        .map(|m| m.name.chars().count())
        .max()
        .unwrap_or(0)
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Host {
    pub hostname: String,
    pub agent_version: String,
}

impl Host {
    pub fn detect() -> Host {
        let h = crate::host::HostInfo::detect();
        Host {
            hostname: h.hostname,
            agent_version: h.version,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Status<'a> {
    pub api_version: u32,
    pub host: &'a Host,
    /// Unix seconds of the evaluation shown.
    pub generated_at: f64,
    pub verdict: Verdict,
    pub groups: Vec<Group<'a>>,
    pub collectors: &'a [CollectorView],
}

#[derive(Debug, Serialize)]
pub struct Group<'a> {
    #[serde(flatten)]
    pub view: &'a GroupView,
    /// "eth1 (standby): mii down", one per member that is not fine.
    pub reasons: Vec<String>,
    /// What the group needs, in words ("bring eth1 back ...").
    pub advice: String,
    /// The newest drill of the group in the drill history; `null` when it never had one
    /// (or no `--state.dir` is set).
    pub last_drill: Option<LastDrill>,
}

/// The newest drill of a group, as the drill history keeps it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LastDrill {
    /// `passed`, `failed` or `aborted`.
    pub result: String,
    /// The drill's kind (`bond`, `multipath`, `md`, ...).
    pub kind: String,
    /// Unix seconds when it ended.
    pub finished: f64,
    pub failover_seconds: Option<f64>,
    pub failback_seconds: Option<f64>,
    pub probes_lost: Option<u64>,
    /// What the drill said about its outcome (may be empty).
    pub detail: String,
}

/// The last drill per group name.
pub type Drills = BTreeMap<String, LastDrill>;

/// The results a drill records; a record with any other (a damaged file) is not shown.
pub const DRILL_RESULTS: [&str; 3] = ["passed", "failed", "aborted"];

/// A duration from the file as shown: finite and not negative, or nothing.
fn seconds(v: Option<f64>) -> Option<f64> {
    v.filter(|s| s.is_finite() && *s >= 0.0)
}

/// The newest record of each group in a drill history.
pub fn last_drills(h: &History) -> Drills {
    let mut out = Drills::new();
    for r in &h.records {
        if !DRILL_RESULTS.contains(&r.result.as_str()) {
            continue;
        }
        if out
            .get(&r.group)
            .is_some_and(|d: &LastDrill| d.finished > r.finished)
        {
            continue;
        }
        out.insert(
            r.group.clone(),
            LastDrill {
                result: r.result.clone(),
                kind: r.kind.clone(),
                finished: r.finished,
                failover_seconds: seconds(r.failover_seconds),
                failback_seconds: seconds(r.failback_seconds),
                probes_lost: r.probes_lost,
                detail: r.detail.clone(),
            },
        );
    }
    out
}

struct DrillCache {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
    drills: Drills,
}

static DRILLS: Mutex<Option<DrillCache>> = Mutex::new(None);

/// Shows the drill results of `dir`'s history from now on (`None`: no drills shown).
pub fn set_state_dir(dir: Option<&Path>) {
    if let Ok(mut c) = DRILLS.lock() {
        *c = dir.map(|d| DrillCache {
            path: d.join(HISTORY_FILE),
            seen: None,
            drills: Drills::new(),
        });
    }
}

/// The last drill per group from the directory given to [`set_state_dir`]; re-reads the
/// history only when its modification time or size changed. A missing or damaged file
/// shows no drills (damage is logged once per change), never an error.
pub fn drills() -> Drills {
    let Ok(mut guard) = DRILLS.lock() else {
        return Drills::new();
    };
    let Some(cache) = guard.as_mut() else {
        return Drills::new();
    };
    let stamp = std::fs::metadata(&cache.path)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    if stamp != cache.seen {
        cache.seen = stamp;
        let history = match std::fs::read(&cache.path) {
            Ok(b) => parse_history(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "corrupt drill history: no last drill shown");
                History::default()
            }),
            Err(_) => History::default(),
        };
        cache.drills = last_drills(&history);
    }
    cache.drills.clone()
}

/// "passed 3d ago (failover 0.42s, failback 0.40s)", or "never".
pub fn drill_words(d: Option<&LastDrill>, now: f64) -> String {
    let Some(d) = d else {
        return "never".to_string();
    };
    let ago = std::time::Duration::from_secs((now - d.finished).max(0.0) as u64);
    let ago = humantime::format_duration(ago)
        .to_string()
        .split(' ')
        .next()
        .unwrap_or("0s")
        .to_string();
    let mut s = format!("{} {ago} ago", d.result);
    let times: Vec<String> = [
        ("failover", d.failover_seconds),
        ("failback", d.failback_seconds),
    ]
    .into_iter()
    .filter_map(|(p, v)| v.map(|v| format!("{p} {v:.2}s")))
    .collect();
    if !times.is_empty() {
        s.push_str(&format!(" ({})", times.join(", ")));
    }
    s
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Verdict {
    /// The worst state of any group (`null` when there are no groups).
    pub worst: Option<&'static str>,
    /// One line for a human: "1 group running on its last spare".
    pub summary: String,
    /// How many groups are in each state (every state listed, zeros included).
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    /// Collectors that are down (their groups are `unknown`).
    pub collectors_down: usize,
}

pub fn verdict(snap: &Snapshot) -> Verdict {
    let mut counts = std::collections::BTreeMap::new();
    for s in STATES {
        counts.insert(s, snap.groups.iter().filter(|g| state(g) == s).count());
    }
    let worst = STATES.iter().copied().find(|s| counts[s] > 0);
    let n = |k: usize| if k == 1 { "group" } else { "groups" };
    let mut parts = Vec::new();
    for (s, words) in [
        ("failed", "failed"),
        ("unknown", "unknown (cannot tell)"),
        ("no_redundancy", "running on their last spare"),
        ("degraded", "degraded"),
    ] {
        let k = counts[s];
        if k > 0 {
            let words = if s == "no_redundancy" && k == 1 {
                "running on its last spare"
            } else {
                words
            };
            parts.push(format!("{k} {} {words}", n(k)));
        }
    }
    let by_design = snap
        .groups
        .iter()
        .filter(|g| g.by_design && state(g) == "no_redundancy")
        .count();
    let summary = if snap.groups.is_empty() {
        "no redundancy groups found on this host".to_string()
    } else if parts.is_empty() {
        let k = snap.groups.len();
        if k == 1 {
            "the 1 group is redundant".to_string()
        } else {
            format!("all {k} groups redundant")
        }
    } else {
        let mut s = parts.join(", ");
        if by_design > 0 {
            s.push_str(&format!(" ({by_design} single by design)"));
        }
        s
    };
    Verdict {
        worst,
        summary,
        counts,
        collectors_down: snap.collectors.iter().filter(|c| !c.up).count(),
    }
}

/// The status of `snap` as API version 1, with the drills of [`set_state_dir`].
pub fn status<'a>(snap: &'a Snapshot, host: &'a Host) -> Status<'a> {
    status_with(snap, host, &drills())
}

/// The status of `snap` as API version 1, with these last drills.
pub fn status_with<'a>(snap: &'a Snapshot, host: &'a Host, drills: &Drills) -> Status<'a> {
    Status {
        api_version: API_VERSION,
        host,
        generated_at: snap.generated_at,
        verdict: verdict(snap),
        groups: snap
            .groups
            .iter()
            .map(|g| Group {
                view: g,
                reasons: g.reasons(),
                advice: crate::explain::advice(g),
                last_drill: drills.get(&g.name).cloned(),
            })
            .collect(),
        collectors: &snap.collectors,
    }
}

/// The JSON text of [`status`], pretty or compact.
pub fn to_json(snap: &Snapshot, host: &Host, pretty: bool) -> String {
    to_json_with(snap, host, &drills(), pretty)
}

/// The JSON text of [`status_with`], pretty or compact.
pub fn to_json_with(snap: &Snapshot, host: &Host, drills: &Drills, pretty: bool) -> String {
    let s = status_with(snap, host, drills);
    let r = if pretty {
        serde_json::to_string_pretty(&s)
    } else {
        serde_json::to_string(&s)
    };
    // Serialising plain structs of strings and numbers cannot fail; keep a valid body anyway.
    r.unwrap_or_else(|e| {
        serde_json::json!({ "api_version": API_VERSION, "error": e.to_string() }).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, state: &str, by_design: bool) -> GroupView {
        GroupView {
            name: name.into(),
            kind: "bond".into(),
            collector: "net".into(),
            state: sparewatch_collectors::GroupState::parse(state).expect("a state name"),
            by_design,
            members_total: 0,
            members_healthy: 0,
            members_required: 1,
            spare: 0,
            since: 0.0,
            transitions: 0,
            stated_state: None,
            evidence_disagreement: false,
            members: vec![],
            domains: None,
        }
    }

    fn summary(groups: Vec<GroupView>) -> Verdict {
        verdict(&Snapshot {
            groups,
            ..Snapshot::default()
        })
    }

    #[test]
    fn verdict_in_words() {
        let v = summary(vec![
            group("a", "no_redundancy", false),
            group("b", "no_redundancy", false),
            group("c", "redundant", false),
        ]);
        assert_eq!(v.summary, "2 groups running on their last spare");
        assert_eq!(v.worst, Some("no_redundancy"));
        assert_eq!(v.counts["no_redundancy"], 2);
        assert_eq!(v.counts["failed"], 0);
        let v = summary(vec![
            group("a", "failed", false),
            group("b", "no_redundancy", true),
        ]);
        assert_eq!(
            v.summary,
            "1 group failed, 1 group running on its last spare (1 single by design)"
        );
        assert_eq!(v.worst, Some("failed"));
        assert_eq!(
            summary(vec![
                group("a", "redundant", false),
                group("b", "redundant", false)
            ])
            .summary,
            "all 2 groups redundant"
        );
        assert_eq!(summary(vec![]).worst, None);
    }

    #[test]
    fn keeps_the_snapshot_fields_and_adds_its_own() {
        let snap = Snapshot {
            generated_at: 5.0,
            groups: vec![group("bond:bond0", "redundant", false)],
            ..Snapshot::default()
        };
        let host = Host {
            hostname: "h1".into(),
            agent_version: "0.1.0".into(),
        };
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&snap, &host, false)).expect("json");
        let old = serde_json::to_value(&snap).expect("snapshot json");
        for key in ["generated_at", "groups", "collectors"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        // Every field of a group as the snapshot had it is still there, unchanged.
        for (k, val) in old["groups"][0].as_object().expect("group") {
            assert_eq!(&v["groups"][0][k], val, "{k}");
        }
        assert_eq!(v["api_version"], 1);
        assert_eq!(v["host"]["hostname"], "h1");
        assert!(v["groups"][0]["advice"].as_str().is_some());
    }

    fn record(group: &str, result: &str, finished: f64) -> crate::drill::store::Record {
        crate::drill::store::Record {
            group: group.into(),
            kind: "bond".into(),
            result: result.into(),
            finished,
            failover_seconds: Some(0.4213),
            failback_seconds: None,
            probes_lost: Some(0),
            detail: String::new(),
        }
    }

    #[test]
    fn last_drill_is_the_newest_per_group() {
        let h = History {
            version: 1,
            records: vec![
                record("bond:bond0", "passed", 2000.0),
                record("bond:bond0", "failed", 1000.0),
                record("md:md0", "aborted", 1500.0),
                record("md:md0", "exploded", 1600.0),
            ],
        };
        let d = last_drills(&h);
        assert_eq!(d["bond:bond0"].result, "passed");
        assert_eq!(d["md:md0"].result, "aborted");
        assert_eq!(
            drill_words(d.get("bond:bond0"), 2000.0 + 3.0 * 86400.0),
            "passed 3days ago (failover 0.42s)"
        );
        assert_eq!(drill_words(None, 0.0), "never");
        let snap = Snapshot {
            groups: vec![
                group("bond:bond0", "redundant", false),
                group("bond:bond1", "redundant", false),
            ],
            ..Snapshot::default()
        };
        let host = Host {
            hostname: "h".into(),
            agent_version: "0".into(),
        };
        let v: serde_json::Value =
            serde_json::from_str(&to_json_with(&snap, &host, &d, false)).expect("json");
        assert_eq!(v["groups"][0]["last_drill"]["result"], "passed");
        assert_eq!(
            v["groups"][0]["last_drill"]["failback_seconds"],
            serde_json::Value::Null
        );
        assert_eq!(v["groups"][1]["last_drill"], serde_json::Value::Null);
    }

    #[test]
    fn drills_follow_the_history_file_and_survive_garbage() {
        use crate::drill::store::{DrillStore, FileStore};
        let dir = tempfile::tempdir().expect("tempdir");
        set_state_dir(Some(dir.path()));
        assert!(drills().is_empty(), "no history yet");
        let store = FileStore::new(dir.path());
        store
            .append_history(record("md:md9", "failed", 1000.0))
            .expect("append");
        assert_eq!(drills()["md:md9"].result, "failed");
        store
            .append_history(record("md:md9", "passed", 1100.0))
            .expect("append");
        assert_eq!(drills()["md:md9"].result, "passed");
        std::fs::write(store.history_path(), b"{not json at all").expect("write");
        assert!(drills().is_empty());
        set_state_dir(None);
        assert!(drills().is_empty());
    }
}
