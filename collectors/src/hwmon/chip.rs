//! hwmon chips as plain data, and the pure logic that turns them into fan and PSU groups.
//!
//! The I/O side (`mod.rs`) reads each chip's attribute files into a [`Chip`]; everything here
//! works on those strings, so it can be property-tested without a sysfs tree.

use std::collections::{BTreeMap, BTreeSet};

use crate::{GroupReading, MemberHealth, MemberReading, Reading, Role};

/// One `/sys/class/hwmon/hwmonN` directory as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chip {
    /// The directory name (`hwmon3`): not stable across reboots, used only as a last resort.
    pub hwmon: String,
    /// The `name` attribute (`nct6775`, `pmbus`, `ibm-cffps`).
    pub name: String,
    /// Last component of the `device` link (`nct6775.656`, `7-0058`): stable across reboots
    /// for platform and I2C devices, so it disambiguates chips that share a name.
    pub device: Option<String>,
    /// Sensor attributes (`fan1_input` → `"2400"`); `None` when the kernel refused to answer
    /// (EINVAL/ENODEV/EIO on a sensor that is not readable now).
    pub attrs: BTreeMap<String, Option<String>>,
}

/// Is this attribute one the collector reads? Only the sensor files it uses, never the
/// write-only or slow ones.
pub fn wanted_attr(file: &str) -> bool {
    let Some((sensor, suffix)) = file.split_once('_') else {
        return false;
    };
    let kind_len = sensor.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (kind, num) = sensor.split_at(kind_len);
    if num.is_empty() || !matches!(kind, "fan" | "in" | "curr" | "power" | "temp") {
        return false;
    }
    matches!(
        suffix,
        "input" | "min" | "target" | "label" | "enable" | "fault" | "rated_max"
    ) || suffix.ends_with("alarm")
}

/// One fan sensor of a chip.
#[derive(Clone, Debug, PartialEq)]
pub struct Fan {
    /// `fan1`.
    pub sensor: String,
    pub label: Option<String>,
    /// rpm; `None` when `fanN_input` is unreadable or not a number.
    pub input: Option<f64>,
    pub min: Option<f64>,
    /// `fanN_target`: the speed the driver was told to hold (a set point, not a threshold).
    pub target: Option<f64>,
    /// What `fanN_min` means on this chip's driver (see [`MinMeaning::of_driver`]).
    pub min_meaning: MinMeaning,
    pub alarm: bool,
    pub fault: bool,
    /// `fanN_enable` = 0: the fan is switched off on purpose and not reported as a member.
    pub disabled: bool,
}

/// What a driver's `fanN_min` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinMeaning {
    /// The low-speed alarm limit (hwmon sysfs-interface: "fan minimum value"), as on
    /// Super-I/O chips (nct6775, it87, w83627ehf…) and most others.
    #[default]
    AlarmLimit,
    /// A speed the firmware runs the fan at or above, not an alarm: applesmc's `fanN_min`
    /// is the SMC's writable minimum speed (Documentation/hwmon/applesmc: "fan<n>_min
    /// (rw)"), dell_smm's the fan's nominal lowest speed. A fan at 1998 rpm with min 2000
    /// is working.
    Floor,
}

impl MinMeaning {
    /// By the chip's `name` attribute.
    pub fn of_driver(name: &str) -> MinMeaning {
        match name {
            "applesmc" | "dell_smm" => MinMeaning::Floor,
            _ => MinMeaning::AlarmLimit,
        }
    }
}

/// Tachometers jitter by a few rpm around a set speed: a reading within this fraction
/// below an alarm limit is not yet "below the minimum" (the chip's own alarm bit, when it
/// has one, still counts).
pub const FAN_MIN_TOLERANCE: f64 = 0.05;

fn int(v: Option<&Option<String>>) -> Option<i64> {
    v.and_then(|v| v.as_deref())
        .and_then(|s| s.trim().parse::<i64>().ok())
}

fn flag(v: Option<&Option<String>>) -> bool {
    int(v).is_some_and(|n| n != 0)
}

