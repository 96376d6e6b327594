//! From sensor records and their readings to redundancy groups and raw readings. Pure: the
//! session layer has already done the I/O.
//!
//! - PSU group `psu:<prefix>chassis`: one member per power-supply entity (entity ID 0x0A,
//!   named `PSU<instance>`), its health from its Power Supply status sensors (type 0x08,
//!   reading type 0x6F), or, without one, from the threshold states of its other sensors.
//!   Required: 1 for up to 2 PSUs, ceil(N/2) above; a single PSU is single by design.
//! - Fan groups `fan:<prefix><zone>`: fans that are entities of their own (entity 0x1D)
//!   form the zone `chassis`, one member per entity instance (`FAN<instance>`); fan sensors
//!   of another entity (a system board, a cooling unit) form the zone
//!   `<entity>.<instance>` with one member per sensor. Required: N − 1 (1 for one fan, single
//!   by design).
//! - Generic redundancy sensors (reading type 0x0B) and Power Unit failures attach to their
//!   group as hardware-stated redundancy: power supply / power unit sensors and entities to
//!   the PSU group, fan sensors and entities to the fan zone of their entity (or the only
//!   fan group).
//!
//! Size: about 600 lines of code (plus tests): every decision from sensor records and readings
//! to PSU and fan groups, their stated redundancy and capacity, in one pure module so that
//! the rules are read (and property-tested) together.

use std::collections::{BTreeMap, HashMap};

use super::decode::{self, SensorReading};
use super::sdr::{
    self, SensorRecord, ENTITY_COOLING_UNIT, ENTITY_FAN, ENTITY_POWER_SUPPLY, ENTITY_POWER_UNIT,
    READING_TYPE_REDUNDANCY, READING_TYPE_SENSOR_SPECIFIC, SENSOR_TYPE_FAN,
    SENSOR_TYPE_POWER_SUPPLY, SENSOR_TYPE_POWER_UNIT,
};
use crate::{GroupReading, MemberHealth, MemberReading, Reading, Role, StatedRedundancy};

/// One sensor and what reading it gave this cycle.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub record: SensorRecord,
    /// `Err`: the reading failed (completion code, not readable over this interface).
    pub reading: Result<SensorReading, String>,
}

/// How one BMC's groups and readings are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Value of the `bmc` label.
    pub bmc: String,
    /// Put in front of the group's own name: `""` for the host's own BMC, `"<name>/"` for
    /// the BMCs of the config file.
    pub group_prefix: String,
}

/// Names for the `type` label.
pub fn sensor_type_name(t: u8) -> String {
    match t {
        0x01 => "temperature".into(),
        0x02 => "voltage".into(),
        0x03 => "current".into(),
        SENSOR_TYPE_FAN => "fan".into(),
        0x05 => "physical_security".into(),
        0x07 => "processor".into(),
        SENSOR_TYPE_POWER_SUPPLY => "power_supply".into(),
        SENSOR_TYPE_POWER_UNIT => "power_unit".into(),
        0x0A => "cooling_device".into(),
        0x0B => "other_units".into(),
        0x0C => "memory".into(),
        0x0D => "drive_slot".into(),
        0x15 => "module_board".into(),
        t => format!("type{t:#04x}"),
    }
}

fn severity(h: &MemberHealth) -> u8 {
    match h {
        MemberHealth::Healthy => 0,
        MemberHealth::AtRisk(_) => 1,
        MemberHealth::Unknown(_) => 2,
        MemberHealth::Unhealthy(_) => 3,
    }
}

fn worst(a: MemberHealth, b: MemberHealth) -> MemberHealth {
    if severity(&b) > severity(&a) {
        b
    } else {
        a
    }
}

fn is_psu_status(r: &SensorRecord) -> bool {
    r.sensor_type == SENSOR_TYPE_POWER_SUPPLY && r.reading_type == READING_TYPE_SENSOR_SPECIFIC
}

fn is_redundancy(r: &SensorRecord) -> bool {
    r.reading_type == READING_TYPE_REDUNDANCY
}

fn is_fan(r: &SensorRecord) -> bool {
    !is_redundancy(r) && (r.sensor_type == SENSOR_TYPE_FAN)
}

