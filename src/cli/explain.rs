//! `sparewatch explain GROUP`: why a group has its state, in words (policy, each member,
//! evidence, hold-down, failure domains), and what to check. [`advice`] is also the
//! `advice` field of the status API and the page.

use std::fmt::Write;
use std::time::Duration;

use crate::api::{role, state};
use crate::snapshot::{GroupView, MemberView, Snapshot};

/// The object a group is about: `bond0` for `bond:bond0`.
fn object(g: &GroupView) -> &str {
    g.name.split_once(':').map_or(g.name.as_str(), |(_, o)| o)
}

fn is_recovering(m: &MemberView) -> bool {
    m.reason
        .as_deref()
        .is_some_and(|r| r.starts_with("recovering"))
}

/// Where to look for a member of this kind of group.
fn where_to_look(g: &GroupView, member: &str) -> String {
    let o = object(g);
    match g.kind.as_str() {
        "bond" => format!(
            "cable, transceiver and switch port of the member; `cat /proc/net/bonding/{o}`, `ip -s link show {member}`"
        ),
        "team" => format!("cable and switch port of the member; `teamdctl {o} state`"),
        "md" => format!(
            "`mdadm --detail /dev/{o}`, `cat /proc/mdstat`, the disk's SMART (`smartctl -a`); replace it, then `mdadm /dev/{o} --add`"
        ),
        "multipath" => {
            format!("`multipath -ll {o}`, the HBA, cable, fabric switch and array port of the path")
        }
        "nvme" => format!("`nvme list-subsys`, the ANA state of each controller of {o}"),
        "hwraid" => "`storcli /call show all` (or perccli), the drive's slot and LEDs".to_string(),
        "psu" => "the PSU's power cord and feed (PDU, breaker), then the PSU itself; `ipmitool sdr type 'Power Supply'`".to_string(),
        "fan" => "the fan and its connector; `ipmitool sdr type Fan` or `sensors`".to_string(),
        _ => format!("the {} collector's sources for this group", g.collector),
    }
}