/// Sensors of one kind (`fan`, `in`, ...) that have an `_input`, sorted by number.
fn sensors(chip: &Chip, kind: &str) -> Vec<String> {
    let mut nums: BTreeSet<u32> = BTreeSet::new();
    for key in chip.attrs.keys() {
        if let Some(rest) = key.strip_prefix(kind) {
            if let Some(num) = rest.strip_suffix("_input") {
                if let Ok(n) = num.parse::<u32>() {
                    nums.insert(n);
                }
            }
        }
    }
    nums.into_iter().map(|n| format!("{kind}{n}")).collect()
}

fn label(chip: &Chip, sensor: &str) -> Option<String> {
    chip.attrs
        .get(&format!("{sensor}_label"))
        .and_then(|v| v.as_deref())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Chip {
    pub fn fans(&self) -> Vec<Fan> {
        sensors(self, "fan")
            .into_iter()
            .map(|s| {
                let a = |suffix: &str| self.attrs.get(&format!("{s}_{suffix}"));
                Fan {
                    label: label(self, &s),
                    input: int(a("input")).map(|v| v as f64),
                    min: int(a("min")).map(|v| v as f64),
                    target: int(a("target")).map(|v| v as f64),
                    min_meaning: MinMeaning::of_driver(&self.name),
                    alarm: flag(a("alarm")),
                    fault: flag(a("fault")),
                    disabled: int(a("enable")) == Some(0),
                    sensor: s,
                }
            })
            .collect()
    }

    /// Alarm and fault attributes that are set (`in1_lcrit_alarm`, `fan1_fault`), sorted.
    pub fn raised_alarms(&self) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|(k, _)| k.ends_with("alarm") || k.ends_with("_fault"))
            .filter(|(_, v)| flag(Some(v)))
            .map(|(k, _)| match label(self, sensor_of(k)) {
                Some(l) => format!("{k} ({l})"),
                None => k.clone(),
            })
            .collect()
    }
}

fn sensor_of(attr: &str) -> &str {
    attr.split_once('_').map_or(attr, |(s, _)| s)
}

/// Names the chips for group and member names: the `name` when it is unique on this host,
/// else `name@device` (the device link's last component, stable across reboots), else
/// `name@hwmonN` when there is no device link.
pub fn chip_ids(chips: &[Chip]) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for c in chips {
        *count.entry(c.name.as_str()).or_default() += 1;
    }
    chips
        .iter()
        .map(|c| {
            let name = if c.name.is_empty() {
                c.hwmon.as_str()
            } else {
                c.name.as_str()
            };
            if count.get(c.name.as_str()).copied().unwrap_or(0) > 1 || c.name.is_empty() {
                format!("{name}@{}", c.device.as_deref().unwrap_or(&c.hwmon))
            } else {
                name.to_string()
            }
        })
        .collect()
}

/// A fan's raw health. `None`: not a member (disabled, or a header that has never reported
/// a spinning fan and has no minimum set: nothing is connected there).
pub fn fan_health(f: &Fan, seen_spinning: bool) -> Option<MemberHealth> {
    if f.disabled {
        return None;
    }
    let min = f.min.unwrap_or(0.0);
    let target = f.target.unwrap_or(0.0);
    if f.fault {
        return Some(MemberHealth::Unhealthy("fan fault".into()));
    }
    let speed = match f.input {
        None => Some(MemberHealth::Unknown("fan speed unreadable".into())),
        // No tachometer counts backwards: a negative value is a bad reading, not a stop.
        Some(rpm) if rpm < 0.0 => Some(MemberHealth::Unknown(format!(
            "fan speed reading {rpm} rpm is not a speed"
        ))),
        Some(rpm) if rpm <= 0.0 => {
            if min > 0.0 || target > 0.0 || seen_spinning || f.alarm {
                Some(MemberHealth::Unhealthy("stopped (0 rpm)".into()))
            } else {
                return None;
            }
        }
        Some(rpm)
            if f.min_meaning == MinMeaning::AlarmLimit
                && min > 0.0
                && rpm < min * (1.0 - FAN_MIN_TOLERANCE) =>
        {
            Some(MemberHealth::Unhealthy(format!(
                "{rpm} rpm below minimum {min} rpm"
            )))
        }
        Some(_) => None,
    };
    match (speed, f.alarm) {
        (Some(MemberHealth::Unhealthy(r)), true) => {
            Some(MemberHealth::Unhealthy(format!("{r}, fan alarm")))
        }
        (Some(h), _) => Some(h),
        (None, true) => Some(MemberHealth::Unhealthy("fan alarm".into())),
        (None, false) => Some(MemberHealth::Healthy),
    }
}