fn belongs_to_power(r: &SensorRecord) -> bool {
    matches!(
        r.sensor_type,
        SENSOR_TYPE_POWER_SUPPLY | SENSOR_TYPE_POWER_UNIT
    ) || matches!(r.entity_id, ENTITY_POWER_SUPPLY | ENTITY_POWER_UNIT)
}

fn belongs_to_cooling(r: &SensorRecord) -> bool {
    r.sensor_type == SENSOR_TYPE_FAN || matches!(r.entity_id, ENTITY_FAN | ENTITY_COOLING_UNIT)
}

/// Entity instances 0x60 and above are relative to their controller: the owner makes them
/// unique.
fn instance_label(r: &SensorRecord) -> String {
    if r.entity_instance >= 0x60 {
        format!("{}@{:#04x}", r.entity_instance - 0x60, r.owner_id)
    } else {
        r.entity_instance.to_string()
    }
}

fn fan_zone(r: &SensorRecord) -> String {
    if r.entity_id == ENTITY_FAN {
        "chassis".into()
    } else {
        format!("{}.{}", sdr::entity_name(r.entity_id), instance_label(r))
    }
}

struct MemberAcc {
    name: String,
    health: Option<MemberHealth>,
    /// Health from threshold sensors, used when no status sensor speaks for the member.
    fallback: Option<MemberHealth>,
    role: Role,
}

impl MemberAcc {
    fn new(name: String) -> Self {
        MemberAcc {
            name,
            health: None,
            fallback: None,
            role: Role::Active,
        }
    }
    fn finish(self) -> MemberReading {
        let health = self
            .health
            .or(self.fallback)
            .unwrap_or_else(|| MemberHealth::Unknown("no sensor reports its health".into()));
        MemberReading::new(self.name, self.role, health)
    }
}

fn failed_reading(e: &str) -> MemberHealth {
    MemberHealth::Unknown(format!("sensor reading failed: {e}"))
}

/// The PSU member a sensor belongs to (its key in instance order, and its name), if any.
fn psu_member(r: &SensorRecord) -> Option<((u8, u8), String)> {
    if r.entity_id == ENTITY_POWER_SUPPLY {
        let owner = if r.entity_instance >= 0x60 {
            r.owner_id
        } else {
            0
        };
        Some((
            (r.entity_instance, owner),
            format!("PSU{}", instance_label(r)),
        ))
    } else if is_psu_status(r) {
        // A status sensor on another entity: the sensor is the member.
        Some(((0x80 | (r.number & 0x7f), r.owner_id), r.name.clone()))
    } else {
        None
    }
}

/// The capacity check's inputs for IPMI: `collectors.ipmi.psu_rated_watts` (IPMI has no
/// standard record of a supply's rating, so it is never taken from the BMC) and the margin.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PsuRating {
    pub rated_watts: Option<f64>,
    pub margin_percent: f64,
}

/// Each PSU member's power reading in watts: its first threshold sensor in watts with a
/// valid reading (on most BMCs the supply's input power).
pub fn psu_watts(samples: &[Sample]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples {
        let r = &s.record;
        let Some((_, name)) = psu_member(r) else {
            continue;
        };
        if out.contains_key(&name) || !r.is_threshold() || r.unit() != "watts" {
            continue;
        }
        let watts = s
            .reading
            .as_ref()
            .ok()
            .filter(|x| x.valid())
            .and_then(|x| r.conversion.as_ref()?.convert(x.raw))
            .filter(|w| w.is_finite() && *w >= 0.0);
        if let Some(w) = watts {
            out.insert(name, w);
        }
    }
    out
}

/// The capacity check on the psu group when a rating is configured: load the PSUs' watts
/// sensors ([`psu_watts`]), capacity the configured rating of each. Without a rating
/// nothing is said (no guess from thresholds or sensor ranges).
pub fn psu_capacity(groups: &mut [GroupReading], samples: &[Sample], rating: PsuRating) {
    let Some(rated) = rating.rated_watts else {
        return;
    };
    let watts = psu_watts(samples);
    for g in groups.iter_mut().filter(|g| g.kind == "psu") {
        let supplies: Vec<crate::topology::power::Supply> = g
            .members
            .iter()
            .map(|m| crate::topology::power::Supply {
                name: m.name.clone(),
                healthy: m.health.counts_healthy(),
                load_watts: watts.get(&m.name).copied(),
                capacity_watts: Some(rated),
            })
            .collect();
        g.capacity = crate::topology::power::capacity(&supplies, rating.margin_percent);
    }
}

