//! From a parsed controller to redundancy groups: one `hwraid:c<ctrl>/v<vd>` per virtual
//! drive, its physical drives as members, `required` by RAID level and span layout.

use std::collections::{BTreeMap, BTreeSet};

use super::storcli::{Controller, DriveDetail, TopologyRow, VirtualDrive};
use crate::one_hot::OneHot;
use crate::{GroupReading, MemberHealth, MemberReading, Reading, Role, StatedRedundancy};

/// `sparewatch_hwraid_virtual_drive_state`: storcli's VD states.
pub const VD_STATE: OneHot = OneHot {
    name: "sparewatch_hwraid_virtual_drive_state",
    help: "Virtual drive state as storcli prints it (Optl, Rec, Pdgd, Dgrd, OfLn), one series per state; the current one is 1.",
    label: "state",
    known: &["Optl", "Rec", "Pdgd", "Dgrd", "OfLn"],
};

/// `sparewatch_hwraid_physical_drive_state`: storcli's PD states.
pub const PD_STATE: OneHot = OneHot {
    name: "sparewatch_hwraid_physical_drive_state",
    help: "Physical drive state as storcli prints it (Onln, Rbld, Offln, UGood, UBad, GHS, DHS…), one series per state; the current one is 1.",
    label: "state",
    known: &[
        "Onln", "Rbld", "Cpybck", "Offln", "Msng", "UGood", "UBad", "GHS", "DHS", "JBOD",
    ],
};

/// How many failed drives one span of this level survives, wherever they fall in it.
/// RAID1E stripes mirrored copies across all its drives: only one failure is survived for
/// certain (a second one may hit the other copy of some block).
pub fn span_tolerance(raid: &str, span_size: u32) -> u32 {
    let level = raid.trim().to_ascii_uppercase();
    match level.trim_start_matches("RAID") {
        "1" | "10" => span_size.saturating_sub(1),
        "1E" => span_size.saturating_sub(1).min(1),
        "5" | "50" => 1,
        "6" | "60" => 2,
        _ => 0,
    }
}

/// RAID0/RAID00 have no redundancy: single by design.
pub fn is_striped_only(raid: &str) -> bool {
    matches!(
        raid.trim().to_ascii_uppercase().as_str(),
        "RAID0" | "RAID00"
    )
}

/// The VD state as hardware-stated redundancy. `Pdgd` (partially degraded: RAID6 with one
/// drive lost) still has redundancy; `Dgrd` has none left; `OfLn` lost the data path.
pub fn stated(vd: &VirtualDrive) -> Option<StatedRedundancy> {
    if is_striped_only(&vd.raid) {
        return None;
    }
    match vd.state.as_str() {
        "Optl" => Some(StatedRedundancy::FullyRedundant),
        "Pdgd" => Some(StatedRedundancy::Degraded),
        "Dgrd" => Some(StatedRedundancy::Lost),
        "OfLn" => Some(StatedRedundancy::Insufficient),
        _ => None,
    }
}

/// A physical drive's raw health from its state. `rebuild`: progress in percent.
pub fn drive_health(state: &str, rebuild: Option<f64>) -> MemberHealth {
    match state {
        "Onln" => MemberHealth::Healthy,
        "Rbld" => MemberHealth::Unhealthy(match rebuild {
            Some(p) => format!("rebuilding ({p:.0}%)"),
            None => "rebuilding".to_string(),
        }),
        "Offln" => MemberHealth::Unhealthy("offline".into()),
        "Msng" => MemberHealth::Unhealthy("missing".into()),
        "UBad" | "F" | "Failed" => MemberHealth::Unhealthy("failed".into()),
        "Cpybck" => MemberHealth::Unhealthy("copyback in progress".into()),
        "" => MemberHealth::Unknown("no state reported".into()),
        other => MemberHealth::Unhealthy(format!("state {other}")),
    }
}

fn spare_health(state: &str) -> MemberHealth {
    match state {
        "GHS" | "DHS" => MemberHealth::Healthy,
        other => MemberHealth::Unhealthy(format!("spare in state {other}")),
    }
}