/// Member names of a chip's fans: the label when it is unique within the chip, else `fanN`.
pub fn fan_names(fans: &[Fan]) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for f in fans {
        if let Some(l) = &f.label {
            *count.entry(l.as_str()).or_default() += 1;
        }
    }
    fans.iter()
        .map(|f| match &f.label {
            Some(l) if count.get(l.as_str()) == Some(&1) => l.clone(),
            _ => f.sensor.clone(),
        })
        .collect()
}

/// `fan:<chip>`: required = N − 1 (at least 1); a single fan is single by design. `designed`
/// is the largest member count this group has had (persisted across restarts): a group whose
/// live count shrank keeps its required and is never turned into "single by design".
pub fn fan_group(chip_id: &str, members: Vec<MemberReading>, designed: u32) -> GroupReading {
    let n = designed.max(members.len() as u32);
    let mut g = GroupReading::new(
        format!("fan:{chip_id}"),
        "fan",
        crate::policy::fan_required(n),
    );
    g.by_design = n == 1;
    g.members = members;
    g
}

/// A PMBus power supply's role and raw health: unhealthy when any alarm or fault bit is set,
/// or the input (`vin`) voltage is gone, or the output (`vout*`) is gone without input to
/// explain it. Input present, output ~0 V and no alarm is a cold-standby PSU (DESIGN §2):
/// a healthy standby member.
pub fn psu_health(chip: &Chip) -> (Role, MemberHealth) {
    let alarms = chip.raised_alarms();
    let alarm_note = if alarms.is_empty() {
        String::new()
    } else {
        format!("; alarm: {}", alarms.join(", "))
    };
    let mut volts_seen = false;
    let mut input_ok = false;
    let mut no_output: Option<String> = None;
    for s in sensors(chip, "in") {
        let Some(l) = label(chip, &s) else { continue };
        let l = l.to_ascii_lowercase();
        let is_input = if l.starts_with("vin") {
            true
        } else if l.starts_with("vout") {
            false
        } else {
            continue;
        };
        match int(chip.attrs.get(&format!("{s}_input"))) {
            // Below 1 V (1000 mV): no power there.
            Some(mv) if mv < 1000 => {
                if is_input {
                    return (
                        Role::Active,
                        MemberHealth::Unhealthy(format!(
                            "no input voltage ({s} {mv} mV){alarm_note}"
                        )),
                    );
                }
                no_output.get_or_insert(format!("no output voltage ({s} {mv} mV){alarm_note}"));
            }
            Some(_) => {
                volts_seen = true;
                input_ok |= is_input;
            }
            None => {}
        }
    }
    if let Some(reason) = no_output {
        if input_ok && alarms.is_empty() {
            return (Role::Standby, MemberHealth::Healthy);
        }
        return (Role::Active, MemberHealth::Unhealthy(reason));
    }
    let any_input = chip
        .attrs
        .iter()
        .any(|(k, v)| k.ends_with("_input") && v.is_some());
    if !alarms.is_empty() {
        return (
            Role::Active,
            MemberHealth::Unhealthy(format!("alarm: {}", alarms.join(", "))),
        );
    }
    if !volts_seen && !any_input {
        return (
            Role::Active,
            MemberHealth::Unknown("no readable sensor".into()),
        );
    }
    (Role::Active, MemberHealth::Healthy)
}

