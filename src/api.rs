//! The versioned JSON shape of the agent's status (`/api/v1/status`, `status --format json`,
//! the status page). Documented in docs/api.md; docs/api/status-v1.schema.json is checked
//! against the output of every golden fixture.
//!
//! Version 1 is the snapshot's own JSON (`generated_at`, `groups`, `collectors`, unchanged) plus
//! `api_version`, `host`, `verdict`, and per group `reasons` and `advice`. Fields are only
//! ever added within a version; a renamed or removed field means `/api/v2/`.

use serde::Serialize;

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

/// The status of `snap` as API version 1.
pub fn status<'a>(snap: &'a Snapshot, host: &'a Host) -> Status<'a> {
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
            })
            .collect(),
        collectors: &snap.collectors,
    }
}

/// The JSON text of [`status`], pretty or compact.
pub fn to_json(snap: &Snapshot, host: &Host, pretty: bool) -> String {
    let s = status(snap, host);
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
}
