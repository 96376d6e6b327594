//! Hidden single points of failure: the effective spare of a group over its members'
//! failure domains, and capacity-true power redundancy (docs/failure-domains.md).
//!
//! `effective spare = spare − (largest number of healthy members sharing one domain − 1)`,
//! over every domain the collectors could resolve. A domain that could not be resolved is
//! `unknown`: it neither lowers the effective spare nor counts as independent; how many
//! healthy members have an unknown domain of each kind is exported beside it.
//!
//! The engine calls [`evaluate`] once per group (after the member count) and [`capacity_state`]
//! before it fixes the group's state; [`render`] writes the metrics from the snapshot.

use std::collections::BTreeMap;

use serde::Serialize;
use sparewatch_collectors::{FailureDomain, GroupReading, GroupState, PowerCapacity};

use crate::render::Families;
use crate::snapshot::{GroupView, Snapshot};

/// One domain shared by several healthy members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedDomain {
    pub kind: String,
    pub id: String,
    /// Healthy members in it.
    pub healthy_members: u32,
}

/// What the failure domains of a group say.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupDomains {
    /// `None` when no member has any resolved domain: nothing is known, nothing is claimed.
    pub effective_spare: Option<i64>,
    /// Domains shared by two or more healthy members (not accepted in the config), the
    /// largest first.
    pub shared: Vec<SharedDomain>,
    /// Per domain kind, healthy members whose domain of that kind is unknown.
    pub unknown: BTreeMap<String, u32>,
    /// Each member's domains (as collected; accepted ones included).
    pub members: Vec<(String, Vec<FailureDomain>)>,
    /// The power capacity check of a psu group, when it has one.
    pub capacity: Option<CapacityView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityView {
    pub sufficient: Option<bool>,
    pub load_watts: Option<f64>,
    pub after_loss_watts: Option<f64>,
    pub reason: String,
}

/// An accepted shared domain from the config (`groups: {bond:bond0: {accept_shared_domains:
/// [switch]}}`): a whole kind (`switch`) or one domain (`card:0000:3b:00`).
fn accepted(rules: &[String], d: &FailureDomain) -> bool {
    rules.iter().any(|r| match r.split_once(':') {
        Some((kind, id)) => kind == d.kind && id == d.id,
        None => r == "*" || r == d.kind,
    })
}

/// The pure rule: `members` are (counts healthy, domains). Returns the effective spare
/// (`None` when no domain is resolved at all), the shared domains, and unknown counts.
pub fn effective_spare(
    spare: i64,
    members: &[(bool, &[FailureDomain])],
    accept: &[String],
) -> (Option<i64>, Vec<SharedDomain>, BTreeMap<String, u32>) {
    let mut counts: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    let mut unknown: BTreeMap<String, u32> = BTreeMap::new();
    let mut any_resolved = false;
    for (healthy, domains) in members {
        for d in domains.iter() {
            if d.is_unknown() {
                if *healthy {
                    *unknown.entry(d.kind.to_string()).or_default() += 1;
                }
                continue;
            }
            any_resolved = true;
            if *healthy && !accepted(accept, d) {
                *counts.entry((d.kind, d.id.as_str())).or_default() += 1;
            }
        }
    }
    let mut shared: Vec<SharedDomain> = counts
        .iter()
        .filter(|(_, n)| **n >= 2)
        .map(|((k, i), n)| SharedDomain {
            kind: k.to_string(),
            id: i.to_string(),
            healthy_members: *n,
        })
        .collect();
    shared.sort_by_key(|s| std::cmp::Reverse(s.healthy_members));
    let largest = counts.values().copied().max().unwrap_or(0);
    let effective = any_resolved.then(|| spare - i64::from(largest.saturating_sub(1)));
    (effective, shared, unknown)
}

/// What a group accepts when the config says nothing for it: md arrays accept a shared
/// `hba`. Nearly every md mirror is a boot or data mirror on the board's one AHCI/SATA
/// controller, so a shared `hba` is true of almost every md array and says nothing an
/// operator can act on; paging on it would teach people to ignore the alert. A shared
/// `disk` (two partitions of one disk) stays counted, and multipath keeps `hba` (a second
/// HBA is the point of multipath). A group's own `accept_shared_domains` replaces this
/// default (`[]` counts the HBA again). The domain is still exported.
pub fn default_accept(kind: &str) -> &'static [&'static str] {
    match kind {
        "md" => &[sparewatch_collectors::topology::HBA],
        _ => &[],
    }
}