/// `psu:<name>` from its members (one per PSU chip / power_supply device). `designed` is the
/// largest member count the group has had (persisted): a PSU whose chip unbinds when pulled
/// must not turn a two-PSU box into "single by design" nor lower `required`.
pub fn psu_group(name: &str, members: Vec<MemberReading>, designed: u32) -> GroupReading {
    let n = designed.max(members.len() as u32);
    let mut g = GroupReading::new(format!("psu:{name}"), "psu", crate::policy::psu_required(n));
    g.by_design = n == 1;
    g.members = members;
    g
}

fn labels(chip_id: &str, sensor: &str, label: Option<&str>) -> Vec<(&'static str, String)> {
    vec![
        ("chip", chip_id.to_string()),
        ("sensor", sensor.to_string()),
        ("label", label.unwrap_or("").to_string()),
    ]
}

/// Raw fan readings of one chip, in rpm.
pub fn fan_readings(chip_id: &str, fans: &[Fan], out: &mut Vec<Reading>) {
    for f in fans {
        let l = || labels(chip_id, &f.sensor, f.label.as_deref());
        // A negative reading is no speed (the member says so): not exported as one.
        if let Some(v) = f.input.filter(|v| *v >= 0.0) {
            out.push(Reading::gauge(
                "sparewatch_hwmon_fan_speed_rpm",
                "Fan speed reported by the hwmon chip, in revolutions per minute.",
                l(),
                v,
            ));
        }
        if let Some(v) = f.min {
            out.push(Reading::gauge(
                "sparewatch_hwmon_fan_min_rpm",
                "Minimum fan speed configured on the hwmon chip (fanN_min), in rpm.",
                l(),
                v,
            ));
        }
        out.push(Reading::gauge(
            "sparewatch_hwmon_fan_alarm",
            "Whether the chip raises the fan's alarm or fault bit (fanN_alarm, fanN_fault).",
            l(),
            (f.alarm || f.fault) as u8 as f64,
        ));
    }
}

/// Raw power, voltage and current readings of a PSU chip, in watts, volts and amperes.
pub fn psu_readings(chip_id: &str, chip: &Chip, out: &mut Vec<Reading>) {
    let table: [(&str, &'static str, &'static str, f64); 3] = [
        (
            "power",
            "sparewatch_hwmon_power_watts",
            "Power reported by the PSU chip (powerN_input), in watts.",
            1e-6,
        ),
        (
            "in",
            "sparewatch_hwmon_voltage_volts",
            "Voltage reported by the PSU chip (inN_input), in volts.",
            1e-3,
        ),
        (
            "curr",
            "sparewatch_hwmon_current_amperes",
            "Current reported by the PSU chip (currN_input), in amperes.",
            1e-3,
        ),
    ];
    for (kind, metric, help, scale) in table {
        for s in sensors(chip, kind) {
            if let Some(v) = int(chip.attrs.get(&format!("{s}_input"))) {
                let l = label(chip, &s);
                out.push(Reading::gauge(
                    metric,
                    help,
                    labels(chip_id, &s, l.as_deref()),
                    v as f64 * scale,
                ));
            }
        }
    }
    for (k, v) in &chip.attrs {
        if k.ends_with("alarm") || (k.ends_with("_fault") && !k.starts_with("fan")) {
            if let Some(n) = int(Some(v)) {
                out.push(Reading::gauge(
                    "sparewatch_hwmon_psu_alarm",
                    "Alarm and fault bits of a PSU chip (1 = raised), one series per attribute.",
                    vec![
                        ("chip", chip_id.to_string()),
                        ("attribute", k.clone()),
                        ("label", label(chip, sensor_of(k)).unwrap_or_default()),
                    ],
                    (n != 0) as u8 as f64,
                ));
            }
        }
    }
}

/// One `/sys/class/power_supply/<name>` of type `Mains`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainsSupply {
    pub name: String,
    /// `online`: `None` when absent or unreadable.
    pub online: Option<String>,
    /// `present`, where the driver has it.
    pub present: Option<String>,
}

