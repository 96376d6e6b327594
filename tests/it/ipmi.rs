//! The ipmi collector against a real BMC simulator (OpenIPMI `ipmi_sim`) over RMCP+.
//!
//! Each test starts its own simulator on free loopback ports from the set-up in
//! `tests/lab/ipmi_sim/` (SDRs compiled with `sdrcomp` at test time), injects faults on the
//! simulator's console, and checks member health and, through the engine, group state.
//! Every simulator is killed when its guard drops, also when a test panics.
//! Needs the Debian packages `openipmi`, `ipmitool`, `freeipmi-tools`
//! (scripts/deps/apt-ipmi.txt): a missing one fails the test, naming the package.

pub mod sim;

use std::time::{Duration, Instant, SystemTime};

use sim::{Sim, PASSWORD, USER};
use sparewatch::engine::{CollectorInfo, Engine, EngineConfig};
use sparewatch::snapshot::{GroupView, Snapshot};
use sparewatch_collectors::ipmi::groups::unit_family;
use sparewatch_collectors::ipmi::{Bmc, IpmiCollector};
use sparewatch_collectors::{
    Collection, Collector, GroupReading, GroupState, MemberHealth, StatedRedundancy,
};

fn group<'a>(c: &'a Collection, name: &str) -> &'a GroupReading {
    c.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name} in {:#?}", c.groups))
}

fn health<'a>(c: &'a Collection, group_name: &str, member: &str) -> &'a MemberHealth {
    &group(c, group_name)
        .members
        .iter()
        .find(|m| m.name == member)
        .unwrap_or_else(|| panic!("no member {member} in {group_name}"))
        .health
}

fn reading(c: &Collection, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    c.readings
        .iter()
        .find(|r| {
            r.name == name
                && labels
                    .iter()
                    .all(|(k, v)| r.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
        })
        .map(|r| r.value)
}

/// The engine around one collector, with a controllable clock.
struct Rig {
    engine: Engine,
    now: SystemTime,
}

const HOLD_DOWN: Duration = Duration::from_secs(5);

impl Rig {
    fn new() -> Rig {
        Rig {
            engine: Engine::new(
                EngineConfig {
                    hold_down: HOLD_DOWN,
                    ..EngineConfig::default()
                },
                vec![CollectorInfo {
                    name: "ipmi",
                    interval: Duration::from_secs(15),
                    timeout: Duration::from_secs(10),
                }],
                None,
            ),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    /// One collection at the rig's clock, then evaluation; the clock moves by `advance`.
    fn cycle(&mut self, c: &mut IpmiCollector, advance: Duration) -> Snapshot {
        self.now += advance;
        let result = c.collect().map_err(|e| e.to_string());
        self.engine
            .finished("ipmi", result, Duration::from_millis(10), self.now);
        sparewatch::app::evaluate_and_render(&mut self.engine, self.now, None, false)
    }

    fn evaluate(&mut self, advance: Duration) -> Snapshot {
        self.now += advance;
        sparewatch::app::evaluate_and_render(&mut self.engine, self.now, None, false)
    }
}

fn gview<'a>(s: &'a Snapshot, name: &str) -> &'a GroupView {
    s.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name}"))
}

/// Value of one series of the Prometheus text, matched by name and a subset of labels.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            (series == name || series.starts_with(&format!("{name}{{")))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// `sparewatch status` with only the ipmi collector, an empty root (no /dev/ipmi0) and
/// these extra arguments.
fn status(rootfs: &std::path::Path, extra: &[&str]) -> Snapshot {
    sparewatch::collect_with_args(ipmi_only(rootfs, extra), SystemTime::now()).expect("collects")
}