/// PSU members whose status sensor asserts an input loss (offsets 3 "AC lost", 4 "input
/// lost or out of range", 5 "input out of range"): what [`crate::topology::FeedWatch`]
/// compares between supplies.
pub fn psu_input_lost(samples: &[Sample]) -> std::collections::BTreeSet<String> {
    samples
        .iter()
        .filter(|s| is_psu_status(&s.record))
        .filter(|s| {
            s.reading
                .as_ref()
                .is_ok_and(|r| r.valid() && (3..=5).any(|bit| r.asserted(bit)))
        })
        .filter_map(|s| psu_member(&s.record).map(|(_, name)| name))
        .collect()
}

/// The groups of one BMC.
pub fn build_groups(naming: &Naming, samples: &[Sample]) -> Vec<GroupReading> {
    // PSU members by entity instance, in instance order.
    let mut psus: BTreeMap<(u8, u8), MemberAcc> = BTreeMap::new();
    let mut psu_stated: Option<StatedRedundancy> = None;
    // Fan zones → members (by entity instance or sensor name), in discovery order.
    let mut zones: BTreeMap<String, Vec<(String, MemberAcc)>> = BTreeMap::new();
    let mut fan_stated: Vec<(String, StatedRedundancy)> = Vec::new();

    for s in samples {
        let r = &s.record;
        if is_redundancy(r) {
            let Ok(reading) = &s.reading else { continue };
            let Some(stated) = decode::redundancy(reading) else {
                continue;
            };
            if belongs_to_power(r) {
                psu_stated = decode::worse(psu_stated, Some(stated));
            } else if belongs_to_cooling(r) {
                fan_stated.push((fan_zone(r), stated));
            }
            continue;
        }
        if r.sensor_type == SENSOR_TYPE_POWER_UNIT && r.reading_type == READING_TYPE_SENSOR_SPECIFIC
        {
            if let Ok(reading) = &s.reading {
                psu_stated = decode::worse(psu_stated, decode::power_unit(reading));
            }
            continue;
        }
        if let Some((key, name)) = psu_member(r) {
            let m = psus.entry(key).or_insert_with(|| MemberAcc::new(name));
            if is_psu_status(r) {
                let (h, role) = match &s.reading {
                    Ok(reading) => decode::psu_status(r, reading),
                    Err(e) => (failed_reading(e), Role::Active),
                };
                if role == Role::Standby {
                    m.role = Role::Standby;
                }
                m.health = Some(match m.health.take() {
                    Some(prev) => worst(prev, h),
                    None => h,
                });
            } else if r.is_threshold() {
                if let Ok(reading) = &s.reading {
                    let h = decode::threshold_health(reading);
                    m.fallback = Some(match m.fallback.take() {
                        Some(prev) => worst(prev, h),
                        None => h,
                    });
                }
            }
            continue;
        }
        if is_fan(r) {
            let health = match &s.reading {
                Ok(reading) => decode::fan_health(r, reading),
                Err(e) => Some(failed_reading(e)),
            };
            let Some(health) = health else { continue };
            let zone = fan_zone(r);
            let (key, name) = if r.entity_id == ENTITY_FAN {
                let i = instance_label(r);
                (format!("entity:{i}"), format!("FAN{i}"))
            } else {
                (format!("sensor:{}", r.number), r.name.clone())
            };
            let members = zones.entry(zone).or_default();
            let idx = match members.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    members.push((key, MemberAcc::new(name)));
                    members.len() - 1
                }
            };
            let m = &mut members[idx].1;
            m.health = Some(match m.health.take() {
                Some(prev) => worst(prev, health),
                None => health,
            });
        }
    }

    let mut groups = Vec::new();
    if !psus.is_empty() {
        let members: Vec<MemberReading> = psus.into_values().map(MemberAcc::finish).collect();
        let n = members.len() as u32;
        let mut g = GroupReading::new(
            format!("psu:{}chassis", naming.group_prefix),
            "psu",
            crate::policy::psu_required(n),
        );
        g.by_design = n == 1;
        g.members = members;
        g.stated = psu_stated;
        groups.push(g);
    }
    let single_zone = (zones.len() == 1)
        .then(|| zones.keys().next().cloned())
        .flatten();
    let mut zone_stated: HashMap<String, StatedRedundancy> = HashMap::new();
    for (zone, stated) in fan_stated {
        let target = if zones.contains_key(&zone) {
            Some(zone)
        } else {
            single_zone.clone()
        };
        if let Some(z) = target {
            let prev = zone_stated.get(&z).copied();
            if let Some(w) = decode::worse(prev, Some(stated)) {
                zone_stated.insert(z, w);
            }
        }
    }
    for (zone, members) in zones {
        let members: Vec<MemberReading> = members.into_iter().map(|(_, m)| m.finish()).collect();
        let n = members.len() as u32;
        let mut g = GroupReading::new(
            format!("fan:{}{zone}", naming.group_prefix),
            "fan",
            crate::policy::fan_required(n),
        );
        g.by_design = n == 1;
        g.members = members;
        g.stated = zone_stated.get(&zone).copied();
        groups.push(g);
    }
    groups
}