impl MainsSupply {
    pub fn health(&self) -> MemberHealth {
        if self.present.as_deref().map(str::trim) == Some("0") {
            return MemberHealth::Unhealthy("not present".into());
        }
        match self.online.as_deref().map(str::trim) {
            Some("1") => MemberHealth::Healthy,
            Some("0") => MemberHealth::Unhealthy("offline (no mains power)".into()),
            Some(other) => MemberHealth::Unknown(format!("online = {other:?}")),
            None => MemberHealth::Unknown("online unreadable".into()),
        }
    }
}

/// The member list of a fan group, plus which fans have been seen spinning now.
pub fn fan_members(
    chip_id: &str,
    fans: &[Fan],
    seen_spinning: &BTreeSet<String>,
    ignored: &[String],
) -> Vec<MemberReading> {
    let names = fan_names(fans);
    fans.iter()
        .zip(names)
        .filter(|(f, _)| {
            let key = format!("{chip_id}/{}", f.sensor);
            !ignored.iter().any(|i| i == &key)
        })
        .filter_map(|(f, name)| {
            let key = format!("{chip_id}/{}", f.sensor);
            fan_health(f, seen_spinning.contains(&key))
                .map(|h| MemberReading::new(name, Role::Active, h))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chip(name: &str, attrs: &[(&str, &str)]) -> Chip {
        Chip {
            hwmon: "hwmon0".into(),
            name: name.into(),
            device: Some("dev0".into()),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        }
    }

    #[test]
    fn wanted_attrs() {
        assert!(wanted_attr("fan1_input"));
        assert!(wanted_attr("in12_lcrit_alarm"));
        assert!(wanted_attr("power1_input"));
        assert!(wanted_attr("fan3_label"));
        assert!(wanted_attr("fan1_target"));
        assert!(!wanted_attr("pwm1"));
        assert!(!wanted_attr("name"));
        assert!(!wanted_attr("power"));
        assert!(!wanted_attr("fan_input"));
        assert!(!wanted_attr("uevent"));
    }

    /// applesmc's fanN_min is a floor the SMC holds, not an alarm: 1998 rpm with min
    /// 2000 is a working fan; on an alarm-limit chip, jitter within the tolerance is too,
    /// 10 % below is not. A negative reading is unknown, never "stopped".
    #[test]
    fn per_driver_min_tolerance_and_negative_readings() {
        let apple = chip(
            "applesmc",
            &[
                ("fan1_input", "1998"),
                ("fan1_min", "2000"),
                ("fan2_input", "0"),
                ("fan2_min", "1200"),
            ],
        );
        let fans = apple.fans();
        assert_eq!(fans[0].min_meaning, MinMeaning::Floor);
        assert_eq!(fan_health(&fans[0], false), Some(MemberHealth::Healthy));
        assert_eq!(
            fan_health(&fans[1], false),
            Some(MemberHealth::Unhealthy("stopped (0 rpm)".into()))
        );
        let nct = chip(
            "nct6775",
            &[
                ("fan1_input", "1998"),
                ("fan1_min", "2000"),
                ("fan2_input", "1800"),
                ("fan2_min", "2000"),
                ("fan3_input", "-5"),
                ("fan4_input", "0"),
                ("fan4_target", "1500"),
            ],
        );
        let fans = nct.fans();
        assert_eq!(fan_health(&fans[0], false), Some(MemberHealth::Healthy));
        assert_eq!(
            fan_health(&fans[1], false),
            Some(MemberHealth::Unhealthy(
                "1800 rpm below minimum 2000 rpm".into()
            ))
        );
        assert!(matches!(
            fan_health(&fans[2], true),
            Some(MemberHealth::Unknown(w)) if w.contains("-5 rpm")
        ));
        assert_eq!(
            fan_health(&fans[3], false),
            Some(MemberHealth::Unhealthy("stopped (0 rpm)".into()))
        );
    }

    #[test]
    fn fan_below_min_is_unhealthy_and_zero_without_min_is_unconnected() {
        let c = chip(
            "nct6775",
            &[
                ("fan1_input", "1200"),
                ("fan1_min", "300"),
                ("fan2_input", "200"),
                ("fan2_min", "300"),
                ("fan3_input", "0"),
                ("fan3_min", "0"),
                ("fan4_input", "900"),
                ("fan4_alarm", "1"),
            ],
        );
        let fans = c.fans();
        assert_eq!(fans.len(), 4);
        assert_eq!(fan_health(&fans[0], false), Some(MemberHealth::Healthy));
        assert!(matches!(
            fan_health(&fans[1], false),
            Some(MemberHealth::Unhealthy(_))
        ));
        assert_eq!(fan_health(&fans[2], false), None, "empty header");
        assert_eq!(
            fan_health(&fans[2], true),
            Some(MemberHealth::Unhealthy("stopped (0 rpm)".into())),
            "a fan seen spinning that stops"
        );
        assert_eq!(
            fan_health(&fans[3], false),
            Some(MemberHealth::Unhealthy("fan alarm".into()))
        );
        let mut stopped_with_alarm = fans[2].clone();
        stopped_with_alarm.alarm = true;
        assert_eq!(
            fan_health(&stopped_with_alarm, false),
            Some(MemberHealth::Unhealthy("stopped (0 rpm), fan alarm".into()))
        );
    }

    #[test]
    fn ignored_fans_are_no_members() {
        let c = chip(
            "nct6775",
            &[
                ("fan1_input", "1200"),
                ("fan2_input", "0"),
                ("fan2_min", "300"),
            ],
        );
        let fans = c.fans();
        let all = fan_members("nct6775", &fans, &BTreeSet::new(), &[]);
        assert_eq!(all.len(), 2);
        let some = fan_members(
            "nct6775",
            &fans,
            &BTreeSet::new(),
            &["nct6775/fan2".to_string()],
        );
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].name, "fan1");
    }

    #[test]
    fn fan_group_required_is_n_minus_one() {
        let m = |n: &str| MemberReading::new(n, Role::Active, MemberHealth::Healthy);
        let g = fan_group("nct6775", vec![m("a"), m("b"), m("c")], 0);
        assert_eq!(
            (g.name.as_str(), g.required, g.by_design),
            ("fan:nct6775", 2, false)
        );
        let g = fan_group("x", vec![m("a")], 1);
        assert_eq!((g.required, g.by_design), (1, true));
        let g = fan_group("x", vec![m("a"), m("b")], 2);
        assert_eq!((g.required, g.by_design), (1, false));
    }

    #[test]
    fn shrunk_groups_keep_required_and_are_never_single_by_design() {
        let m = |n: &str| MemberReading::new(n, Role::Active, MemberHealth::Healthy);
        // One fan of three left: required stays 2, not single by design.
        let g = fan_group("x", vec![m("a")], 3);
        assert_eq!((g.required, g.by_design), (2, false));
        // One PSU chip of two left (the other unbound when pulled).
        let g = psu_group("pmbus", vec![m("a")], 2);
        assert_eq!((g.required, g.by_design), (1, false));
        let g = psu_group("pmbus", vec![m("a"), m("b")], 3);
        assert_eq!((g.required, g.by_design), (2, false));
        let g = psu_group("pmbus", vec![m("a")], 1);
        assert!(g.by_design);
    }

    #[test]
    fn cold_standby_psu_is_a_healthy_standby() {
        let standby = chip(
            "pmbus",
            &[
                ("in1_label", "vin"),
                ("in1_input", "230000"),
                ("in2_label", "vout1"),
                ("in2_input", "0"),
                ("in1_lcrit_alarm", "0"),
            ],
        );
        assert_eq!(psu_health(&standby), (Role::Standby, MemberHealth::Healthy));
        // Output gone with an alarm raised: failed, not standby.
        let mut failed = standby.clone();
        failed
            .attrs
            .insert("in2_lcrit_alarm".into(), Some("1".into()));
        assert_eq!(
            psu_health(&failed),
            (
                Role::Active,
                MemberHealth::Unhealthy(
                    "no output voltage (in2 0 mV); alarm: in2_lcrit_alarm (vout1)".into()
                )
            )
        );
        // Output gone and no input reading to explain it: unhealthy.
        let no_vin = chip("pmbus", &[("in2_label", "vout1"), ("in2_input", "0")]);
        assert!(matches!(
            psu_health(&no_vin),
            (Role::Active, MemberHealth::Unhealthy(_))
        ));
    }

    #[test]
    fn chip_ids_disambiguate_by_device() {
        let mut a = chip("pmbus", &[]);
        a.device = Some("7-0058".into());
        let mut b = chip("pmbus", &[]);
        b.device = Some("7-0059".into());
        let c = chip("nct6775", &[]);
        assert_eq!(
            chip_ids(&[a, b, c]),
            vec!["pmbus@7-0058", "pmbus@7-0059", "nct6775"]
        );
    }

    #[test]
    fn psu_health_from_alarms_and_voltages() {
        let ok = chip(
            "pmbus",
            &[
                ("in1_label", "vin"),
                ("in1_input", "230000"),
                ("in2_label", "vout1"),
                ("in2_input", "12100"),
                ("in1_lcrit_alarm", "0"),
            ],
        );
        assert_eq!(psu_health(&ok), (Role::Active, MemberHealth::Healthy));
        let ac_lost = chip(
            "pmbus",
            &[
                ("in1_label", "vin"),
                ("in1_input", "0"),
                ("in2_label", "vout1"),
                ("in2_input", "0"),
            ],
        );
        assert_eq!(
            psu_health(&ac_lost).1,
            MemberHealth::Unhealthy("no input voltage (in1 0 mV)".into())
        );
        let alarm = chip("pmbus", &[("in1_label", "vin"), ("in1_lcrit_alarm", "1")]);
        assert_eq!(
            psu_health(&alarm).1,
            MemberHealth::Unhealthy("alarm: in1_lcrit_alarm (vin)".into())
        );
        assert!(matches!(
            psu_health(&chip("pmbus", &[])).1,
            MemberHealth::Unknown(_)
        ));
    }

    #[test]
    fn readings_are_in_base_units() {
        let c = chip(
            "pmbus",
            &[
                ("power1_input", "450000000"),
                ("in1_input", "230500"),
                ("curr1_input", "1950"),
            ],
        );
        let mut out = Vec::new();
        psu_readings("pmbus", &c, &mut out);
        let v = |n: &str| out.iter().find(|r| r.name == n).map(|r| r.value);
        assert_eq!(v("sparewatch_hwmon_power_watts"), Some(450.0));
        assert_eq!(v("sparewatch_hwmon_voltage_volts"), Some(230.5));
        assert_eq!(v("sparewatch_hwmon_current_amperes"), Some(1.95));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_attribute_bytes(
            attrs in proptest::collection::btree_map(
                "(fan|in|curr|power|temp)[0-9]{1,2}_(input|min|label|alarm|fault|enable|lcrit_alarm)",
                proptest::option::of(any::<Vec<u8>>()),
                0..24,
            ),
            name in any::<Vec<u8>>(),
        ) {
            let c = Chip {
                hwmon: "hwmon0".into(),
                name: String::from_utf8_lossy(&name).into_owned(),
                device: None,
                attrs: attrs
                    .into_iter()
                    .map(|(k, v)| (k, v.map(|b| String::from_utf8_lossy(&b).into_owned())))
                    .collect(),
            };
            let ids = chip_ids(std::slice::from_ref(&c));
            let fans = c.fans();
            let members = fan_members(&ids[0], &fans, &BTreeSet::new(), &[]);
            let _ = fan_group(&ids[0], members, 0);
            let _ = psu_health(&c);
            let mut out = Vec::new();
            fan_readings(&ids[0], &fans, &mut out);
            psu_readings(&ids[0], &c, &mut out);
            prop_assert!(out.iter().all(|r| r.value.is_finite()));
        }
    }
}
