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

/// "2/2 need 1 +1 spare": hot spares are shown apart, since they do not count as healthy;
/// "+1/3 spare" when only one of three attached spares works.
fn healthy_column(g: &crate::snapshot::GroupView) -> String {
    let spares = g.spares();
    let counted = g.members.len() - spares;
    let mut s = format!(
        "{}/{} need {}",
        g.members_healthy, counted, g.members_required
    );
    // A faulty device still attached as a spare is no spare: "+1/3 spare" says so.
    let working = g
        .members
        .iter()
        .filter(|m| m.role == sparewatch_collectors::Role::Spare && m.healthy)
        .count();
    if spares > 0 && working == spares {
        s.push_str(&format!(" +{spares} spare"));
    } else if spares > 0 {
        s.push_str(&format!(" +{working}/{spares} spare"));
    }
    s
}

/// How `status` draws its table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// List the members under each group (`status -v`).
    pub verbose: bool,
    /// ANSI colours for the states (a terminal, and `NO_COLOR` unset).
    pub colour: bool,
}

impl TableOptions {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty (no-color.org).
    pub fn for_stdout(verbose: bool) -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        TableOptions {
            verbose,
            colour: std::io::stdout().is_terminal() && !no_color,
        }
    }
}

/// The ANSI colour of a state (or of a member's health word).
fn paint(text: &str, key: &str, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match key {
        "redundant" | "healthy" => "32",
        "degraded" | "at risk" => "33",
        "no_redundancy" => "1;33",
        "failed" | "UNHEALTHY" => "1;31",
        "unknown" => "35",
        _ => return text.to_string(),
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

pub fn table(snap: &Snapshot) -> String {
    table_with(snap, TableOptions::default())
}

/// The table with the last drills of [`crate::api::set_state_dir`].
pub fn table_with(snap: &Snapshot, opts: TableOptions) -> String {
    table_drills(snap, opts, &crate::api::drills())
}

/// The `status` table: SPARE carries the effective spare and the domain that lowers it,
/// LAST DRILL the newest drill of the group.
pub fn table_drills(snap: &Snapshot, opts: TableOptions, drills: &crate::api::Drills) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "GROUP".into(),
        "STATE".into(),
        "SPARE".into(),
        "HEALTHY".into(),
        "SINCE".into(),
        "LAST DRILL".into(),
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
            crate::api::drill_words(drills.get(&g.name), snap.generated_at),
            why.join("; "),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        // Row 0 is the header; row n is group n-1.
        let group = n.checked_sub(1).and_then(|i| snap.groups.get(i));
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == r.len() - 1 {
                line.push_str(c);
            } else {
                let padded = format!("{:<w$}  ", c, w = widths[i]);
                match (i, group) {
                    // Colour after padding, so escape codes do not count as width.
                    (1, Some(g)) => {
                        line.push_str(&paint(&padded, crate::api::state(g), opts.colour))
                    }
                    _ => line.push_str(&padded),
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if let (Some(g), true) = (group, opts.verbose) {
            out.push_str(&members(g, opts.colour));
        }
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

/// The member lines `status -v` prints under a group: name, role, health, reason.
fn members(g: &crate::snapshot::GroupView, colour: bool) -> String {
    let nw = crate::api::name_width(g);
    let mut out = String::new();
    for (i, m) in g.members.iter().enumerate() {
        let health = crate::api::health_word(m);
        let branch = if i + 1 == g.members.len() {
            "└─"
        } else {
            "├─"
        };
        let mut line = format!(
            "  {branch} {:<nw$}  {:<7}  {}",
            m.name,
            crate::api::role(m),
            paint(&format!("{health:<9}"), health, colour)
        );
        if let Some(r) = &m.reason {
            let _ = write!(line, "  {r}");
        }
        if m.transitions > 0 {
            let _ = write!(line, "  ({} transitions)", m.transitions);
        }
        out.push_str(line.trim_end());
        out.push('\n');
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

/// `status --watch`: runs the collectors in the background and redraws the table whenever it
/// changes, until interrupted. On a terminal the screen is cleared before each drawing.
pub fn watch(mut setup: crate::app::Setup, opts: TableOptions) -> anyhow::Result<()> {
    use std::io::Write as _;
    // The running agent owns the state file; a watch must never write it.
    setup.state_dir = None;
    let mut agent = crate::app::start(setup, None, false)?;
    let mut last = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if !agent.snapshots.has_changed().unwrap_or(false) {
            continue;
        }
        let snap = agent.snapshots.borrow_and_update().clone();
        if snap.generated_at == 0.0 {
            continue;
        }
        let text = table_with(&snap, opts);
        if text == last {
            continue;
        }
        let mut out = std::io::stdout().lock();
        if opts.colour {
            write!(out, "\x1b[H\x1b[2J")?;
        } else if !last.is_empty() {
            writeln!(out)?;
        }
        write!(out, "{text}")?;
        out.flush()?;
        last = text;
    }
}