/// `sparewatch status` arguments: only the ipmi collector, this root, these extra flags.
fn ipmi_only(rootfs: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "sparewatch",
        "status",
        "--collector.disable-defaults",
        "--collector.ipmi",
        "--path.rootfs",
        rootfs.to_str().expect("utf-8"),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn text(s: &Snapshot) -> String {
    String::from_utf8_lossy(&s.metrics_text).into_owned()
}

#[test]
fn healthy_bmc_gives_redundant_groups_and_readings_in_base_units() {
    let sim = Sim::start();
    let mut c = sim.collector();
    let col = c.collect().expect("collects");
    assert!(col.present);
    let psu = group(&col, "psu:chassis");
    assert_eq!(psu.kind, "psu");
    assert_eq!(psu.required, 1);
    assert_eq!(psu.stated, Some(StatedRedundancy::FullyRedundant));
    assert_eq!(psu.members.len(), 2);
    assert!(psu
        .members
        .iter()
        .all(|m| m.health == MemberHealth::Healthy));
    let fans = group(&col, "fan:chassis");
    assert_eq!((fans.members.len(), fans.required), (3, 2));
    assert!(fans
        .members
        .iter()
        .all(|m| m.health == MemberHealth::Healthy));
    // One metric per unit family, the base unit in its name, no unit label.
    let v = |metric: &str, sensor: &str| {
        let found: Vec<_> = col
            .readings
            .iter()
            .filter(|r| r.labels.iter().any(|(k, v)| *k == "sensor" && v == sensor))
            .filter(|r| r.labels.iter().all(|(k, _)| *k != "threshold"))
            .filter(|r| !r.name.ends_with("_available") && !r.name.ends_with("_state"))
            .collect();
        assert_eq!(found.len(), 1, "{sensor}: {found:?}");
        assert_eq!(found[0].name, metric, "{sensor}");
        assert!(
            found[0].labels.iter().all(|(k, _)| *k != "unit"),
            "{sensor}"
        );
        found[0].value
    };
    assert_eq!(v("sparewatch_ipmi_fan_speed_rpm", "FAN1"), 6000.0);
    assert_eq!(v("sparewatch_ipmi_power_watts", "PSU2 Input Power"), 180.0);
    assert_eq!(v("sparewatch_ipmi_voltage_volts", "PSU1 12V"), 12.0);
    assert_eq!(v("sparewatch_ipmi_temperature_celsius", "CPU1 Temp"), 45.0);
    assert_eq!(
        reading(
            &col,
            "sparewatch_ipmi_fan_speed_threshold_rpm",
            &[("sensor", "FAN2"), ("threshold", "lower_critical")]
        ),
        Some(1000.0)
    );
    assert_eq!(
        reading(
            &col,
            "sparewatch_ipmi_voltage_threshold_volts",
            &[("sensor", "PSU1 12V"), ("threshold", "upper_critical")]
        ),
        Some(14.04)
    );
    assert_eq!(
        reading(
            &col,
            "sparewatch_ipmi_sensor_state",
            &[("sensor", "PS Redundancy"), ("state", "fully_redundant")]
        ),
        Some(1.0)
    );
    assert_eq!(
        reading(&col, "sparewatch_ipmi_bmc_up", &[("bmc", "sim")]),
        Some(1.0)
    );

    let mut rig = Rig::new();
    let snap = rig.cycle(&mut c, Duration::ZERO);
    assert_eq!(gview(&snap, "psu:chassis").state, "redundant");
    assert_eq!(gview(&snap, "fan:chassis").state, "redundant");
}

/// The "done means": PSU2's failure bit → psu no_redundancy; cleared → redundant
/// once the hold-down has passed.
#[test]
fn psu_failure_is_no_redundancy_and_recovers_after_hold_down() {
    let sim = Sim::start();
    let mut c = sim.collector();
    let mut rig = Rig::new();
    assert_eq!(
        gview(&rig.cycle(&mut c, Duration::ZERO), "psu:chassis").state,
        "redundant"
    );

    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 1 1"]);
    let snap = rig.cycle(&mut c, Duration::from_secs(15));
    let t = text(&snap);
    assert_eq!(
        metric(
            &t,
            "sparewatch_group_state",
            &[("kind", "psu"), ("state", "no_redundancy")]
        ),
        Some(1.0),
        "{t}"
    );
    let g = gview(&snap, "psu:chassis");
    let psu2 = g.members.iter().find(|m| m.name == "PSU2").expect("PSU2");
    assert!(!psu2.healthy);
    assert_eq!(psu2.reason.as_deref(), Some("failure detected"));

    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 0 1"]);
    let snap = rig.cycle(&mut c, Duration::from_secs(1));
    assert_eq!(
        gview(&snap, "psu:chassis").state,
        "no_redundancy",
        "recovery must wait for the hold-down"
    );
    let snap = rig.evaluate(HOLD_DOWN);
    let t = text(&snap);
    assert_eq!(
        metric(
            &t,
            "sparewatch_group_state",
            &[("kind", "psu"), ("state", "redundant")]
        ),
        Some(1.0),
        "{t}"
    );
}

/// The same through the command line, as `sparewatch status` runs it.
#[test]
fn flags_select_the_bmc_and_psu_failure_shows_in_metrics() {
    let sim = Sim::start();
    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 1 1"]);
    let empty = tempfile::tempdir().expect("tmp");
    let flags = sim.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--ipmi.cipher-suite", "3"]);
    let snap = status(empty.path(), &args);
    let t = text(&snap);
    assert_eq!(
        metric(
            &t,
            "sparewatch_group_state",
            &[("group", "psu:chassis"), ("state", "no_redundancy")]
        ),
        Some(1.0),
        "{t}"
    );
    assert!(
        !t.contains(PASSWORD),
        "the password leaked into the metrics"
    );
}

#[test]
fn ac_lost_marks_that_psu_unhealthy() {
    let sim = Sim::start();
    let mut c = sim.collector();
    sim.cmd(&["sensor_set_bit 0x20 0 0x11 3 1 1"]);
    let col = c.collect().expect("collects");
    assert_eq!(
        health(&col, "psu:chassis", "PSU1"),
        &MemberHealth::Unhealthy("AC lost".into())
    );
    assert_eq!(health(&col, "psu:chassis", "PSU2"), &MemberHealth::Healthy);
    let mut rig = Rig::new();
    assert_eq!(
        gview(&rig.cycle(&mut c, Duration::ZERO), "psu:chassis").state,
        "no_redundancy"
    );
}

#[test]
fn removed_psu_is_not_present() {
    let sim = Sim::start();
    let mut c = sim.collector();
    sim.cmd(&["sensor_set_bit 0x20 0 0x12 0 0 1"]);
    let col = c.collect().expect("collects");
    assert_eq!(
        health(&col, "psu:chassis", "PSU2"),
        &MemberHealth::Unhealthy("not present".into())
    );
    let mut rig = Rig::new();
    let snap = rig.cycle(&mut c, Duration::ZERO);
    let g = gview(&snap, "psu:chassis");
    assert_eq!((g.state.as_str(), g.spare), ("no_redundancy", 0));
}

#[test]
fn stated_redundancy_lost_wins_while_both_psus_look_fine() {
    let sim = Sim::start();
    let mut c = sim.collector();
    sim.cmd(&["sensor_set_bit_clr_rest 0x20 0 0x20 1 1 1"]);
    let col = c.collect().expect("collects");
    let psu = group(&col, "psu:chassis");
    assert!(psu
        .members
        .iter()
        .all(|m| m.health == MemberHealth::Healthy));
    assert_eq!(psu.stated, Some(StatedRedundancy::Lost));
    let mut rig = Rig::new();
    let snap = rig.cycle(&mut c, Duration::ZERO);
    let g = gview(&snap, "psu:chassis");
    assert_eq!(g.state, "no_redundancy");
    assert_eq!(g.stated_state, Some(GroupState::NoRedundancy));
    assert!(g.evidence_disagreement);
}

#[test]
fn predictive_failure_is_at_risk_and_inactive_psu_is_a_healthy_standby() {
    let sim = Sim::start();
    let mut c = sim.collector();
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x11 2 1 1",
        "sensor_set_bit 0x20 0 0x12 7 1 1",
    ]);
    let col = c.collect().expect("collects");
    assert!(matches!(
        health(&col, "psu:chassis", "PSU1"),
        MemberHealth::AtRisk(r) if r == "predictive failure"
    ));
    let psu2 = group(&col, "psu:chassis")
        .members
        .iter()
        .find(|m| m.name == "PSU2")
        .expect("PSU2");
    assert_eq!(psu2.health, MemberHealth::Healthy);
    assert_eq!(psu2.role, sparewatch_collectors::Role::Standby);
    let mut rig = Rig::new();
    assert_eq!(
        gview(&rig.cycle(&mut c, Duration::ZERO), "psu:chassis").state,
        "degraded"
    );
}

#[test]
fn fan_below_lower_critical_and_recovered() {
    let sim = Sim::start();
    let mut c = sim.collector();
    let mut rig = Rig::new();
    assert_eq!(
        gview(&rig.cycle(&mut c, Duration::ZERO), "fan:chassis").state,
        "redundant"
    );
    sim.cmd(&["sensor_set_value 0x20 0 0x32 8 1"]);
    let col = c.collect().expect("collects");
    assert_eq!(
        health(&col, "fan:chassis", "FAN2"),
        &MemberHealth::Unhealthy("below lower critical".into())
    );
    assert_eq!(
        reading(&col, "sparewatch_ipmi_fan_speed_rpm", &[("sensor", "FAN2")]),
        Some(800.0)
    );
    let snap = rig.cycle(&mut c, Duration::from_secs(15));
    let g = gview(&snap, "fan:chassis");
    assert_eq!((g.state.as_str(), g.members_healthy), ("no_redundancy", 2));

    sim.cmd(&["sensor_set_value 0x20 0 0x32 61 1"]);
    let col = c.collect().expect("collects");
    assert_eq!(health(&col, "fan:chassis", "FAN2"), &MemberHealth::Healthy);
    rig.cycle(&mut c, Duration::from_secs(1));
    let snap = rig.evaluate(HOLD_DOWN);
    assert_eq!(gview(&snap, "fan:chassis").state, "redundant");
}