/// What the group needs, in one sentence.
pub fn advice(g: &GroupView) -> String {
    let bad: Vec<&MemberView> = g
        .members
        .iter()
        .filter(|m| !m.healthy && !m.unknown && !is_recovering(m))
        .collect();
    let risky: Vec<&MemberView> = g.members.iter().filter(|m| m.at_risk).collect();
    let recovering: Vec<&MemberView> = g.members.iter().filter(|m| is_recovering(m)).collect();
    let names = |ms: &[&MemberView]| {
        ms.iter()
            .map(|m| format!("{} ({})", m.name, role(m)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match state(g) {
        "redundant" => "Nothing to do: every member is healthy and there is a spare.".to_string(),
        "unknown" => {
            let unknown: Vec<&MemberView> = g.members.iter().filter(|m| m.unknown).collect();
            let why = unknown
                .iter()
                .find_map(|m| m.reason.clone())
                .unwrap_or_else(|| "no data".to_string());
            format!(
                "sparewatch cannot tell ({why}): fix what the {} collector reads first; the group is never reported redundant meanwhile.",
                g.collector
            )
        }
        _ if g.by_design && bad.is_empty() => {
            "Single by design: nothing is broken; add a member (and set the policy) to get redundancy.".to_string()
        }
        _ => {
            let mut parts = Vec::new();
            if let Some(first) = bad.first() {
                parts.push(format!(
                    "Bring back or replace {}: check {}.",
                    names(&bad),
                    where_to_look(g, &first.name)
                ));
            }
            if !risky.is_empty() {
                parts.push(format!(
                    "Replace {} before it fails (it still works).",
                    names(&risky)
                ));
            }
            if !recovering.is_empty() {
                parts.push(format!(
                    "{} healthy again: counts once it stays healthy for the hold-down.",
                    names(&recovering)
                ));
            }
            if parts.is_empty() {
                parts.push(format!(
                    "Every member is healthy, but fewer than the policy needs plus one: add a member, or review `required` ({}).",
                    g.members_required
                ));
            }
            parts.join(" ")
        }
    }
}

fn state_words(s: &str) -> &'static str {
    match s {
        "redundant" => "spare ≥ 1 and every member healthy: it survives the next single failure",
        "degraded" => {
            "spare ≥ 1 but a member is unhealthy or at risk: some redundancy is lost, it still survives one more failure"
        }
        "no_redundancy" => {
            "spare = 0: it works, but it runs on its last member; the next single failure is an outage"
        }
        "failed" => "spare < 0: fewer healthy members than the function needs",
        "unknown" => "data missing or stale: sparewatch cannot tell, and never calls that redundant",
        _ => "a state this version does not describe",
    }
}

/// The explanation of one group, or an error naming the groups there are, with the drills
/// of [`crate::api::set_state_dir`].
pub fn explain(snap: &Snapshot, name: &str, hold_down: Duration) -> Result<String, String> {
    explain_with(snap, name, hold_down, &crate::api::drills())
}

/// The failure-domain section: the effective spare, the shared domains, what is unknown.
fn domains_section(out: &mut String, g: &GroupView) {
    let _ = writeln!(out, "\nFailure domains");
    let Some(d) = g.domains.as_ref() else {
        let _ = writeln!(
            out,
            "  None collected for this group: members that share a card, switch, HBA or feed are not detected, so the spare above may overstate what survives."
        );
        return;
    };
    match d.effective_spare {
        Some(e) if e == g.spare => {
            let _ = writeln!(
                out,
                "  Effective spare {e}, the same as the spare: no resolved domain is shared by two healthy members."
            );
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "  Effective spare {e}, lower than the spare {}: members share a domain whose one failure takes them all.",
                g.spare
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  No member's domain could be resolved: no effective spare is claimed, and the spare above may overstate what survives."
            );
        }
    }
    for s in &d.shared {
        let _ = writeln!(
            out,
            "  {} healthy members share {} {}.",
            s.healthy_members, s.kind, s.id
        );
    }
    for (kind, n) in &d.unknown {
        let _ = writeln!(
            out,
            "  {n} healthy member{} with an unknown {kind}: counted neither independent nor shared.",
            if *n == 1 { "" } else { "s" }
        );
    }
    let width = d
        .members
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, doms) in &d.members {
        if doms.is_empty() {
            continue;
        }
        let list: Vec<String> = doms
            .iter()
            .map(|f| format!("{} {}", f.kind, f.id))
            .collect();
        let _ = writeln!(out, "  {name:<width$}  {}", list.join(", "));
    }
    if let Some(c) = &d.capacity {
        let _ = writeln!(out, "  Power capacity: {}", c.reason);
    }
}

/// The last-drill section.
fn drill_section(out: &mut String, g: &GroupView, d: Option<&crate::api::LastDrill>, now: f64) {
    let _ = writeln!(out, "\nLast drill");
    let Some(d) = d else {
        let _ = writeln!(
            out,
            "  None recorded: that the standby takes over is not proven. `sparewatch drill {} --plan` shows what a drill would do (or why this kind has none).",
            g.name
        );
        return;
    };
    let _ = write!(
        out,
        "  {} drill {}, ended {}",
        d.kind,
        d.result,
        crate::status::format_since(d.finished, now)
    );
    let mut facts = Vec::new();
    if let Some(v) = d.failover_seconds {
        facts.push(format!("takeover {v:.3}s"));
    }
    if let Some(v) = d.failback_seconds {
        facts.push(format!("failback {v:.3}s"));
    }
    if let Some(v) = d.probes_lost {
        facts.push(format!("{v} probes lost"));
    }
    if !facts.is_empty() {
        let _ = write!(out, ": {}", facts.join(", "));
    }
    out.push_str(".\n");
    if !d.detail.is_empty() {
        let _ = writeln!(out, "  {}", d.detail);
    }
}