/// The same groups with every member unknown: what a BMC that stopped answering leaves.
pub fn unknown_groups(naming: &Naming, records: &[SensorRecord], why: &str) -> Vec<GroupReading> {
    let samples: Vec<Sample> = records
        .iter()
        .map(|r| Sample {
            record: r.clone(),
            reading: Err(why.to_string()),
        })
        .collect();
    let mut groups = build_groups(naming, &samples);
    for g in &mut groups {
        g.stated = None;
        for m in &mut g.members {
            m.health = MemberHealth::Unknown(why.to_string());
        }
    }
    groups
}

/// Unique `sensor` label values: a name used twice gets its sensor number appended.
pub fn sensor_labels(samples: &[Sample]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in samples {
        *count.entry(s.record.name.as_str()).or_default() += 1;
    }
    samples
        .iter()
        .map(|s| {
            let r = &s.record;
            let base = if r.name.is_empty() {
                format!("sensor {:#04x}", r.number)
            } else {
                r.name.clone()
            };
            if count.get(r.name.as_str()).copied().unwrap_or(0) > 1 || r.name.is_empty() {
                format!("{base} #{:#04x}/{}", r.number, r.owner_lun)
            } else {
                base
            }
        })
        .collect()
}

/// Where the value and thresholds of a threshold sensor go: one metric per unit family with
/// the base unit in its name (Prometheus convention), so one metric never mixes rpm with
/// watts. Units without a family share a generic metric that keeps a `unit` label.
#[derive(Clone, Copy, Debug)]
pub struct UnitFamily {
    pub value: &'static str,
    pub value_help: &'static str,
    pub threshold: &'static str,
    pub threshold_help: &'static str,
    /// The `unit` label: only for the generic metric of units without a family.
    pub unit_label: Option<&'static str>,
    /// From the sensor's unit to the family's base unit (°F and K to °C).
    pub to_base: fn(f64) -> f64,
}

macro_rules! family {
    ($what:literal, $sensor:literal, $value:literal, $threshold:literal, $unit:literal, $to_base:expr) => {
        UnitFamily {
            value: $value,
            value_help: concat!($what, " read by an IPMI threshold sensor, in ", $unit, "."),
            threshold: $threshold,
            threshold_help: concat!("Threshold of an IPMI ", $sensor, " sensor, in ", $unit, "."),
            unit_label: None,
            to_base: $to_base,
        }
    };
}