/// ipmitool's reading text for every sensor: name → (status, reading).
fn ipmitool_elist(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            (f.len() == 5).then(|| (f[0].to_string(), f[2].to_string(), f[4].to_string()))
        })
        .collect()
}

#[test]
fn every_sensor_agrees_with_ipmitool_and_freeipmi() {
    let sim = Sim::start();
    // A state with something in every kind of sensor.
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x12 1 1 1",
        "sensor_set_bit 0x20 0 0x11 2 1 1",
        "sensor_set_bit_clr_rest 0x20 0 0x20 1 1 1",
        "sensor_set_value 0x20 0 0x32 8 1",
        "sensor_set_value 0x20 0 0x33 15 1",
        "sensor_set_value 0x20 0 0x40 190 0",
    ]);
    let mut c = sim.collector();
    let col = c.collect().expect("collects");
    let records = c.bmcs()[0].records().to_vec();
    assert_eq!(records.len(), 10);

    // ipmitool: values of threshold sensors, event texts of discrete ones.
    let elist = ipmitool_elist(&sim.ipmitool(&["sdr", "elist"]));
    assert_eq!(elist.len(), records.len(), "{elist:?}");
    // FreeIPMI: value and the raw event bitmask of every sensor.
    let fi = sim.ipmi_sensors(&["--output-event-bitmask", "--output-sensor-state"]);
    let fi: Vec<Vec<String>> = fi
        .lines()
        .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
        .collect();
    assert_eq!(fi.len(), records.len(), "{fi:?}");

    let mut checked = 0;
    for r in &records {
        let (_, status, text) = elist
            .iter()
            .find(|(n, _, _)| *n == r.name)
            .unwrap_or_else(|| panic!("ipmitool lacks {}", r.name));
        let row = fi
            .iter()
            .find(|row| row.get(1) == Some(&r.name))
            .unwrap_or_else(|| panic!("ipmi-sensors lacks {}", r.name));
        // id,name,type,state,reading,units,event-bitmask
        let fi_bitmask = u16::from_str_radix(row[6].trim_end_matches('h'), 16)
            .unwrap_or_else(|_| panic!("bitmask {:?}", row[6]));
        let states = |prefix: &str| -> Vec<String> {
            col.readings
                .iter()
                .filter(|x| {
                    x.name == "sparewatch_ipmi_sensor_state"
                        && x.labels.iter().any(|(k, v)| *k == "sensor" && v == &r.name)
                        && x.value == 1.0
                })
                .flat_map(|x| x.labels.iter().filter(|(k, _)| *k == "state"))
                .map(|(_, v)| v.clone())
                .filter(|v| v.starts_with(prefix))
                .collect()
        };
        if r.is_threshold() {
            // The simulator's units (rpm, watts, volts, °C) are their families' base units,
            // so the values compare 1:1 with the tools'.
            let family = unit_family(r.unit());
            assert!(family.unit_label.is_none(), "{}: {}", r.name, r.unit());
            let ours = reading(&col, family.value, &[("sensor", &r.name)]).expect("value");
            let tool: f64 = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("ipmitool reading {text:?}"));
            assert!(
                (ours - tool).abs() < 1e-6,
                "{}: {ours} vs ipmitool {tool}",
                r.name
            );
            let fi_value: f64 = row[4].parse().expect("freeipmi value");
            assert!(
                (ours - fi_value).abs() < 1e-6,
                "{}: {ours} vs freeipmi {fi_value}",
                r.name
            );
            // Threshold state: ipmitool's status column, FreeIPMI's bitmask.
            let asserted = states("at_or_");
            let expect_status = if asserted.iter().any(|s| s.contains("non_recoverable")) {
                "lnr"
            } else if asserted.iter().any(|s| s.ends_with("lower_critical")) {
                "lcr"
            } else if asserted.iter().any(|s| s.ends_with("lower_non_critical")) {
                "lnc"
            } else {
                "ok"
            };
            assert_eq!(status, expect_status, "{}", r.name);
            let ours_mask = (0..6u16)
                .filter(|o| {
                    asserted.iter().any(|s| {
                        *s == sparewatch_collectors::ipmi::decode::state_name(
                            r.sensor_type,
                            r.reading_type,
                            *o as u8,
                        )
                    })
                })
                .fold(0u16, |m, o| m | (1 << o));
            assert_eq!(
                ours_mask, fi_bitmask,
                "{} threshold bits vs freeipmi",
                r.name
            );
        } else {
            let asserted = states("");
            let ours_mask = (0..15u8)
                .filter(|o| {
                    asserted.contains(&sparewatch_collectors::ipmi::decode::state_name(
                        r.sensor_type,
                        r.reading_type,
                        *o,
                    ))
                })
                .fold(0u16, |m, o| m | (1 << o));
            assert_eq!(ours_mask, fi_bitmask, "{} state bits vs freeipmi", r.name);
            // ipmitool prints the asserted states as text, in offset order.
            for s in &asserted {
                let words = s.replace('_', " ");
                let first = words.split(' ').next().unwrap_or_default();
                assert!(
                    text.to_lowercase().contains(first),
                    "{}: state {s} not in ipmitool's {text:?}",
                    r.name
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 10);
    // And what it means: PSU2 failed, PSU1 at risk, redundancy lost, FAN2 critical, FAN3
    // below non-critical.
    assert_eq!(
        health(&col, "psu:chassis", "PSU2"),
        &MemberHealth::Unhealthy("failure detected".into())
    );
    assert!(matches!(
        health(&col, "fan:chassis", "FAN3"),
        MemberHealth::AtRisk(_)
    ));
}

/// The emulator line adding the SDR of a fan `FAN<n>` (sensor 0x30 + n, entity 29.n), made
/// from FAN3's compiled record.
fn fan_sdr_line(sim: &Sim, n: u8) -> String {
    assert!((1..=9).contains(&n));
    let emu = std::fs::read_to_string(sim.dir.path().join("bmc.emu")).expect("emu");
    let fan3 = emu
        .lines()
        .find(|l| l.starts_with("main_sdr_add") && l.contains("0x46 0x41 0x4e 0x33"))
        .expect("FAN3's SDR line");
    let line = fan3
        .replace(
            " 0x20 0x00 0x33 0x1d 0x03 ",
            &format!(" 0x20 0x00 {:#04x} 0x1d {n:#04x} ", 0x30 + n),
        )
        .replace(
            "0x46 0x41 0x4e 0x33",
            &format!("0x46 0x41 0x4e {:#04x}", b'0' + n),
        );
    assert!(n == 3 || line != fan3, "FAN3's record has changed shape");
    line
}

#[test]
fn sdrs_are_read_once_and_again_only_when_the_repository_changes() {
    let sim = Sim::start();
    let mut c = sim.collector();
    for _ in 0..3 {
        c.collect().expect("collects");
    }
    assert_eq!(c.bmcs()[0].sdr_reads(), 1, "the SDR cache was not used");
    // A fourth fan appears: a new SDR (and its sensor) on the running BMC.
    let fan4 = fan_sdr_line(&sim, 4);
    sim.cmd(&[
        "sensor_add 0x20 0 0x34 0x04 0x01",
        "sensor_set_threshold 0x20 0 0x34 readable 000111 0 0 0 5 10 20",
        "sensor_set_event_support 0x20 0 0x34 enable scanning per-state 000000000010101 000000000010101 000000000010101 000000000010101",
        "sensor_set_value 0x20 0 0x34 59 0",
        &fan4,
    ]);
    let col = c.collect().expect("collects");
    assert_eq!(c.bmcs()[0].sdr_reads(), 2);
    let fans = group(&col, "fan:chassis");
    assert_eq!((fans.members.len(), fans.required), (4, 3));
    assert_eq!(health(&col, "fan:chassis", "FAN4"), &MemberHealth::Healthy);
}

/// A record whose sensor the BMC says is not there (ipmi_sim: 0xCC): its member is unknown, and the
/// repository is reread once in case it is stale, not on every cycle.
#[test]
fn a_sensor_not_present_is_unknown_and_forces_one_reread_only() {
    let sim = Sim::start();
    let mut c = sim.collector();
    c.collect().expect("collects");
    // FAN5, sensor 0x35: in the repository, but no such sensor on the BMC.
    let fan5 = fan_sdr_line(&sim, 5);
    sim.cmd(&[&fan5]);
    let col = c.collect().expect("collects");
    assert_eq!(c.bmcs()[0].sdr_reads(), 2, "the new record was not read");
    assert!(
        matches!(health(&col, "fan:chassis", "FAN5"), MemberHealth::Unknown(r) if r.contains("0xcc")),
        "{:?}",
        health(&col, "fan:chassis", "FAN5")
    );
    c.collect().expect("collects");
    assert_eq!(c.bmcs()[0].sdr_reads(), 3, "no reread after 'not present'");
    for _ in 0..3 {
        c.collect().expect("collects");
    }
    assert_eq!(c.bmcs()[0].sdr_reads(), 3, "reread on every cycle");
}

#[test]
fn hung_bmc_fails_fast_makes_groups_unknown_and_recovers() {
    let sim = Sim::start();
    let timeout = Duration::from_millis(300);
    let mut c = IpmiCollector::new(vec![sim.bmc(timeout, 1)]);
    let mut rig = Rig::new();
    rig.cycle(&mut c, Duration::ZERO);
    sim.freeze();
    let start = Instant::now();
    let err = c.collect().expect_err("a frozen BMC cannot answer");
    let took = start.elapsed();
    // One request plus one retry whose login gets no answer: bounded by the timeouts.
    assert!(took < timeout * 6, "took {took:?}");
    assert!(err.to_string().contains("sim"), "{err}");
    let snap = rig.cycle(&mut c, Duration::from_secs(15));
    assert_eq!(gview(&snap, "psu:chassis").state, "unknown");
    assert_eq!(gview(&snap, "fan:chassis").state, "unknown");
    sim.thaw();
    let col = c.collect().expect("answers again");
    assert_eq!(group(&col, "psu:chassis").members.len(), 2);
}

/// A session given up after a timeout is still open on a BMC that was only slow: the next
/// session closes it, so the BMC's few session slots do not fill up.
#[test]
fn a_session_given_up_is_closed_from_the_next_one() {
    let sim = Sim::start();
    let mut c = IpmiCollector::new(vec![sim.bmc(Duration::from_millis(300), 1)]);
    c.collect().expect("collects");
    sim.freeze();
    c.collect().expect_err("frozen");
    sim.thaw();
    c.collect().expect("collects again");
    assert_eq!(c.bmcs()[0].stats().stale_closed, 1);
    // Get Session Info from ipmitool's own session: active sessions = ours + ipmitool's.
    let out = sim.ipmitool(&["raw", "0x06", "0x3d", "0x00"]);
    let bytes: Vec<u8> = out
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    assert_eq!(bytes[2] & 0x3f, 2, "active sessions: {out}");
}

#[test]
fn bmc_restart_re_establishes_the_session() {
    let mut sim = Sim::start();
    let mut c = IpmiCollector::new(vec![sim.bmc(Duration::from_millis(500), 1)]);
    c.collect().expect("collects");
    assert_eq!(c.bmcs()[0].stats().logins, 1);
    sim.restart();
    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 1 1"]);
    // The old session is gone on the new BMC: the request is retried on a new session in
    // the same cycle.
    let col = match c.collect() {
        Ok(c) => c,
        Err(e) => {
            let alive = std::process::Command::new("ps")
                .args(["-o", "pid,stat", "-p", &sim.pid().to_string()])
                .output()
                .expect("ps");
            panic!(
                "{e}: exit {:?} stats {:?} ps {} log {}",
                sim.exit_status(),
                c.bmcs()[0].stats(),
                String::from_utf8_lossy(&alive.stdout),
                std::fs::read_to_string(sim.dir.path().join("sim.log")).unwrap_or_default()
            );
        }
    };
    assert_eq!(c.bmcs()[0].stats().logins, 2);
    assert_eq!(
        health(&col, "psu:chassis", "PSU2"),
        &MemberHealth::Unhealthy("failure detected".into())
    );
}

#[test]
fn wrong_password_is_a_clear_error_without_the_password() {
    let sim = Sim::start();
    let wrong = sim.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password").expect("write");
    let mut c = IpmiCollector::new(vec![Bmc::lan(
        "sim",
        "127.0.0.1",
        sim.lan_port,
        USER,
        wrong,
        Duration::from_millis(500),
        0,
    )]);
    let err = c.collect().expect_err("login must fail").to_string();
    assert!(err.contains("login"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

/// Several BMCs from the config file: one frozen leaves its groups unknown while the other
/// keeps reporting, and the collector stays up.
#[test]
fn config_file_bmcs_each_have_their_groups() {
    let a = Sim::start();
    let b = Sim::start();
    b.cmd(&["sensor_set_bit 0x20 0 0x11 1 1 1"]);
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("sparewatch.yml");
    std::fs::write(
        &config,
        format!(
            "collectors:\n  ipmi:\n    request_timeout: 300ms\n    retries: 0\n    bmcs:\n      - {{name: rack-a, host: 127.0.0.1, port: {}, user: admin, password_file: {}}}\n      - {{name: rack-b, host: 127.0.0.1, port: {}, user: admin, password_file: {}}}\n",
            a.lan_port,
            a.password_file().display(),
            b.lan_port,
            b.password_file().display()
        ),
    )
    .expect("config");
    let run = || {
        status(
            dir.path(),
            &["--config.file", config.to_str().expect("utf-8")],
        )
    };
    let snap = run();
    assert_eq!(gview(&snap, "psu:rack-a/chassis").state, "redundant");
    assert_eq!(gview(&snap, "psu:rack-b/chassis").state, "no_redundancy");
    assert_eq!(gview(&snap, "fan:rack-b/chassis").state, "redundant");
    // One BMC not answering: its groups unknown (from the cached records), the other's fine.
    // A fresh agent has no cache: the frozen BMC then has no groups but is reported down.
    a.freeze();
    let snap = run();
    let t = text(&snap);
    assert_eq!(
        metric(&t, "sparewatch_ipmi_bmc_up", &[("bmc", "rack-a")]),
        Some(0.0),
        "{t}"
    );
    assert_eq!(
        metric(&t, "sparewatch_collector_up", &[("collector", "ipmi")]),
        Some(1.0),
        "{t}"
    );
    // No group of rack-a: only bmc_up 0 (alert SparewatchIpmiBmcDown) tells it is blind.
    assert!(
        snap.groups.iter().all(|g| !g.name.contains(":rack-a/")),
        "{:?}",
        snap.groups.iter().map(|g| &g.name).collect::<Vec<_>>()
    );
    assert_eq!(gview(&snap, "psu:rack-b/chassis").state, "no_redundancy");
    a.thaw();
}

/// Several BMCs are read in parallel: a frozen one costs its own timeouts, not the sum, and
/// keeps its groups (from the cached records) with every member unknown while the other
/// BMC's groups stay live; the collector stays up.
#[test]
fn a_frozen_bmc_among_several_leaves_unknown_groups_only() {
    let a = Sim::start();
    let b = Sim::start();
    let timeout = Duration::from_millis(300);
    let mut c = IpmiCollector::new(vec![
        a.named_bmc("a", timeout, 1).with_name_in_groups(),
        b.named_bmc("b", timeout, 1).with_name_in_groups(),
    ]);
    let col = c.collect().expect("collects");
    assert_eq!(col.groups.len(), 4);
    a.freeze();
    b.cmd(&["sensor_set_bit 0x20 0 0x11 3 1 1"]);
    let start = Instant::now();
    let col = c
        .collect()
        .expect("one BMC answering keeps the collector up");
    assert!(start.elapsed() < timeout * 6, "took {:?}", start.elapsed());
    for g in ["psu:a/chassis", "fan:a/chassis"] {
        let g = group(&col, g);
        assert!(g.stated.is_none());
        assert!(g
            .members
            .iter()
            .all(|m| matches!(&m.health, MemberHealth::Unknown(r) if r.contains("not answering"))));
    }
    assert_eq!(
        health(&col, "psu:b/chassis", "PSU1"),
        &MemberHealth::Unhealthy("AC lost".into())
    );
    assert_eq!(
        reading(&col, "sparewatch_ipmi_bmc_up", &[("bmc", "a")]),
        Some(0.0)
    );
    let mut rig = Rig::new();
    let snap = rig.cycle(&mut c, Duration::ZERO);
    assert_eq!(gview(&snap, "psu:a/chassis").state, "unknown");
    assert_eq!(gview(&snap, "psu:b/chassis").state, "no_redundancy");
    a.thaw();
}

/// The set-up a QEMU guest's in-band IPMI uses (tests/lab): the simulator also listens on
/// its "VM" serial port, and still answers over RMCP+.
#[test]
fn simulator_for_a_vm_listens_on_its_serial_port() {
    let sim = Sim::start_for_vm();
    let port = sim.vm_port.expect("vm port");
    // Not by connecting: ipmi_sim would write to the closed connection and die of SIGPIPE.
    let bind = std::net::TcpListener::bind(("127.0.0.1", port));
    assert!(
        matches!(&bind, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "nothing listens on the VM port: {bind:?}"
    );
    let mut c = sim.collector();
    assert_eq!(
        group(&c.collect().expect("collects"), "psu:chassis")
            .members
            .len(),
        2
    );
}

#[test]
fn no_device_and_no_host_is_not_present() {
    let empty = tempfile::tempdir().expect("tmp");
    let snap = status(empty.path(), &[]);
    let t = text(&snap);
    assert_eq!(
        metric(&t, "sparewatch_collector_present", &[("collector", "ipmi")]),
        Some(0.0),
        "{t}"
    );
}

/// The running agent: while the BMC hangs, every scrape is still answered at once (from the
/// last snapshot), and the IPMI groups turn unknown once the collector fails.
#[test]
fn hung_bmc_never_slows_a_scrape() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("sparewatch.yml");
    std::fs::write(
        &config,
        "collectors:\n  ipmi:\n    interval: 500ms\n    timeout: 3s\n    request_timeout: 300ms\n    retries: 1\n",
    )
    .expect("config");
    let mut args: Vec<String> = [
        "sparewatch",
        "run",
        "--collector.disable-defaults",
        "--collector.ipmi",
        "--path.rootfs",
        dir.path().to_str().expect("utf-8"),
        "--config.file",
        config.to_str().expect("utf-8"),
    ]
    .map(String::from)
    .to_vec();
    args.extend(sim.flags());
    let parsed = sparewatch::cli::parse_from(args).expect("flags");
    let roots = sparewatch::app::roots(&parsed);
    let setup = sparewatch::app::setup(&parsed, &roots).expect("setup");
    let agent = sparewatch::app::start(setup, None, false).expect("agent");
    let app = sparewatch::http::app(agent.snapshots.clone(), "/metrics");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let scrape = || {
        rt.block_on(async {
            let start = Instant::now();
            let resp = app
                .clone()
                .oneshot(
                    axum::http::Request::get("/metrics")
                        .body(axum::body::Body::empty())
                        .expect("request"),
                )
                .await
                .expect("response");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (start.elapsed(), String::from_utf8_lossy(&body).into_owned())
        })
    };
    let psu_state = |t: &str, state: &str| {
        metric(
            t,
            "sparewatch_group_state",
            &[("group", "psu:chassis"), ("state", state)],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while psu_state(&scrape().1, "redundant") != Some(1.0) {
        assert!(Instant::now() < deadline, "the agent never saw the BMC");
        std::thread::sleep(Duration::from_millis(50));
    }

    sim.freeze();
    let frozen_at = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut scrapes = 0;
    let text = loop {
        let (took, t) = scrape();
        slowest = slowest.max(took);
        scrapes += 1;
        if psu_state(&t, "unknown") == Some(1.0) {
            break t;
        }
        assert!(
            frozen_at.elapsed() < Duration::from_secs(15),
            "groups never turned unknown"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        metric(&text, "sparewatch_collector_up", &[("collector", "ipmi")]),
        Some(0.0)
    );
    // Scrapes never wait for the BMC: the frozen BMC costs 300 ms per request, a scrape
    // must not come near that.
    assert!(
        slowest < Duration::from_millis(250),
        "slowest of {scrapes} scrapes while the BMC hung: {slowest:?}"
    );
    sim.thaw();
}

/// The whole `/metrics` of one simulator state (PSU2 failed, FAN2 below lower critical,
/// redundancy lost) at the fixed clock, against tests/golden/ipmi-psu2-failed.prom, and
/// `promtool check metrics` clean.
#[test]
fn golden_metrics_of_a_faulted_bmc() {
    let sim = Sim::start();
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x12 1 1 1",
        "sensor_set_bit_clr_rest 0x20 0 0x20 1 1 1",
        "sensor_set_value 0x20 0 0x32 8 1",
    ]);
    let empty = tempfile::tempdir().expect("tmp");
    let mut args = ipmi_only(empty.path(), &[]);
    args.extend(sim.flags());
    let snap = sparewatch::collect_with_args(args, crate::support::fixed_now()).expect("collects");
    crate::support::promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    // The simulator's port changes from run to run.
    let text = crate::support::normalized_metrics(&snap)
        .replace(&format!("127.0.0.1:{}", sim.lan_port), "127.0.0.1:<port>");
    crate::support::assert_golden("ipmi-psu2-failed", &text);
}

/// In-band is the default when the device exists under --path.rootfs; a file there that is
/// no IPMI device is a clear error of this collector (the real /dev/ipmi0 is exercised in
/// the QEMU lab).
#[test]
fn in_band_device_is_used_when_it_exists() {
    let root = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(root.path().join("dev")).expect("dev");
    let dev = root.path().join("dev/ipmi0");
    std::fs::write(&dev, "").expect("fake device");
    let snap = status(root.path(), &[]);
    let c = snap
        .collectors
        .iter()
        .find(|c| c.name == "ipmi")
        .expect("ipmi collector");
    assert!(!c.up);
    let err = c.last_error.clone().unwrap_or_default();
    assert!(
        err.contains("BMC local") && err.contains(&dev.display().to_string()),
        "{err}"
    );
}

/// ipmi_si / ipmi_devintf loading after the agent started: the device is looked for on every
/// cycle, so the collector turns from "not present" to reading it without a restart. A file
/// that is no IPMI device stands in for it here (the host kernel has no IPMI; the real
/// `/dev/ipmi0` is exercised in the QEMU lab): present and broken, a clear error of this
/// collector, never "not present".
#[test]
fn in_band_device_appearing_later_is_picked_up_without_a_restart() {
    let root = tempfile::tempdir().expect("tmp");
    let parsed = sparewatch::cli::parse_from(ipmi_only(root.path(), &[])).expect("flags");
    let roots = sparewatch::app::roots(&parsed);
    let mut setup = sparewatch::app::setup(&parsed, &roots).expect("builds");
    assert_eq!(setup.jobs.len(), 1);
    let c = &mut setup.jobs[0].0.collector;

    let first = c.collect().expect("no device is no error");
    assert!(!first.present, "no /dev/ipmi0 yet: not present");
    // /dev itself a file: the device cannot exist either, still not present.
    let dev_dir = root.path().join("dev");
    std::fs::write(&dev_dir, "").expect("file");
    assert!(!c.collect().expect("not present").present);
    std::fs::remove_file(&dev_dir).expect("rm");

    // The modules load: the device appears.
    std::fs::create_dir_all(&dev_dir).expect("dev");
    let dev = dev_dir.join("ipmi0");
    std::fs::write(&dev, "").expect("device stand-in");
    let err = c
        .collect()
        .expect_err("a device that is no IPMI device is an error, not absence")
        .to_string();
    assert!(
        err.contains("BMC local") && err.contains(&dev.display().to_string()),
        "{err}"
    );
    // Once found it stays this collector's BMC: its going away is a failure too.
    std::fs::remove_file(&dev).expect("rm");
    assert!(
        c.collect().is_err(),
        "a vanished device must not read as absent"
    );
}

/// With the poll interval set to an hour (the lab's in-band scenario) the device would be
/// found only an hour after the modules loaded: once `watch`ed, the collector stats it every
/// SEL poll (1 s) and wakes itself when it appears, and only then.
#[test]
fn in_band_device_appearing_later_wakes_the_collector() {
    let root = tempfile::tempdir().expect("tmp");
    let parsed = sparewatch::cli::parse_from(ipmi_only(root.path(), &[])).expect("flags");
    let roots = sparewatch::app::roots(&parsed);
    let mut setup = sparewatch::app::setup(&parsed, &roots).expect("builds");
    let c = &mut setup.jobs[0].0.collector;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    c.watch(sparewatch_collectors::Wake::new(move || {
        let _ = tx.lock().map(|t| t.send(()));
    }))
    .expect("watch");
    assert!(
        rx.recv_timeout(Duration::from_millis(2500)).is_err(),
        "woken while there is no device"
    );
    let dev_dir = root.path().join("dev");
    std::fs::create_dir_all(&dev_dir).expect("dev");
    std::fs::write(dev_dir.join("ipmi0"), "").expect("device stand-in");
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the device's appearance wakes the collector");
    assert!(
        c.collect().is_err(),
        "the stand-in is attached on the woken pass (and is no IPMI device)"
    );
}

#[test]
fn unsupported_cipher_suite_marks_ipmi_down_with_a_clear_error() {
    let root = tempfile::tempdir().expect("tmp");
    let snap = sparewatch::collect_with_args(
        ipmi_only(
            root.path(),
            &["--ipmi.host", "127.0.0.1", "--ipmi.cipher-suite", "17"],
        ),
        SystemTime::now(),
    )
    .expect("a bad collector setting does not stop the agent");
    let ipmi = snap
        .collectors
        .iter()
        .find(|c| c.name == "ipmi")
        .expect("ipmi listed");
    assert!(!ipmi.up);
    let err = ipmi.last_error.clone().unwrap_or_default();
    assert!(err.contains("cipher suite 17"), "{err}");
}

/// The built agent, killed when dropped (also when a test panics).
struct Agent {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// `sparewatch` with only the ipmi collector on this simulator, its poll interval an
    /// hour: only the SEL can bring a change to `/metrics` in a test's time.
    fn start(sim: &Sim) -> Agent {
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("sparewatch.yml");
        std::fs::write(
            &config,
            "hold_down: 1s\ncollectors:\n  ipmi:\n    interval: 1h\n",
        )
        .expect("config");
        let port = crate::support::free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
            .args(["--collector.disable-defaults", "--collector.ipmi"])
            .arg("--path.rootfs")
            .arg(dir.path())
            .arg("--config.file")
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(["--log.level", "warn"])
            .args(sim.flags())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starts the agent");
        Agent {
            child,
            port,
            _dir: dir,
        }
    }

    fn metrics(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }

    /// Scrapes until `f` holds on the text; the text and when it first held.
    fn wait(&mut self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> (String, Instant) {
        let start = Instant::now();
        loop {
            if let Some(t) = self.metrics() {
                if f(&t) {
                    return (t, Instant::now());
                }
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("the agent exited ({st}) while waiting for {what}");
            }
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn psu_state(t: &str, state: &str) -> bool {
    metric(
        t,
        "sparewatch_group_state",
        &[("group", "psu:chassis"), ("state", state)],
    ) == Some(1.0)
}

fn bmc_counter(t: &str, name: &str) -> f64 {
    metric(t, name, &[("bmc", "127.0.0.1")]).unwrap_or_else(|| panic!("no {name} in\n{t}"))
}

/// The SEL brings a PSU failure to `/metrics` with the poll an hour away, re-reading only
/// the PSU's sensor; a failure and its repair between two SEL polls is still counted.
#[test]
fn sel_brings_a_psu_failure_to_metrics_with_an_hour_between_polls() {
    let sim = Sim::start();
    let mut agent = Agent::start(&sim);
    let (t, _) = agent.wait("redundant at start", Duration::from_secs(20), |t| {
        psu_state(t, "redundant") && metric(t, "sparewatch_ipmi_sel_entries", &[]).is_some()
    });
    let passes = bmc_counter(&t, "sparewatch_ipmi_full_passes_total");
    let rereads = bmc_counter(&t, "sparewatch_ipmi_sel_sensor_rereads_total");

    let t0 = Instant::now();
    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 1 1"]);
    let (t, seen) = agent.wait("PSU2 failure", Duration::from_secs(10), |t| {
        psu_state(t, "no_redundancy")
    });
    println!(
        "SEL over RMCP+: PSU failure -> no_redundancy on /metrics in {:.0} ms (poll interval 1 h)",
        seen.duration_since(t0).as_secs_f64() * 1e3
    );
    assert_eq!(
        bmc_counter(&t, "sparewatch_ipmi_full_passes_total"),
        passes,
        "a full pass ran: the SEL path was not what saw it"
    );
    assert_eq!(
        bmc_counter(&t, "sparewatch_ipmi_sel_sensor_rereads_total"),
        rereads + 1.0,
        "one SEL entry must re-read one sensor"
    );
    assert!(metric(&t, "sparewatch_ipmi_sel_last_event_timestamp_seconds", &[]).is_some());

    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 0 1"]);
    let (t, _) = agent.wait("PSU2 repaired", Duration::from_secs(10), |t| {
        psu_state(t, "redundant")
    });
    let psu2 = |t: &str| {
        metric(
            t,
            "sparewatch_member_transitions_total",
            &[("group", "psu:chassis"), ("member", "PSU2")],
        )
        .expect("PSU2 transitions")
    };
    let before = psu2(&t);
    // Failed and repaired again within a few milliseconds: both entries reach one SEL
    // poll, and the sensor reads healthy by then.
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x12 1 1 1",
        "sensor_set_bit 0x20 0 0x12 1 0 1",
    ]);
    let (t, _) = agent.wait("the short failure counted", Duration::from_secs(10), |t| {
        psu2(t) >= before + 2.0 && psu_state(t, "redundant")
    });
    assert_eq!(
        bmc_counter(&t, "sparewatch_ipmi_full_passes_total"),
        passes,
        "only the SEL path may have run"
    );
}

/// SEL cleared while the agent runs: it follows the new log from its start. SEL full: no
/// new entries can tell, so full passes come every 15 s whatever the interval.
#[test]
fn sel_cleared_and_full_while_running() {
    let sim = Sim::start_with_sel_size(12);
    let mut agent = Agent::start(&sim);
    agent.wait("redundant at start", Duration::from_secs(20), |t| {
        psu_state(t, "redundant")
            && metric(t, "sparewatch_ipmi_sel_entries", &[]).is_some_and(|n| n > 0.0)
    });
    sim.ipmitool(&["sel", "clear"]);
    agent.wait("the clear seen", Duration::from_secs(10), |t| {
        bmc_counter(t, "sparewatch_ipmi_sel_clears_total") >= 1.0
            && bmc_counter(t, "sparewatch_ipmi_sel_entries") == 0.0
    });
    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 1 1"]);
    let (t, _) = agent.wait(
        "PSU2 failure after the clear",
        Duration::from_secs(10),
        |t| psu_state(t, "no_redundancy"),
    );
    assert_eq!(bmc_counter(&t, "sparewatch_ipmi_sel_full"), 0.0);
    sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 0 1"]);
    agent.wait("PSU2 repaired", Duration::from_secs(10), |t| {
        psu_state(t, "redundant")
    });

    // Fill it with OEM records (Add SEL Entry) until the BMC refuses.
    let port = sim.lan_port.to_string();
    for _ in 0..12 {
        let out = std::process::Command::new(sim::need("ipmitool", "ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
            .args([
                "-U", USER, "-P", PASSWORD, "raw", "0x0a", "0x44", "0", "0", "0xe0",
            ])
            .args([
                "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
            ])
            .output()
            .expect("ipmitool");
        if !out.status.success() {
            break;
        }
    }
    agent.wait("the SEL full", Duration::from_secs(10), |t| {
        bmc_counter(t, "sparewatch_ipmi_sel_full") == 1.0
    });
    sim.cmd(&["sensor_set_bit 0x20 0 0x11 1 1 1"]);
    let (t, _) = agent.wait(
        "PSU1 failure with a full SEL",
        SEL_FALLBACK + Duration::from_secs(10),
        |t| psu_state(t, "no_redundancy"),
    );
    assert_eq!(
        metric(&t, "sparewatch_collector_up", &[("collector", "ipmi")]),
        Some(1.0)
    );
    assert_eq!(bmc_counter(&t, "sparewatch_ipmi_sel_up"), 1.0);
}

const SEL_FALLBACK: Duration = sparewatch_collectors::ipmi::SEL_FALLBACK_PASS;

/// In-process, against the engine: the follower's entries make a pass re-read only the
/// sensor named, and a failure gone by the time of the read is shown once, then the truth.
#[test]
fn sel_pass_rereads_one_sensor_and_replays_a_state_that_came_and_went() {
    let sim = Sim::start();
    let mut c = sim.collector().with_sel_poll(Duration::from_millis(100));
    c.watch(sparewatch_collectors::Wake::noop()).expect("watch");
    let mut rig = Rig::new();
    assert_eq!(
        gview(&rig.cycle(&mut c, Duration::ZERO), "psu:chassis").state,
        "redundant"
    );
    // Let the follower take its baseline before anything happens.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text(&rig.cycle(&mut c, Duration::from_millis(10)))
        .contains("sparewatch_ipmi_sel_entries")
    {
        assert!(Instant::now() < deadline, "the SEL follower never polled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = &c.bmcs()[0];
    let (passes, requests) = (b.full_passes(), b.stats().requests);
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x12 1 1 1",
        "sensor_set_bit 0x20 0 0x12 1 0 1",
    ]);
    std::thread::sleep(Duration::from_millis(600));
    let snap = rig.cycle(&mut c, Duration::from_secs(1));
    let b = &c.bmcs()[0];
    assert_eq!(b.full_passes(), passes, "a full pass ran");
    assert_eq!(b.sel_rereads(), 1);
    assert_eq!(
        b.stats().requests,
        requests + 1,
        "one Get Sensor Reading only"
    );
    assert_eq!(gview(&snap, "psu:chassis").state, "no_redundancy");
    // The next pass shows the truth without asking the BMC.
    let snap = rig.cycle(&mut c, Duration::from_millis(100));
    assert_eq!(c.bmcs()[0].stats().requests, requests + 1);
    let g = gview(&snap, "psu:chassis");
    assert!(g
        .members
        .iter()
        .all(|m| m.name != "PSU2" || m.healthy || m.reason.is_some()));
    let snap = rig.evaluate(HOLD_DOWN);
    let t = text(&snap);
    assert_eq!(gview(&snap, "psu:chassis").state, "redundant", "{t}");
    assert_eq!(
        metric(
            &t,
            "sparewatch_member_transitions_total",
            &[("group", "psu:chassis"), ("member", "PSU2")]
        ),
        Some(2.0),
        "{t}"
    );
}

/// Issue 11: the simulator's PSU input-power sensors (200 W + 180 W) against a configured
/// rating. 300 W each: losing one leaves 300 W for 380 W, `no_redundancy` with the reason;
/// the load dropping to 160 W makes it redundant again; no rating, nothing is claimed.
#[test]
fn psu_watts_sensors_and_a_configured_rating_feed_the_capacity_check() {
    use sparewatch_collectors::ipmi::groups::PsuRating;
    let sim = Sim::start();
    let mut c = sim.collector();
    let mut rig = Rig::new();
    let s = rig.cycle(&mut c, Duration::ZERO);
    assert!(
        !text(&s).contains("sparewatch_group_power_capacity_known"),
        "{}",
        text(&s)
    );

    c.psu_rating = PsuRating {
        rated_watts: Some(300.0),
        margin_percent: 0.0,
    };
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    let g = gview(&s, "psu:chassis");
    assert_eq!((g.state.as_str(), g.spare), ("no_redundancy", 1));
    assert_eq!(
        sparewatch::domains::capacity_reason(g).as_deref(),
        Some("load 380 W > 300 W left after losing PSU1")
    );

    sim.cmd(&[
        "sensor_set_value 0x20 0 0x15 20 0",
        "sensor_set_value 0x20 0 0x16 20 0",
    ]);
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    let g = gview(&s, "psu:chassis");
    assert_eq!(g.state.as_str(), "redundant");
    let t = text(&s);
    assert_eq!(
        metric(
            &t,
            "sparewatch_group_power_capacity_sufficient",
            &[("group", "psu:chassis")]
        ),
        Some(1.0),
        "{t}"
    );
}

/// The rating comes from `collectors.ipmi.psu_rated_watts` in the config file.
#[test]
fn psu_rated_watts_from_the_config_file() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, "collectors:\n  ipmi:\n    psu_rated_watts: 300\n").expect("config");
    let mut extra = sim.flags();
    extra.extend(
        ["--ipmi.cipher-suite", "3", "--config.file"]
            .map(String::from)
            .into_iter()
            .chain([cfg.display().to_string()]),
    );
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let s = status(dir.path(), &extra);
    let g = gview(&s, "psu:chassis");
    assert_eq!(g.state.as_str(), "no_redundancy");
    // A rating that is no rating: that collector is refused with the key named.
    std::fs::write(&cfg, "collectors:\n  ipmi:\n    psu_rated_watts: -1\n").expect("config");
    let s = status(dir.path(), &extra);
    let err = s.collectors[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("psu_rated_watts must be above 0"), "{err}");
}

/// Issue 11: both PSUs assert "AC lost" in one cycle: once back (after the hold-down) the
/// group is redundant by count with effective spare 0, the suspected shared feed named.
#[test]
fn both_psus_losing_ac_together_are_a_suspected_shared_feed() {
    let sim = Sim::start();
    let mut c = sim.collector();
    let mut rig = Rig::new();
    rig.cycle(&mut c, Duration::ZERO);
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x11 3 1 1",
        "sensor_set_bit 0x20 0 0x12 3 1 1",
    ]);
    assert_eq!(
        gview(&rig.cycle(&mut c, Duration::from_secs(15)), "psu:chassis").state,
        "failed"
    );
    sim.cmd(&[
        "sensor_set_bit 0x20 0 0x11 3 0 1",
        "sensor_set_bit 0x20 0 0x12 3 0 1",
    ]);
    rig.cycle(&mut c, Duration::from_secs(15));
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    let g = gview(&s, "psu:chassis");
    assert_eq!((g.state.as_str(), g.spare), ("redundant", 1));
    let d = g.domains.as_ref().expect("domains");
    assert_eq!(d.effective_spare, Some(0));
    assert_eq!(
        (d.shared[0].kind.as_str(), d.shared[0].id.as_str()),
        ("feed", "suspected:PSU1+PSU2")
    );
}