/// [`explain`] with these last drills.
pub fn explain_with(
    snap: &Snapshot,
    name: &str,
    hold_down: Duration,
    drills: &crate::api::Drills,
) -> Result<String, String> {
    let Some(g) = snap.groups.iter().find(|g| g.name == name) else {
        let known: Vec<&str> = snap.groups.iter().map(|g| g.name.as_str()).collect();
        return Err(if known.is_empty() {
            format!("no group {name:?}: no redundancy groups found on this host")
        } else {
            format!("no group {name:?}; groups here: {}", known.join(", "))
        });
    };
    let mut out = String::new();
    let st = state(g);
    let _ = writeln!(
        out,
        "{} ({} group, collector {}) is {}{} since {}.",
        g.name,
        g.kind,
        g.collector,
        st,
        if g.by_design {
            " (single by design)"
        } else {
            ""
        },
        crate::status::format_since(g.since, snap.generated_at)
    );
    let _ = writeln!(out, "  {}.", state_words(st));
    let _ = writeln!(out, "\nPolicy");
    let spares = g.members.iter().filter(|m| role(m) == "spare").count();
    let _ = writeln!(
        out,
        "  The function needs {} healthy member{}; {} of {} {} healthy, so spare = {} - {} = {}.",
        g.members_required,
        if g.members_required == 1 { "" } else { "s" },
        g.members_healthy,
        g.members.len() - spares,
        if g.members_healthy == 1 { "is" } else { "are" },
        g.members_healthy,
        g.members_required,
        g.spare
    );
    if spares > 0 {
        let _ = writeln!(
            out,
            "  {spares} hot spare{} shown apart: a spare does not count as healthy until it has taken over.",
            if spares == 1 { " is" } else { "s are" }
        );
    }
    if g.by_design {
        let _ = writeln!(
            out,
            "  Marked single by design in the config: reported, not alerted on."
        );
    }
    let _ = writeln!(out, "\nMembers");
    let width = crate::api::name_width(g);
    for m in &g.members {
        let health = crate::api::health_word(m);
        let _ = write!(out, "  {:<width$}  {:<7}  {health}", m.name, role(m));
        if let Some(r) = &m.reason {
            let _ = write!(out, ": {r}");
        }
        if m.transitions > 0 {
            let _ = write!(out, " ({} transitions)", m.transitions);
        }
        out.push('\n');
    }
    if g.members.is_empty() {
        let _ = writeln!(out, "  (no members)");
    }
    let _ = writeln!(out, "\nEvidence");
    match &g.stated_state {
        Some(s) if g.evidence_disagreement => {
            let _ = writeln!(
                out,
                "  The hardware states {s}, the member count says otherwise: the worse of the two is reported."
            );
        }
        Some(s) => {
            let _ = writeln!(
                out,
                "  The hardware states {s}, and the member count agrees."
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  The member count only (the hardware states no redundancy of its own for this group)."
            );
        }
    }
    if let Some(c) = snap.collectors.iter().find(|c| c.name == g.collector) {
        match (&c.last_error, c.up) {
            (Some(e), _) => {
                let _ = writeln!(out, "  Collector {} is down: {e}.", c.name);
            }
            (None, true) => {
                let _ = writeln!(
                    out,
                    "  Collector {} is up (last pass took {:.3}s).",
                    c.name, c.duration_seconds
                );
            }
            (None, false) => {
                let _ = writeln!(out, "  Collector {} is down.", c.name);
            }
        }
    }
    let _ = writeln!(out, "\nHold-down");
    let _ = writeln!(
        out,
        "  A member that fails counts at once; one that recovers counts again after {} healthy. The group changed state {} time{} since it was first seen.",
        humantime::format_duration(hold_down),
        g.transitions,
        if g.transitions == 1 { "" } else { "s" }
    );
    let held: Vec<&str> = g
        .members
        .iter()
        .filter(|m| is_recovering(m))
        .map(|m| m.name.as_str())
        .collect();
    if !held.is_empty() {
        let _ = writeln!(out, "  Held down right now: {}.", held.join(", "));
    }
    domains_section(&mut out, g);
    drill_section(&mut out, g, drills.get(&g.name), snap.generated_at);
    let _ = writeln!(out, "\nWhat to do");
    let _ = writeln!(out, "  {}", advice(g));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, healthy: bool, reason: Option<&str>) -> MemberView {
        MemberView {
            name: name.into(),
            role: match role {
                "standby" => sparewatch_collectors::Role::Standby,
                "spare" => sparewatch_collectors::Role::Spare,
                _ => sparewatch_collectors::Role::Active,
            },
            healthy,
            at_risk: false,
            unknown: false,
            reason: reason.map(String::from),
            transitions: 0,
        }
    }

    fn bond(state: &str, members: Vec<MemberView>) -> Snapshot {
        let healthy = members.iter().filter(|m| m.healthy).count() as u32;
        Snapshot {
            generated_at: 1000.0,
            groups: vec![GroupView {
                name: "bond:bond0".into(),
                kind: "bond".into(),
                collector: "net".into(),
                state: sparewatch_collectors::GroupState::parse(state).expect("a state name"),
                by_design: false,
                members_total: members.len() as u32,
                members_healthy: healthy,
                members_required: 1,
                spare: i64::from(healthy) - 1,
                since: 900.0,
                transitions: 1,
                stated_state: None,
                evidence_disagreement: false,
                members,
                domains: None,
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn names_the_failed_standby_and_what_to_check() {
        let snap = bond(
            "no_redundancy",
            vec![
                member("eth0", "active", true, None),
                member("eth1", "standby", false, Some("mii down")),
            ],
        );
        let text = explain(&snap, "bond:bond0", Duration::from_secs(5)).expect("explains");
        assert!(text.contains("is no_redundancy"), "{text}");
        assert!(text.contains("spare = 1 - 1 = 0"), "{text}");
        assert!(
            text.contains("eth1  standby  UNHEALTHY: mii down"),
            "{text}"
        );
        assert!(text.contains("after 5s healthy"), "{text}");
        assert!(
            text.contains("Bring back or replace eth1 (standby)"),
            "{text}"
        );
        assert!(text.contains("/proc/net/bonding/bond0"), "{text}");
    }

    #[test]
    fn unknown_group_is_a_clear_error() {
        let snap = bond("redundant", vec![member("eth0", "active", true, None)]);
        let err = explain(&snap, "bond:nope", Duration::from_secs(5)).expect_err("no such group");
        assert!(err.contains("bond:bond0"), "{err}");
    }

    #[test]
    fn recovering_member_is_not_told_to_be_replaced() {
        let snap = bond(
            "no_redundancy",
            vec![
                member("eth0", "active", true, None),
                member(
                    "eth1",
                    "standby",
                    false,
                    Some("recovering: healthy again, held down for 5s"),
                ),
            ],
        );
        let a = advice(&snap.groups[0]);
        assert!(!a.contains("replace"), "{a}");
        assert!(a.contains("eth1 (standby) healthy again"), "{a}");
    }

    #[test]
    fn names_the_shared_domain_and_the_last_drill() {
        use sparewatch_collectors::FailureDomain;
        let mut snap = bond(
            "redundant",
            vec![
                member("eth0", "active", true, None),
                member("eth1", "standby", true, None),
            ],
        );
        let card = FailureDomain::new("card", "0000:3b:00");
        snap.groups[0].domains = Some(crate::domains::GroupDomains {
            effective_spare: Some(0),
            shared: vec![crate::domains::SharedDomain {
                kind: "card".into(),
                id: "0000:3b:00".into(),
                healthy_members: 2,
            }],
            unknown: [("switch".to_string(), 2)].into_iter().collect(),
            members: vec![
                (
                    "eth0".into(),
                    vec![card.clone(), FailureDomain::unknown("switch")],
                ),
                ("eth1".into(), vec![card, FailureDomain::unknown("switch")]),
            ],
            capacity: None,
        });
        let none = crate::api::Drills::new();
        let text =
            explain_with(&snap, "bond:bond0", Duration::from_secs(5), &none).expect("explains");
        assert!(
            text.contains("Effective spare 0, lower than the spare 1"),
            "{text}"
        );
        assert!(
            text.contains("2 healthy members share card 0000:3b:00."),
            "{text}"
        );
        assert!(
            text.contains("2 healthy members with an unknown switch"),
            "{text}"
        );
        assert!(
            text.contains("eth1  card 0000:3b:00, switch unknown"),
            "{text}"
        );
        assert!(text.contains("None recorded"), "{text}");
        let mut drills = crate::api::Drills::new();
        drills.insert(
            "bond:bond0".into(),
            crate::api::LastDrill {
                result: "passed".into(),
                kind: "bond".into(),
                finished: 940.0,
                failover_seconds: Some(0.25),
                failback_seconds: Some(0.5),
                probes_lost: Some(1),
                detail: String::new(),
            },
        );
        let text =
            explain_with(&snap, "bond:bond0", Duration::from_secs(5), &drills).expect("explains");
        assert!(
            text.contains("bond drill passed, ended 1970-01-01T00:15:40Z (1m ago): takeover 0.250s, failback 0.500s, 1 probes lost."),
            "{text}"
        );
    }
}