/// The family of a unit name of [`SensorRecord::unit`].
pub fn unit_family(unit: &'static str) -> UnitFamily {
    fn same(v: f64) -> f64 {
        v
    }
    match unit {
        "rpm" => family!(
            "Fan speed",
            "fan speed",
            "sparewatch_ipmi_fan_speed_rpm",
            "sparewatch_ipmi_fan_speed_threshold_rpm",
            "rpm",
            same
        ),
        "watts" => family!(
            "Power",
            "power",
            "sparewatch_ipmi_power_watts",
            "sparewatch_ipmi_power_threshold_watts",
            "watts",
            same
        ),
        "volts" => family!(
            "Voltage",
            "voltage",
            "sparewatch_ipmi_voltage_volts",
            "sparewatch_ipmi_voltage_threshold_volts",
            "volts",
            same
        ),
        "amperes" => family!(
            "Current",
            "current",
            "sparewatch_ipmi_current_amperes",
            "sparewatch_ipmi_current_threshold_amperes",
            "amperes",
            same
        ),
        "celsius" => family!(
            "Temperature",
            "temperature",
            "sparewatch_ipmi_temperature_celsius",
            "sparewatch_ipmi_temperature_threshold_celsius",
            "degrees Celsius",
            same
        ),
        "fahrenheit" => family!(
            "Temperature",
            "temperature",
            "sparewatch_ipmi_temperature_celsius",
            "sparewatch_ipmi_temperature_threshold_celsius",
            "degrees Celsius",
            |f| (f - 32.0) * 5.0 / 9.0
        ),
        "kelvin" => family!(
            "Temperature",
            "temperature",
            "sparewatch_ipmi_temperature_celsius",
            "sparewatch_ipmi_temperature_threshold_celsius",
            "degrees Celsius",
            |k| k - 273.15
        ),
        other => UnitFamily {
            value: "sparewatch_ipmi_other_sensor_value",
            value_help: "Reading of an IPMI threshold sensor whose unit has no metric of its own, in the unit of the unit label.",
            threshold: "sparewatch_ipmi_other_sensor_threshold",
            threshold_help: "Threshold of an IPMI threshold sensor whose unit has no metric of its own, in the unit of the unit label.",
            unit_label: Some(other),
            to_base: same,
        },
    }
}