/// Context the collector adds to the parsed controller.
pub struct Extra<'a> {
    /// The controller's SCSI host number (for `megaraid:<host>:<did>` device keys).
    pub host: Option<u32>,
    /// Rebuild progress by `EID:Slot`, in percent.
    pub rebuild: &'a BTreeMap<String, f64>,
    /// Health counters by `EID:Slot` (`/call/eall/sall show all J`).
    pub details: &'a BTreeMap<String, DriveDetail>,
}

/// Why the controller predicts this drive will fail, if it does: its predictive-failure
/// count (the controller's own SMART polling) or the drive's SMART alert.
pub fn drive_risk(d: &DriveDetail) -> Option<String> {
    let mut why = Vec::new();
    if let Some(n) = d.predictive_failures.filter(|n| *n > 0) {
        why.push(format!("predictive failure count {n}"));
    }
    if d.smart_alert == Some(true) {
        why.push("SMART alert flagged by drive".to_string());
    }
    (!why.is_empty()).then(|| format!("controller: {}", why.join(", ")))
}

/// Marks a healthy drive at risk when the controller predicts its failure.
fn with_risk(health: MemberHealth, slot: Option<&String>, x: &Extra<'_>) -> MemberHealth {
    let risk = slot.and_then(|s| x.details.get(s)).and_then(drive_risk);
    match (health, risk) {
        (MemberHealth::Healthy, Some(r)) => MemberHealth::AtRisk(r),
        (h, _) => h,
    }
}

fn device_key(host: Option<u32>, did: Option<u32>) -> Option<String> {
    Some(crate::smart::report::megaraid_key(host?, did?))
}

/// `required` of a virtual drive from its level and layout only (never from member health,
/// so it stays put while drives fail and a `groups:` override does not fight it): all the
/// drives of its layout (missing ones included) minus the failures each span survives,
/// summed over the spans. RAID0/00: every drive.
///
/// For one span (RAID1 pair, RAID1E, RAID5, RAID6) that is exact. For span-aware levels
/// (RAID10/50/60, RAID1 of mirrored pairs) the count alone is the best case: it is exact when
/// failures are spread over the spans (a RAID10 with one drive lost in each of two spans is
/// `no_redundancy`, not `failed`: it still serves data), and too good when they pile up in one
/// span. The controller's VD state, exported as hardware-stated redundancy, covers that case
/// (the engine reports the worse of the two): a RAID10 that lost one drive is `Dgrd` →
/// `no_redundancy`; a span lost completely is `OfLn` → `failed`.
pub fn required(raid: &str, spans: &BTreeMap<u32, u32>) -> u32 {
    let n: u32 = spans.values().sum();
    if is_striped_only(raid) {
        return n.max(1);
    }
    let tolerance: u32 = spans.values().map(|size| span_tolerance(raid, *size)).sum();
    n.saturating_sub(tolerance).max(1)
}

