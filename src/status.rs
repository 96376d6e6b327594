//! Terminal output: the `status` table/JSON and the `check` verdict (Nagios/Icinga codes).

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use sparewatch_collectors::GroupState;

use crate::snapshot::Snapshot;

/// "2026-11-24T12:00:00Z (3h12m ago)".
pub fn format_since(since: f64, now: f64) -> String {
    let t = crate::snapshot::from_unix(since).unwrap_or(UNIX_EPOCH);
    let ago = Duration::from_secs((now - since).max(0.0) as u64);
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_seconds(t),
        humantime::format_duration(ago)
            .to_string()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join("")
    )
}

/// "2/2 need 1 +1 spare": hot spares are shown apart, since they do not count as healthy.
fn healthy_column(g: &crate::snapshot::GroupView) -> String {
    let spares = g.spares();
    let counted = g.members.len() - spares;
    let mut s = format!(
        "{}/{} need {}",
        g.members_healthy, counted, g.members_required
    );
    if spares > 0 {
        s.push_str(&format!(" +{spares} spare"));
    }
    s
}

pub fn table(snap: &Snapshot) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "GROUP".into(),
        "STATE".into(),
        "SPARE".into(),
        "HEALTHY".into(),
        "SINCE".into(),
        "WHY".into(),
    ]];
    for g in &snap.groups {
        let why = g.reasons();
        let mut state = g.state.as_str().to_string();
        if g.by_design {
            state.push_str(" (by design)");
        }
        if g.evidence_disagreement {
            if let Some(s) = &g.stated_state {
                let _ = write!(state, " [hardware says {s}]");
            }
        }
        rows.push([
            g.name.clone(),
            state,
            crate::domains::spare_column(g),
            healthy_column(g),
            format_since(g.since, snap.generated_at),
            why.join("; "),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == r.len() - 1 {
                line.push_str(c);
            } else {
                let _ = write!(line, "{:<w$}  ", c, w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if snap.groups.is_empty() {
        out.push_str("(no redundancy groups found on this host)\n");
    }
    let down: Vec<String> = snap
        .collectors
        .iter()
        .filter(|c| !c.up)
        .map(|c| format!("{}: {}", c.name, c.last_error.as_deref().unwrap_or("down")))
        .collect();
    let absent: Vec<&str> = snap
        .collectors
        .iter()
        .filter(|c| c.up && !c.present)
        .map(|c| c.name.as_str())
        .collect();
    if !down.is_empty() {
        let _ = writeln!(out, "\ncollectors down: {}", down.join("; "));
    }
    if !absent.is_empty() {
        let _ = writeln!(out, "not present here: {}", absent.join(", "));
    }
    out
}

/// Nagios/Icinga exit code and one summary line.
pub fn check(snap: &Snapshot) -> (i32, String) {
    let mut crit = Vec::new();
    let mut warn = Vec::new();
    for g in &snap.groups {
        let why: Vec<String> = g
            .members
            .iter()
            .filter_map(|m| m.reason.as_ref().map(|r| format!("{}: {}", m.name, r)))
            .collect();
        let item = if why.is_empty() {
            format!("{} {}", g.name, g.state)
        } else {
            format!("{} {} ({})", g.name, g.state, why.join(", "))
        };
        match g.state {
            GroupState::Failed => crit.push(item),
            GroupState::NoRedundancy if g.by_design => {}
            GroupState::Degraded | GroupState::NoRedundancy | GroupState::Unknown => {
                warn.push(item)
            }
            GroupState::Redundant => {}
        }
    }
    for c in snap.collectors.iter().filter(|c| !c.up) {
        warn.push(format!(
            "collector {} down ({})",
            c.name,
            c.last_error.as_deref().unwrap_or("?")
        ));
    }
    let redundant = snap
        .groups
        .iter()
        .filter(|g| g.state == GroupState::Redundant)
        .count();
    let perf = format!("| groups={} redundant={redundant}", snap.groups.len());
    if !crit.is_empty() {
        crit.extend(warn);
        (
            2,
            format!("SPAREWATCH CRITICAL - {} {perf}", crit.join("; ")),
        )
    } else if !warn.is_empty() {
        (
            1,
            format!("SPAREWATCH WARNING - {} {perf}", warn.join("; ")),
        )
    } else {
        (
            0,
            format!(
                "SPAREWATCH OK - {} groups redundant {perf}",
                snap.groups.len()
            ),
        )
    }
}