/// Raw readings of every sensor: value, thresholds, availability and one-hot state bits.
pub fn sensor_readings(naming: &Naming, samples: &[Sample], out: &mut Vec<Reading>) {
    let labels = sensor_labels(samples);
    for (s, label) in samples.iter().zip(labels) {
        let r = &s.record;
        let base = || {
            vec![
                ("bmc", naming.bmc.clone()),
                ("sensor", label.clone()),
                ("type", sensor_type_name(r.sensor_type)),
            ]
        };
        let reading = s.reading.as_ref().ok();
        out.push(Reading::gauge(
            "sparewatch_ipmi_sensor_available",
            "Whether the BMC returned a valid reading for the sensor (scanning enabled, reading available).",
            base(),
            reading.is_some_and(|x| x.valid()) as u8 as f64,
        ));
        let Some(reading) = reading.filter(|x| x.valid()) else {
            continue;
        };
        if r.is_threshold() {
            if let Some(conv) = &r.conversion {
                let family = unit_family(r.unit());
                let labels = || {
                    let mut l = base();
                    if let Some(unit) = family.unit_label {
                        l.push(("unit", unit.to_string()));
                    }
                    l
                };
                if let Some(v) = conv.convert(reading.raw) {
                    out.push(Reading::gauge(
                        family.value,
                        family.value_help,
                        labels(),
                        (family.to_base)(v),
                    ));
                }
                for (name, raw) in r.thresholds.named() {
                    let Some(v) = raw.and_then(|x| conv.convert(x)) else {
                        continue;
                    };
                    let mut l = labels();
                    l.push(("threshold", name.to_string()));
                    out.push(Reading::gauge(
                        family.threshold,
                        family.threshold_help,
                        l,
                        (family.to_base)(v),
                    ));
                }
            }
        }
        let offsets: Vec<u8> = if r.is_threshold() {
            (0..6).filter(|o| r.reading_mask & (1 << o) != 0).collect()
        } else {
            (0..15).filter(|o| r.returns_offset(*o)).collect()
        };
        for o in offsets {
            let mut l = base();
            l.push((
                "state",
                decode::state_name(r.sensor_type, r.reading_type, o),
            ));
            out.push(Reading::gauge(
                "sparewatch_ipmi_sensor_state",
                "Whether a state of an IPMI sensor is asserted (1) or not (0): threshold comparisons of threshold sensors, the state offsets of discrete sensors.",
                l,
                reading.asserted(o) as u8 as f64,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipmi::sdr::{parse_record, Record};

    fn rec(bytes: &[u8]) -> SensorRecord {
        match parse_record(bytes).expect("parses") {
            Record::Sensors(mut s) => s.remove(0),
            r => panic!("{r:?}"),
        }
    }
    fn ok(states: u16, raw: u8) -> Result<SensorReading, String> {
        Ok(SensorReading {
            raw,
            scanning_enabled: true,
            unavailable: false,
            states,
        })
    }
    fn psu(n: u8, states: u16) -> Sample {
        let mut r = rec(crate::ipmi::sdr::tests::PSU1);
        r.entity_instance = n;
        r.number = 0x10 + n;
        r.name = format!("PSU{n} Status");
        Sample {
            record: r,
            reading: ok(states, 0),
        }
    }
    fn fan(n: u8, states: u16, raw: u8) -> Sample {
        let mut r = rec(crate::ipmi::sdr::tests::FAN1);
        r.entity_instance = n;
        r.number = 0x30 + n;
        r.name = format!("FAN{n}");
        Sample {
            record: r,
            reading: ok(states, raw),
        }
    }
    fn redundancy(states: u16) -> Sample {
        let mut r = rec(crate::ipmi::sdr::tests::PSU1);
        r.sensor_type = SENSOR_TYPE_POWER_UNIT;
        r.reading_type = READING_TYPE_REDUNDANCY;
        r.entity_id = ENTITY_POWER_UNIT;
        r.name = "PS Redundancy".into();
        r.number = 0x20;
        Sample {
            record: r,
            reading: ok(states, 0),
        }
    }
    fn local() -> Naming {
        Naming {
            bmc: "local".into(),
            group_prefix: String::new(),
        }
    }

    #[test]
    fn two_psus_three_fans() {
        let samples = vec![
            psu(1, 0x01),
            psu(2, 0x03),
            redundancy(0x02),
            fan(1, 0, 60),
            fan(2, 0x03, 8),
            fan(3, 0, 58),
        ];
        let g = build_groups(&local(), &samples);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].name, "psu:chassis");
        assert_eq!(g[0].required, 1);
        assert_eq!(g[0].stated, Some(StatedRedundancy::Lost));
        assert_eq!(g[0].members[0].name, "PSU1");
        assert_eq!(g[0].members[0].health, MemberHealth::Healthy);
        assert_eq!(
            g[0].members[1].health,
            MemberHealth::Unhealthy("failure detected".into())
        );
        assert_eq!(g[1].name, "fan:chassis");
        assert_eq!(g[1].required, 2);
        assert_eq!(g[1].members.len(), 3);
        assert_eq!(
            g[1].members[1].health,
            MemberHealth::Unhealthy("below lower critical".into())
        );
    }

    #[test]
    fn psu_counts_and_prefix() {
        let n = Naming {
            bmc: "rack1".into(),
            group_prefix: "rack1/".into(),
        };
        let g = build_groups(&n, &[psu(1, 1)]);
        assert_eq!(g[0].name, "psu:rack1/chassis");
        assert!(g[0].by_design);
        let four: Vec<Sample> = (1..=4).map(|i| psu(i, 1)).collect();
        assert_eq!(build_groups(&n, &four)[0].required, 2);
        let five: Vec<Sample> = (1..=5).map(|i| psu(i, 1)).collect();
        assert_eq!(build_groups(&n, &five)[0].required, 3);
    }

    #[test]
    fn psu_without_status_sensor_takes_its_threshold_sensors() {
        let mut hot = fan(1, 1 << decode::UC, 10);
        hot.record.entity_id = ENTITY_POWER_SUPPLY;
        hot.record.sensor_type = 0x02;
        let mut fine = hot.clone();
        fine.record.entity_instance = 2;
        fine.reading = ok(0, 10);
        let g = build_groups(&local(), &[hot, fine]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name, "psu:chassis");
        assert_eq!(
            g[0].members[0].health,
            MemberHealth::Unhealthy("above upper critical".into())
        );
        assert_eq!(g[0].members[1].health, MemberHealth::Healthy);
    }

    #[test]
    fn cold_standby_psu_is_a_healthy_standby() {
        let g = build_groups(&local(), &[psu(1, 0x01), psu(2, 0x81)]);
        assert_eq!(g[0].members[1].role, Role::Standby);
        assert_eq!(g[0].members[1].health, MemberHealth::Healthy);
    }

    #[test]
    fn failed_reading_is_unknown_and_unknown_groups_keep_members() {
        let mut s = psu(1, 1);
        s.reading = Err("completion code 0xcb".into());
        let g = build_groups(&local(), &[s, psu(2, 1)]);
        assert!(matches!(g[0].members[0].health, MemberHealth::Unknown(_)));
        let records: Vec<SensorRecord> = [psu(1, 1), psu(2, 1), fan(1, 0, 1)]
            .into_iter()
            .map(|s| s.record)
            .collect();
        let u = unknown_groups(&local(), &records, "BMC not answering");
        assert_eq!(u.len(), 2);
        assert!(u
            .iter()
            .flat_map(|g| &g.members)
            .all(|m| matches!(m.health, MemberHealth::Unknown(_))));
    }

    #[test]
    fn fans_of_another_entity_are_a_zone_of_sensors() {
        let mut samples: Vec<Sample> = (1..=4).map(|i| fan(i, 0, 50)).collect();
        for s in &mut samples {
            s.record.entity_id = sdr::ENTITY_SYSTEM_BOARD;
            s.record.entity_instance = 1;
        }
        let mut red = redundancy(0x04);
        red.record.sensor_type = SENSOR_TYPE_FAN;
        red.record.entity_id = sdr::ENTITY_SYSTEM_BOARD;
        red.record.entity_instance = 1;
        samples.push(red);
        let g = build_groups(&local(), &samples);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name, "fan:system_board.1");
        assert_eq!(g[0].members.len(), 4);
        assert_eq!(g[0].required, 3);
        assert_eq!(g[0].stated, Some(StatedRedundancy::Degraded));
    }

    #[test]
    fn readings_have_units_and_states() {
        let samples = vec![fan(2, 0x03, 8), psu(2, 0x03)];
        let mut out = Vec::new();
        sensor_readings(&local(), &samples, &mut out);
        let find = |name: &str, extra: (&str, &str)| {
            out.iter()
                .find(|r| {
                    r.name == name && r.labels.iter().any(|(k, v)| *k == extra.0 && v == extra.1)
                })
                .map(|r| r.value)
        };
        assert_eq!(
            find("sparewatch_ipmi_fan_speed_rpm", ("sensor", "FAN2")),
            Some(800.0)
        );
        assert_eq!(
            find(
                "sparewatch_ipmi_fan_speed_threshold_rpm",
                ("threshold", "lower_critical")
            ),
            Some(1000.0)
        );
        assert!(
            out.iter()
                .filter(|r| r.name.starts_with("sparewatch_ipmi_fan_speed"))
                .all(|r| r.labels.iter().all(|(k, _)| *k != "unit")),
            "a family's unit is in its name, not in a label"
        );
        assert_eq!(
            find(
                "sparewatch_ipmi_sensor_state",
                ("state", "failure_detected")
            ),
            Some(1.0)
        );
        assert_eq!(
            find("sparewatch_ipmi_sensor_state", ("state", "inactive")),
            Some(0.0)
        );
    }

    /// One metric per unit family, each with its base unit in the name; every metric name
    /// has one help text (the exposition format allows one HELP per name).
    #[test]
    fn every_unit_has_one_metric_family_in_base_units() {
        let mut help = HashMap::new();
        let mut families = std::collections::BTreeSet::new();
        for code in 0..=u8::MAX {
            let f = unit_family(sdr::unit_name(code));
            for (name, h) in [(f.value, f.value_help), (f.threshold, f.threshold_help)] {
                assert_eq!(*help.entry(name).or_insert(h), h, "{name}");
            }
            assert_eq!(
                f.unit_label.is_some(),
                f.value == "sparewatch_ipmi_other_sensor_value",
                "{code}: a unit label only on the generic metric"
            );
            families.insert(f.value);
        }
        assert_eq!(
            families.len(),
            6,
            "rpm, watts, volts, amperes, celsius, other: {families:?}"
        );
        assert_eq!(unit_family("percent").unit_label, Some("percent"));
        let c = |unit, v| (unit_family(unit).to_base)(v);
        assert_eq!(c("celsius", 40.0), 40.0);
        assert_eq!(c("fahrenheit", 212.0), 100.0);
        assert!((c("kelvin", 300.0) - 26.85).abs() < 1e-9);
        assert_eq!(
            unit_family("kelvin").value,
            "sparewatch_ipmi_temperature_celsius"
        );
    }

    #[test]
    fn duplicate_names_get_unique_labels() {
        let a = fan(1, 0, 1);
        let mut b = fan(2, 0, 1);
        b.record.name = "FAN1".into();
        let l = sensor_labels(&[a, b]);
        assert_ne!(l[0], l[1]);
    }
}