/// The domains of one evaluated group. `view.members` are in the order of
/// `reading.members` (the engine builds them so); health is taken after hysteresis.
/// `accept`: the group's `accept_shared_domains` from the config, `None` when it has none
/// (then [`default_accept`] applies).
pub fn evaluate(
    reading: &GroupReading,
    view: &GroupView,
    accept: Option<&[String]>,
) -> GroupDomains {
    let defaults: Vec<String>;
    let accept = match accept {
        Some(a) => a,
        None => {
            defaults = default_accept(reading.kind)
                .iter()
                .map(|s| s.to_string())
                .collect();
            &defaults
        }
    };
    let members: Vec<(bool, &[FailureDomain])> = reading
        .members
        .iter()
        .map(|m| {
            let healthy = view
                .members
                .iter()
                .find(|v| v.name == m.name)
                .is_some_and(|v| v.healthy);
            (healthy, m.domains.as_slice())
        })
        .collect();
    let (effective_spare, shared, unknown) = effective_spare(view.spare, &members, accept);
    GroupDomains {
        effective_spare,
        shared,
        unknown,
        members: reading
            .members
            .iter()
            .filter(|m| !m.domains.is_empty())
            .map(|m| (m.name.clone(), m.domains.clone()))
            .collect(),
        capacity: reading.capacity.as_ref().map(|c| CapacityView {
            sufficient: c.sufficient,
            load_watts: c.load_watts,
            after_loss_watts: c.after_loss_watts,
            reason: c.reason.clone(),
        }),
    }
}

/// Capacity-true redundancy merged into the member-count state: survivors too weak to carry
/// the load make a redundant or degraded group `no_redundancy`. Unknown capacity changes
/// nothing (it is reported, never guessed); worse states stay as they are.
pub fn capacity_state(state: GroupState, capacity: Option<&PowerCapacity>) -> GroupState {
    match (state, capacity.and_then(|c| c.sufficient)) {
        (GroupState::Redundant | GroupState::Degraded, Some(false)) => GroupState::NoRedundancy,
        (s, _) => s,
    }
}

/// `sparewatch_group_effective_spare`, `sparewatch_member_failure_domain_info`,
/// `sparewatch_group_failure_domain_shared_members`, `sparewatch_group_failure_domains_unknown`
/// and the power capacity gauges, from the snapshot.
pub fn render(snap: &Snapshot, f: &mut Families) {
    for g in &snap.groups {
        let Some(d) = &g.domains else { continue };
        let gk = [("group", g.name.as_str()), ("kind", g.kind.as_str())];
        if let Some(e) = d.effective_spare {
            f.gauge(
                "sparewatch_group_effective_spare",
                "Spare minus (the largest number of healthy members sharing one failure domain - 1): 0 or less while the group is redundant is a hidden single point of failure.",
                &gk,
                e as f64,
            );
        }
        for s in &d.shared {
            f.gauge(
                "sparewatch_group_failure_domain_shared_members",
                "Healthy members of the group that share this failure domain (only domains shared by two or more).",
                &[gk[0], gk[1], ("domain_kind", s.kind.as_str()), ("domain", s.id.as_str())],
                s.healthy_members.into(),
            );
        }
        for (kind, n) in &d.unknown {
            f.gauge(
                "sparewatch_group_failure_domains_unknown",
                "Healthy members whose failure domain of this kind could not be resolved (the effective spare does not account for them).",
                &[gk[0], gk[1], ("domain_kind", kind.as_str())],
                (*n).into(),
            );
        }
        if let Some(c) = &d.capacity {
            f.gauge(
                "sparewatch_group_power_capacity_known",
                "Whether the load and the rated capacity of every healthy supply are known, so the capacity check could be made (0: unknown, never guessed).",
                &gk,
                if c.sufficient.is_some() { 1.0 } else { 0.0 },
            );
            if let Some(s) = c.sufficient {
                f.gauge(
                    "sparewatch_group_power_capacity_sufficient",
                    "Whether the healthy power supplies left after losing the largest one can carry the present load (absent when load or rating is unknown).",
                    &gk,
                    if s { 1.0 } else { 0.0 },
                );
            }
            if let Some(w) = c.load_watts {
                f.gauge(
                    "sparewatch_group_power_load_watts",
                    "Power the group's supplies deliver now, in watts.",
                    &gk,
                    w,
                );
            }
            if let Some(w) = c.after_loss_watts {
                f.gauge(
                    "sparewatch_group_power_after_loss_watts",
                    "What the healthy supplies deliver after losing the largest one (less the configured margin), in watts.",
                    &gk,
                    w,
                );
            }
        }
    }
    for g in &snap.groups {
        let Some(d) = &g.domains else { continue };
        for (member, domains) in &d.members {
            for dom in domains {
                f.gauge(
                    "sparewatch_member_failure_domain_info",
                    "A failure domain the member belongs to (domain=\"unknown\": the kind applies but could not be resolved).",
                    &[
                        ("group", g.name.as_str()),
                        ("kind", g.kind.as_str()),
                        ("member", member.as_str()),
                        ("domain_kind", dom.kind),
                        ("domain", dom.id.as_str()),
                    ],
                    1.0,
                );
            }
        }
    }
}

/// The SPARE cell of `sparewatch status`: the spare, and the effective spare with the domain
/// that eats it when they differ ("1 (effective 0: card 0000:3b:00)").
pub fn spare_column(g: &GroupView) -> String {
    let eff = g.domains.as_ref().and_then(|d| {
        let e = d.effective_spare.filter(|e| *e != g.spare)?;
        Some(match d.shared.first() {
            Some(s) => format!(" (effective {e}: {} {})", s.kind, s.id),
            None => format!(" (effective {e})"),
        })
    });
    format!("{}{}", g.spare, eff.unwrap_or_default())
}