/// The groups of one controller's virtual drives.
pub fn groups(c: &Controller, x: &Extra<'_>) -> Vec<GroupReading> {
    let mut out = Vec::new();
    for vd in &c.vds {
        let drives: Vec<&TopologyRow> = c
            .topology
            .iter()
            .filter(|r| r.dg == vd.dg && r.kind == "DRIVE" && r.row.is_some())
            .collect();
        let mut g = GroupReading::new(format!("hwraid:c{}/v{}", c.index, vd.vd), "hwraid", 1);
        g.stated = stated(vd);
        // Spans: Arr of each drive; a RAID1 of more than two drives is mirrored pairs.
        let pairs = vd.raid.eq_ignore_ascii_case("RAID1") && drives.len() > 2;
        let mut spans: BTreeMap<u32, u32> = BTreeMap::new(); // span → drives in its layout
        for d in &drives {
            let rebuild = d.eid_slot.as_ref().and_then(|e| x.rebuild.get(e)).copied();
            let health = with_risk(drive_health(&d.state, rebuild), d.eid_slot.as_ref(), x);
            let span = if pairs {
                d.row.unwrap_or(0) / 2
            } else {
                d.arr.unwrap_or(0)
            };
            *spans.entry(span).or_default() += 1;
            let name = d.eid_slot.clone().unwrap_or_else(|| {
                format!(
                    "missing:span{}/row{}",
                    d.arr.unwrap_or(0),
                    d.row.unwrap_or(0)
                )
            });
            let mut m = MemberReading::new(name, Role::Active, health);
            if let Some(k) = device_key(x.host, d.did) {
                m = m.with_device(k);
            }
            g.members.push(m);
        }
        g.required = required(&vd.raid, &spans);
        g.by_design = is_striped_only(&vd.raid);
        // Hot spares: dedicated to this drive group, or global. Unconfigured good drives
        // (UGood) are not spares: the controller never rebuilds onto them by itself.
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let dedicated = c
            .topology
            .iter()
            .filter(|r| r.dg == vd.dg && (r.kind == "DHS" || r.state == "DHS"))
            .filter_map(|r| r.eid_slot.clone().map(|e| (e, r.did, r.state.clone())));
        let listed = c
            .pds
            .iter()
            .filter(|p| match p.state.as_str() {
                "GHS" => true,
                "DHS" => p.dg == Some(vd.dg),
                _ => false,
            })
            .map(|p| (p.eid_slot.clone(), p.did, p.state.clone()));
        for (slot, did, state) in dedicated.chain(listed) {
            if slot.is_empty() || !seen.insert(slot.clone()) {
                continue;
            }
            let health = with_risk(spare_health(&state), Some(&slot), x);
            let mut m = MemberReading::new(slot, Role::Spare, health);
            if let Some(k) = device_key(x.host, did) {
                m = m.with_device(k);
            }
            g.members.push(m);
        }
        out.push(g);
    }
    out
}