/// The reason line of a group whose capacity is insufficient, for status and check.
pub fn capacity_reason(g: &GroupView) -> Option<String> {
    let c = g.domains.as_ref()?.capacity.as_ref()?;
    (c.sufficient == Some(false)).then(|| c.reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(kind: &'static str, id: &str) -> FailureDomain {
        FailureDomain::new(kind, id)
    }

    #[test]
    fn two_slaves_on_one_card_leave_no_effective_spare() {
        let a = [d("card", "0000:3b:00"), FailureDomain::unknown("switch")];
        let b = [d("card", "0000:3b:00"), FailureDomain::unknown("switch")];
        let (e, shared, unknown) = effective_spare(1, &[(true, &a), (true, &b)], &[]);
        assert_eq!(e, Some(0));
        assert_eq!(shared[0].kind, "card");
        assert_eq!(shared[0].healthy_members, 2);
        assert_eq!(unknown["switch"], 2);
    }

    #[test]
    fn independent_members_keep_the_spare_and_unknown_is_not_independent() {
        let a = [d("card", "0000:3b:00")];
        let b = [d("card", "0000:5e:00")];
        assert_eq!(
            effective_spare(1, &[(true, &a), (true, &b)], &[]).0,
            Some(1)
        );
        // Nothing resolved: no claim at all.
        let u = [FailureDomain::unknown("card")];
        assert_eq!(effective_spare(1, &[(true, &u), (true, &u)], &[]).0, None);
        assert_eq!(effective_spare(1, &[(true, &[]), (true, &[])], &[]).0, None);
    }

    #[test]
    fn an_unhealthy_member_does_not_share_and_accepted_domains_are_ignored() {
        let a = [d("switch", "sw-a")];
        let (e, shared, _) = effective_spare(0, &[(true, &a), (false, &a)], &[]);
        assert_eq!(e, Some(0));
        assert!(shared.is_empty());
        let m = [(true, &a[..]), (true, &a[..]), (true, &a[..])];
        assert_eq!(effective_spare(2, &m, &[]).0, Some(0));
        assert_eq!(effective_spare(2, &m, &["switch".into()]).0, Some(2));
        assert_eq!(effective_spare(2, &m, &["switch:sw-a".into()]).0, Some(2));
        assert_eq!(effective_spare(2, &m, &["switch:sw-b".into()]).0, Some(0));
    }

    #[test]
    fn capacity_makes_redundant_no_redundancy_only_when_known_short() {
        let short = PowerCapacity {
            sufficient: Some(false),
            load_watts: Some(1100.0),
            after_loss_watts: Some(800.0),
            reason: "load 1100 W > 800 W left after losing PS1".into(),
        };
        assert_eq!(
            capacity_state(GroupState::Redundant, Some(&short)),
            GroupState::NoRedundancy
        );
        assert_eq!(
            capacity_state(GroupState::Failed, Some(&short)),
            GroupState::Failed
        );
        let unknown = PowerCapacity {
            sufficient: None,
            ..short
        };
        assert_eq!(
            capacity_state(GroupState::Redundant, Some(&unknown)),
            GroupState::Redundant
        );
    }

    proptest! {
        /// Independent restatement: for every resolved domain, healthy members in it minus
        /// one is at most spare − effective, and equality holds for the largest.
        #[test]
        fn effective_matches_the_definition(
            spare in -3i64..5,
            members in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec((0usize..3, 0u8..3), 0..4)),
                0..6,
            ),
        ) {
            const KINDS: [&str; 3] = ["card", "switch", "disk"];
            let doms: Vec<(bool, Vec<FailureDomain>)> = members
                .iter()
                .map(|(h, ds)| {
                    let mut v: Vec<FailureDomain> = Vec::new();
                    for (k, i) in ds {
                        let dom = if *i == 0 {
                            FailureDomain::unknown(KINDS[*k])
                        } else {
                            d(KINDS[*k], &i.to_string())
                        };
                        if !v.contains(&dom) {
                            v.push(dom);
                        }
                    }
                    (*h, v)
                })
                .collect();
            let input: Vec<(bool, &[FailureDomain])> =
                doms.iter().map(|(h, v)| (*h, v.as_slice())).collect();
            let (e, _, _) = effective_spare(spare, &input, &[]);
            let resolved = doms.iter().any(|(_, v)| v.iter().any(|d| !d.is_unknown()));
            prop_assert_eq!(e.is_some(), resolved);
            if let Some(e) = e {
                let mut worst = 0i64;
                for (_, v) in &doms {
                    for dom in v.iter().filter(|d| !d.is_unknown()) {
                        let n = doms.iter().filter(|(h, w)| *h && w.contains(dom)).count() as i64;
                        worst = worst.max(n - 1);
                    }
                }
                prop_assert_eq!(e, spare - worst);
                prop_assert!(e <= spare);
            }
        }
    }
}