/// Raw readings of one controller.
pub fn readings(c: &Controller, x: &Extra<'_>, out: &mut Vec<Reading>) {
    let ctrl = c.index.to_string();
    out.push(Reading::gauge(
        "sparewatch_hwraid_controller_info",
        "A RAID controller storcli/perccli reports: model, PCI address, SCSI host.",
        vec![
            ("controller", ctrl.clone()),
            ("model", c.model.clone().unwrap_or_default()),
            ("pci_address", c.pci_address.clone().unwrap_or_default()),
            (
                "scsi_host",
                x.host.map(|h| h.to_string()).unwrap_or_default(),
            ),
        ],
        1.0,
    ));
    if let Some(s) = &c.status {
        out.push(Reading::gauge(
            "sparewatch_hwraid_controller_optimal",
            "Whether the controller's own status is Optimal.",
            vec![("controller", ctrl.clone())],
            (s == "Optimal") as u8 as f64,
        ));
    }
    for vd in &c.vds {
        out.push(Reading::gauge(
            "sparewatch_hwraid_virtual_drive_info",
            "A virtual drive: RAID level and name (its state: sparewatch_hwraid_virtual_drive_state).",
            vec![
                ("controller", ctrl.clone()),
                ("vd", vd.vd.to_string()),
                ("raid_level", vd.raid.clone()),
                ("name", vd.name.clone()),
            ],
            1.0,
        ));
        VD_STATE.push(
            out,
            &[("controller", ctrl.clone()), ("vd", vd.vd.to_string())],
            Some(vd.state.as_str()).filter(|s| !s.is_empty()),
        );
    }
    for p in &c.pds {
        out.push(Reading::gauge(
            "sparewatch_hwraid_physical_drive_info",
            "A physical drive: device id, model, medium (its state: sparewatch_hwraid_physical_drive_state).",
            vec![
                ("controller", ctrl.clone()),
                ("drive", p.eid_slot.clone()),
                ("did", p.did.map(|d| d.to_string()).unwrap_or_default()),
                ("model", p.model.clone()),
                ("medium", p.medium.clone()),
            ],
            1.0,
        ));
        PD_STATE.push(
            out,
            &[("controller", ctrl.clone()), ("drive", p.eid_slot.clone())],
            Some(p.state.as_str()).filter(|s| !s.is_empty()),
        );
    }
    type Get = fn(&DriveDetail) -> Option<f64>;
    let per_drive: [(&'static str, &'static str, Get); 4] = [
        (
            "sparewatch_hwraid_drive_predictive_failures",
            "Predictive failures the controller counted for the drive (its own SMART polling).",
            |d| d.predictive_failures.map(|v| v as f64),
        ),
        (
            "sparewatch_hwraid_drive_smart_alert",
            "Whether the drive flags a SMART alert to the controller.",
            |d| d.smart_alert.map(|v| v as u8 as f64),
        ),
        (
            "sparewatch_hwraid_drive_media_errors",
            "Media errors the controller counted for the drive.",
            |d| d.media_errors.map(|v| v as f64),
        ),
        (
            "sparewatch_hwraid_drive_other_errors",
            "Other errors (link, timeouts) the controller counted for the drive.",
            |d| d.other_errors.map(|v| v as f64),
        ),
    ];
    for (name, help, get) in per_drive {
        for (drive, d) in x.details {
            if let Some(v) = get(d) {
                out.push(Reading::gauge(
                    name,
                    help,
                    vec![("controller", ctrl.clone()), ("drive", drive.clone())],
                    v,
                ));
            }
        }
    }
    for (drive, pct) in x.rebuild {
        out.push(Reading::gauge(
            "sparewatch_hwraid_rebuild_progress_ratio",
            "Rebuild progress of a physical drive (0..1).",
            vec![("controller", ctrl.clone()), ("drive", drive.clone())],
            pct / 100.0,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::storcli::PhysicalDrive;
    use super::*;

    fn drive(dg: u32, arr: u32, row: u32, slot: u32, state: &str) -> TopologyRow {
        TopologyRow {
            dg,
            arr: Some(arr),
            row: Some(row),
            eid_slot: (state != "Msng").then(|| format!("32:{slot}")),
            did: (state != "Msng").then_some(slot),
            kind: "DRIVE".into(),
            state: state.into(),
        }
    }

    fn ctrl(raid: &str, vd_state: &str, drives: Vec<TopologyRow>) -> Controller {
        Controller {
            index: 0,
            vds: vec![VirtualDrive {
                dg: 0,
                vd: 0,
                raid: raid.into(),
                state: vd_state.into(),
                name: String::new(),
            }],
            topology: drives,
            ..Controller::default()
        }
    }

    fn one(c: &Controller) -> GroupReading {
        with_details(c, &BTreeMap::new())
    }

    fn with_details(c: &Controller, details: &BTreeMap<String, DriveDetail>) -> GroupReading {
        let rebuild = BTreeMap::new();
        groups(
            c,
            &Extra {
                host: Some(0),
                rebuild: &rebuild,
                details,
            },
        )
        .remove(0)
    }

    #[test]
    fn predicted_failure_makes_a_drive_at_risk() {
        let c = ctrl(
            "RAID1",
            "Optl",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Onln")],
        );
        let detail = DriveDetail {
            drive: "32:1".into(),
            predictive_failures: Some(3),
            smart_alert: Some(true),
            ..DriveDetail::default()
        };
        let g = with_details(&c, &BTreeMap::from([("32:1".to_string(), detail)]));
        assert_eq!(g.members[0].health, MemberHealth::Healthy);
        assert_eq!(
            g.members[1].health,
            MemberHealth::AtRisk(
                "controller: predictive failure count 3, SMART alert flagged by drive".into()
            )
        );
        assert_eq!(spare(&g), 1, "at risk still counts as healthy");
    }

    fn spare(g: &GroupReading) -> i64 {
        g.members
            .iter()
            .filter(|m| m.role != Role::Spare && m.health.counts_healthy())
            .count() as i64
            - g.required as i64
    }

    #[test]
    fn raid1_two_drives() {
        let g = one(&ctrl(
            "RAID1",
            "Optl",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Onln")],
        ));
        assert_eq!(
            (g.name.as_str(), g.required, spare(&g)),
            ("hwraid:c0/v0", 1, 1)
        );
        assert_eq!(g.members[0].device.as_deref(), Some("megaraid:0:0"));
        assert_eq!(g.stated, Some(StatedRedundancy::FullyRedundant));
        let g = one(&ctrl(
            "RAID1",
            "Dgrd",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Msng")],
        ));
        assert_eq!((g.required, spare(&g)), (1, 0));
        assert_eq!(g.members[1].name, "missing:span0/row1");
        assert_eq!(g.stated, Some(StatedRedundancy::Lost));
    }

    #[test]
    fn raid5_and_raid6_tolerances() {
        let d = |s: [&str; 4]| (0..4).map(|i| drive(0, 0, i, i, s[i as usize])).collect();
        let g = one(&ctrl("RAID5", "Dgrd", d(["Onln", "Onln", "Offln", "Onln"])));
        assert_eq!((g.required, spare(&g)), (3, 0), "RAID5 of 4, one lost");
        let g = one(&ctrl("RAID6", "Pdgd", d(["Onln", "Onln", "Offln", "Onln"])));
        assert_eq!((g.required, spare(&g)), (2, 1), "RAID6 of 4, one lost");
        assert_eq!(g.stated, Some(StatedRedundancy::Degraded));
        let g = one(&ctrl("RAID6", "Dgrd", d(["Onln", "Rbld", "Offln", "Onln"])));
        assert_eq!(
            (g.required, spare(&g)),
            (2, 0),
            "RAID6 of 4, one lost, one rebuilding"
        );
    }

    #[test]
    fn raid10_is_span_aware() {
        let d = |s: [&str; 4]| {
            (0..4)
                .map(|i| drive(0, i / 2, i % 2, i, s[i as usize]))
                .collect()
        };
        let g = one(&ctrl("RAID10", "Optl", d(["Onln"; 4])));
        assert_eq!(spare(&g), 2, "by count: one failure per span");
        let g = one(&ctrl(
            "RAID10",
            "Dgrd",
            d(["Onln", "Offln", "Onln", "Onln"]),
        ));
        assert_eq!(
            (spare(&g), g.stated),
            (1, Some(StatedRedundancy::Lost)),
            "one mirror half lost: the count says degraded, the controller's Dgrd no_redundancy"
        );
        let g = one(&ctrl(
            "RAID10",
            "Dgrd",
            d(["Onln", "Offln", "Offln", "Onln"]),
        ));
        assert_eq!(spare(&g), 0, "one lost in each span: still working");
        let g = one(&ctrl(
            "RAID10",
            "OfLn",
            d(["Offln", "Offln", "Onln", "Onln"]),
        ));
        assert_eq!(
            (spare(&g), g.stated),
            (0, Some(StatedRedundancy::Insufficient)),
            "a whole mirror lost: the controller's OfLn makes it failed"
        );
    }

    #[test]
    fn raid0_is_single_by_design_without_stated_redundancy() {
        let g = one(&ctrl(
            "RAID0",
            "Optl",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Onln")],
        ));
        assert_eq!((g.required, g.by_design, spare(&g)), (2, true, 0));
        assert_eq!(g.stated, None);
    }

    #[test]
    fn spares_are_spare_members() {
        let mut c = ctrl(
            "RAID1",
            "Optl",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Onln")],
        );
        c.pds = vec![
            PhysicalDrive {
                eid_slot: "32:4".into(),
                did: Some(4),
                state: "GHS".into(),
                ..PhysicalDrive::default()
            },
            PhysicalDrive {
                eid_slot: "32:5".into(),
                did: Some(5),
                state: "DHS".into(),
                dg: Some(1),
                ..PhysicalDrive::default()
            },
        ];
        let g = one(&c);
        let spares: Vec<&str> = g
            .members
            .iter()
            .filter(|m| m.role == Role::Spare)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            spares,
            vec!["32:4"],
            "DHS of another drive group is not ours"
        );
    }

    #[test]
    fn required_comes_from_level_and_layout_not_health() {
        let d = |s: [&str; 4]| {
            (0..4)
                .map(|i| drive(0, i / 2, i % 2, i, s[i as usize]))
                .collect::<Vec<_>>()
        };
        let optimal = one(&ctrl("RAID10", "Optl", d(["Onln"; 4])));
        assert_eq!(optimal.required, 2, "RAID10 of 2×2: one failure per span");
        let lost = one(&ctrl(
            "RAID10",
            "Dgrd",
            d(["Onln", "Offln", "Onln", "Onln"]),
        ));
        assert_eq!(
            lost.required, 2,
            "required does not move when a drive fails"
        );
        // The count alone says degraded; the controller's Dgrd makes it no_redundancy.
        assert_eq!(
            (spare(&lost), lost.stated),
            (1, Some(StatedRedundancy::Lost))
        );
        let flat = |s: [&str; 4]| (0..4).map(|i| drive(0, 0, i, i, s[i as usize])).collect();
        for states in [["Onln"; 4], ["Onln", "Offln", "Rbld", "Msng"]] {
            assert_eq!(one(&ctrl("RAID5", "Optl", flat(states))).required, 3);
            assert_eq!(one(&ctrl("RAID6", "Optl", flat(states))).required, 2);
        }
        // RAID50 of two spans of three: one failure per span.
        let r50: Vec<_> = (0..6).map(|i| drive(0, i / 3, i % 3, i, "Onln")).collect();
        assert_eq!(one(&ctrl("RAID50", "Optl", r50)).required, 4);
    }

    #[test]
    fn raid1e_survives_one_failure_only() {
        assert_eq!(span_tolerance("RAID1E", 3), 1);
        assert_eq!(span_tolerance("RAID1E", 5), 1);
        let d = |s: [&str; 3]| (0..3).map(|i| drive(0, 0, i, i, s[i as usize])).collect();
        let g = one(&ctrl("RAID1E", "Optl", d(["Onln"; 3])));
        assert_eq!((g.required, spare(&g)), (2, 1));
        let g = one(&ctrl("RAID1E", "Dgrd", d(["Onln", "Offln", "Onln"])));
        assert_eq!(spare(&g), 0, "a second failure may hit the other copy");
    }

    #[test]
    fn unconfigured_good_drives_are_not_spares() {
        let mut c = ctrl(
            "RAID1",
            "Optl",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Onln")],
        );
        c.pds = vec![
            PhysicalDrive {
                eid_slot: "32:6".into(),
                did: Some(6),
                state: "UGood".into(),
                ..PhysicalDrive::default()
            },
            PhysicalDrive {
                eid_slot: "32:7".into(),
                did: Some(7),
                state: "DHS".into(),
                dg: Some(0),
                ..PhysicalDrive::default()
            },
        ];
        let g = one(&c);
        let spares: Vec<&str> = g
            .members
            .iter()
            .filter(|m| m.role == Role::Spare)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(spares, vec!["32:7"], "only our DHS; UGood is no hot spare");
    }

    #[test]
    fn states_are_one_hot_not_info_labels() {
        let mut c = ctrl(
            "RAID1",
            "Dgrd",
            vec![drive(0, 0, 0, 0, "Onln"), drive(0, 0, 1, 1, "Rbld")],
        );
        c.pds = vec![PhysicalDrive {
            eid_slot: "32:1".into(),
            did: Some(1),
            state: "Rbld".into(),
            ..PhysicalDrive::default()
        }];
        let (rebuild, details) = (BTreeMap::new(), BTreeMap::new());
        let x = Extra {
            host: Some(0),
            rebuild: &rebuild,
            details: &details,
        };
        let mut out = Vec::new();
        readings(&c, &x, &mut out);
        for r in out.iter().filter(|r| r.name.ends_with("_info")) {
            assert!(
                r.labels.iter().all(|(k, _)| *k != "state"),
                "{} carries state",
                r.name
            );
        }
        let set = |name: &str| -> Vec<String> {
            out.iter()
                .filter(|r| r.name == name && r.value == 1.0)
                .flat_map(|r| r.labels.iter().filter(|(k, _)| *k == "state"))
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(set("sparewatch_hwraid_virtual_drive_state"), vec!["Dgrd"]);
        assert_eq!(set("sparewatch_hwraid_physical_drive_state"), vec!["Rbld"]);
        let vd_series = out
            .iter()
            .filter(|r| r.name == "sparewatch_hwraid_virtual_drive_state")
            .count();
        assert_eq!(vd_series, VD_STATE.known.len());
    }

    #[test]
    fn rebuild_progress_in_reason() {
        assert_eq!(
            drive_health("Rbld", Some(37.4)),
            MemberHealth::Unhealthy("rebuilding (37%)".into())
        );
    }
}
