//! Pure parsers of Redfish resources (JSON as bytes) and the health and group decisions on
//! them. Both schema generations: `PowerSubsystem`/`PowerSupplies` + `ThermalSubsystem`/`Fans`
//! (2020.4 on), and the deprecated `Power` / `Thermal` with inline arrays and `Redundancy`.
//! Vendors differ in which properties they fill: every one is optional here, wrong types
//! count as absent, and nothing panics on any input.
//!
//! Size: about 580 lines of code (plus tests): one small pure function per Redfish resource of
//! both schema generations, sharing the optional-property helpers at the top; split by
//! resource they would each repeat them.

use serde_json::Value;

use crate::{GroupReading, MemberHealth, MemberReading, Role, StatedRedundancy};

/// Parses bytes as a JSON object.
pub fn object(body: &[u8], what: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("{what}: not JSON: {e}"))?;
    if !v.is_object() {
        return Err(format!("{what}: not a JSON object"));
    }
    Ok(v)
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn n(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// `{"@odata.id": "..."}` under `key`.
pub fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|l| l.get("@odata.id"))
        .and_then(Value::as_str)
        .filter(|p| p.starts_with('/') && !p.contains(char::is_whitespace))
        .map(str::to_string)
}

/// What the service root tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRoot {
    pub chassis: Option<String>,
    /// `Links.Sessions` (the SessionService's session collection).
    pub sessions: Option<String>,
    /// `ProtocolFeaturesSupported.ExpandQuery.Links` or `ExpandAll`: `$expand` may be used.
    pub expand: bool,
}

pub fn service_root(body: &[u8]) -> Result<ServiceRoot, String> {
    let v = object(body, "service root")?;
    let sessions = v
        .get("Links")
        .and_then(|l| link(l, "Sessions"))
        .or_else(|| {
            link(&v, "SessionService").map(|p| format!("{}/Sessions", p.trim_end_matches('/')))
        });
    let expand = v
        .get("ProtocolFeaturesSupported")
        .and_then(|p| p.get("ExpandQuery"))
        .is_some_and(|e| {
            e.get("ExpandAll").and_then(Value::as_bool) == Some(true)
                || e.get("NoLinks").and_then(Value::as_bool) == Some(true)
        });
    Ok(ServiceRoot {
        chassis: link(&v, "Chassis"),
        sessions,
        expand,
    })
}

/// One member of a collection: its path, and its body when the service expanded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub path: String,
    pub expanded: Option<Value>,
}

pub fn collection(body: &[u8], what: &str) -> Result<Vec<Member>, String> {
    let v = object(body, what)?;
    let members = v
        .get("Members")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what}: no Members array"))?;
    let mut out = Vec::new();
    for m in members {
        let Some(path) = m
            .get("@odata.id")
            .and_then(Value::as_str)
            .filter(|p| p.starts_with('/'))
        else {
            continue;
        };
        let expanded = m
            .as_object()
            .is_some_and(|o| o.contains_key("Status"))
            .then(|| m.clone());
        out.push(Member {
            path: path.to_string(),
            expanded,
        });
    }
    Ok(out)
}

/// The links of one chassis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chassis {
    pub id: String,
    pub power_subsystem: Option<String>,
    pub thermal_subsystem: Option<String>,
    pub power: Option<String>,
    pub thermal: Option<String>,
}

pub fn chassis(body: &[u8], path: &str) -> Result<Chassis, String> {
    let v = object(body, path)?;
    let id = s(&v, "Id")
        .map(str::to_string)
        .or_else(|| {
            path.trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string)
        })
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("{path}: no Id"))?;
    Ok(Chassis {
        id: sanitize(&id),
        power_subsystem: link(&v, "PowerSubsystem"),
        thermal_subsystem: link(&v, "ThermalSubsystem"),
        power: link(&v, "Power"),
        thermal: link(&v, "Thermal"),
    })
}

/// Group- and label-safe form of a Redfish Id.
pub fn sanitize(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `Status` of a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub state: Option<String>,
    pub health: Option<String>,
}

fn status(v: &Value) -> Status {
    let st = v.get("Status");
    Status {
        state: st.and_then(|x| s(x, "State")).map(str::to_string),
        health: st.and_then(|x| s(x, "Health")).map(str::to_string),
    }
}

/// A redundancy statement: new `RedundantGroup` or deprecated `Redundancy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redundancy {
    /// `RedundancyType` / `Mode`: `Failover`, `N+m`, `NPlusM`, `Sharing`, `Sparing`, `NotRedundant`.
    pub mode: Option<String>,
    /// `MinNeededInGroup` / `MinNumNeeded`.
    pub min_needed: Option<u32>,
    pub status: Status,
}

impl Redundancy {
    /// DESIGN.md §2 on Redfish: Health OK → fully redundant, Warning → degraded, Critical →
    /// redundancy lost. Redfish does not tell "lost" from "insufficient", so Critical is
    /// never read as `failed`: the member count says that. Not in force (Disabled, Absent,
    /// StandbyOffline, UnavailableOffline) or `NotRedundant` → no statement.
    pub fn stated(&self) -> Option<StatedRedundancy> {
        if self.mode.as_deref() == Some("NotRedundant") {
            return None;
        }
        match self.status.state.as_deref() {
            None | Some("Enabled") | Some("Degraded") => {}
            _ => return None,
        }
        match self.status.health.as_deref() {
            Some("OK") => Some(StatedRedundancy::FullyRedundant),
            Some("Warning") => Some(StatedRedundancy::Degraded),
            Some("Critical") => Some(StatedRedundancy::Lost),
            _ => None,
        }
    }
}

fn redundancy(v: &Value) -> Redundancy {
    let min = n(v, "MinNeededInGroup")
        .or_else(|| n(v, "MinNumNeeded"))
        .filter(|m| *m >= 0.0 && *m <= 1024.0)
        .map(|m| m as u32);
    Redundancy {
        mode: s(v, "RedundancyType")
            .or_else(|| s(v, "Mode"))
            .map(str::to_string),
        min_needed: min,
        status: status(v),
    }
}

fn redundancies(v: &Value, key: &str) -> Vec<Redundancy> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|x| x.is_object()).map(redundancy).collect())
        .unwrap_or_default()
}

/// A PSU of either schema.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Supply {
    pub id: String,
    pub status: Status,
    /// `LineInputStatus` (current schema): `Normal`, `NoInput`, `LossOfInput`, `OutOfRange`.
    pub line_input: Option<String>,
    /// `LineInputVoltage` (deprecated schema).
    pub line_input_voltage: Option<f64>,
    pub capacity_watts: Option<f64>,
    /// `PowerInputWatts` (deprecated schema).
    pub input_watts: Option<f64>,
    /// `LastPowerOutputWatts` (deprecated schema): what it delivers, comparable with
    /// `PowerCapacityWatts` (its rated output).
    pub output_watts: Option<f64>,
    /// `Metrics` (current schema): the supply's `PowerSupplyMetrics`, where the current
    /// schema keeps its input and output power.
    pub metrics: Option<String>,
}

pub fn supply(v: &Value, index: usize) -> Supply {
    let id = s(v, "MemberId")
        .or_else(|| s(v, "Id"))
        .or_else(|| s(v, "Name"))
        .map(sanitize)
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| format!("PSU{index}"));
    Supply {
        id,
        status: status(v),
        line_input: s(v, "LineInputStatus").map(str::to_string),
        line_input_voltage: n(v, "LineInputVoltage"),
        capacity_watts: n(v, "PowerCapacityWatts"),
        input_watts: n(v, "PowerInputWatts"),
        output_watts: n(v, "LastPowerOutputWatts"),
        metrics: link(v, "Metrics"),
    }
}

/// `PowerSupplyMetrics` (current schema, the resource a supply's `Metrics` links to): the
/// `Reading` of `InputPowerWatts` and `OutputPowerWatts` (each a `SensorPowerExcerpt`). A
/// reading that is absent, `null` or not a finite non-negative number is `None`: some
/// BMCs link the sensor (`DataSourceUri`) without an inline reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SupplyMetrics {
    pub input_watts: Option<f64>,
    pub output_watts: Option<f64>,
}

pub fn supply_metrics(body: &[u8], path: &str) -> Result<SupplyMetrics, String> {
    let v = object(body, path)?;
    let reading = |key: &str| {
        v.get(key)
            .and_then(|x| n(x, "Reading"))
            .filter(|w| w.is_finite() && *w >= 0.0)
    };
    Ok(SupplyMetrics {
        input_watts: reading("InputPowerWatts"),
        output_watts: reading("OutputPowerWatts"),
    })
}

/// `PowerSubsystem` (current schema).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PowerSubsystem {
    pub supplies: Option<String>,
    pub capacity_watts: Option<f64>,
    pub redundancy: Vec<Redundancy>,
}

pub fn power_subsystem(body: &[u8], path: &str) -> Result<PowerSubsystem, String> {
    let v = object(body, path)?;
    Ok(PowerSubsystem {
        supplies: link(&v, "PowerSupplies"),
        capacity_watts: n(&v, "CapacityWatts"),
        redundancy: redundancies(&v, "PowerSupplyRedundancy"),
    })
}

/// `Power` (deprecated schema): everything inline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Power {
    pub supplies: Vec<Supply>,
    pub redundancy: Vec<Redundancy>,
    /// `PowerControl[0].PowerConsumedWatts`.
    pub consumed_watts: Option<f64>,
    pub capacity_watts: Option<f64>,
}

pub fn power(body: &[u8], path: &str) -> Result<Power, String> {
    let v = object(body, path)?;
    let supplies = v
        .get("PowerSupplies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|x| x.is_object())
                .enumerate()
                .map(|(i, x)| supply(x, i))
                .collect()
        })
        .unwrap_or_default();
    let control = v
        .get("PowerControl")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    Ok(Power {
        supplies,
        redundancy: redundancies(&v, "Redundancy"),
        consumed_watts: control.and_then(|c| n(c, "PowerConsumedWatts")),
        capacity_watts: control.and_then(|c| n(c, "PowerCapacityWatts")),
    })
}

/// A fan of either schema.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fan {
    pub id: String,
    pub status: Status,
    pub rpm: Option<f64>,
    pub percent: Option<f64>,
}

pub fn fan(v: &Value, index: usize) -> Fan {
    let id = s(v, "MemberId")
        .or_else(|| s(v, "Id"))
        .or_else(|| s(v, "Name"))
        .or_else(|| s(v, "FanName"))
        .map(sanitize)
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| format!("FAN{index}"));
    let (mut rpm, mut percent) = (None, None);
    if let Some(sp) = v.get("SpeedPercent") {
        percent = n(sp, "Reading");
        rpm = n(sp, "SpeedRPM");
    }
    if let Some(r) = n(v, "Reading") {
        match s(v, "ReadingUnits") {
            Some("Percent") => percent = percent.or(Some(r)),
            _ => rpm = rpm.or(Some(r)),
        }
    }
    Fan {
        id,
        status: status(v),
        rpm,
        percent,
    }
}

/// `ThermalSubsystem` (current schema).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThermalSubsystem {
    pub fans: Option<String>,
    pub redundancy: Vec<Redundancy>,
}

pub fn thermal_subsystem(body: &[u8], path: &str) -> Result<ThermalSubsystem, String> {
    let v = object(body, path)?;
    Ok(ThermalSubsystem {
        fans: link(&v, "Fans"),
        redundancy: redundancies(&v, "FanRedundancy"),
    })
}

/// `Thermal` (deprecated schema).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thermal {
    pub fans: Vec<Fan>,
    pub redundancy: Vec<Redundancy>,
}

pub fn thermal(body: &[u8], path: &str) -> Result<Thermal, String> {
    let v = object(body, path)?;
    let fans = v
        .get("Fans")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|x| x.is_object())
                .enumerate()
                .map(|(i, x)| fan(x, i))
                .collect()
        })
        .unwrap_or_default();
    Ok(Thermal {
        fans,
        redundancy: redundancies(&v, "Redundancy"),
    })
}

/// Health from `Status` alone, for a present, enabled member.
fn health_of(st: &Status) -> MemberHealth {
    match st.health.as_deref() {
        Some("OK") => MemberHealth::Healthy,
        Some("Warning") => MemberHealth::AtRisk("Status.Health Warning".into()),
        Some("Critical") => MemberHealth::Unhealthy("Status.Health Critical".into()),
        Some(h) => MemberHealth::Unknown(format!("Status.Health {:?}", trunc(h))),
        None if st.state.is_some() => MemberHealth::Healthy,
        None => MemberHealth::Unknown("no Status".into()),
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Role and health of one member from `Status.State` first: `Absent` is a missing member,
/// `StandbySpare` a standby (healthy when its Health is), offline states are unhealthy,
/// transient ones (`Starting`, `InTest`, `Updating`…) unknown.
fn state_of(st: &Status) -> Result<Role, MemberHealth> {
    match st.state.as_deref() {
        None | Some("Enabled") | Some("Degraded") | Some("Qualified") => Ok(Role::Active),
        Some("StandbySpare") => Ok(Role::Standby),
        Some("Absent") => Err(MemberHealth::Unhealthy(
            "absent (Status.State Absent)".into(),
        )),
        Some(s @ ("Disabled" | "UnavailableOffline" | "StandbyOffline")) => {
            Err(MemberHealth::Unhealthy(format!("Status.State {s}")))
        }
        Some(s) => Err(MemberHealth::Unknown(format!(
            "Status.State {:?}",
            trunc(s)
        ))),
    }
}

/// The PSUs of one chassis for the capacity check ([`crate::topology::power::capacity`]):
/// rating `PowerCapacityWatts`; load `LastPowerOutputWatts`, else `PowerInputWatts` (input
/// is larger than output by the losses: the check errs on the side of "too weak"). When no
/// healthy supply reports its own load, the chassis' `PowerConsumedWatts` (`consumed`) is
/// the total load, split evenly (only the sum is compared). Nothing is guessed: a rating
/// or load still missing is reported as unknown by the check.
pub fn capacity_supplies(
    supplies: &[Supply],
    consumed: Option<f64>,
) -> Vec<crate::topology::power::Supply> {
    let mut out: Vec<crate::topology::power::Supply> = supplies
        .iter()
        .map(|p| crate::topology::power::Supply {
            name: p.id.clone(),
            healthy: supply_health(p).1.counts_healthy(),
            load_watts: p.output_watts.or(p.input_watts),
            capacity_watts: p.capacity_watts,
        })
        .collect();
    let healthy = out.iter().filter(|s| s.healthy).count();
    let consumed = consumed.filter(|w| w.is_finite() && *w >= 0.0);
    if let Some(total) = consumed {
        if healthy > 0
            && out
                .iter()
                .filter(|s| s.healthy)
                .all(|s| s.load_watts.is_none())
        {
            for s in out.iter_mut().filter(|s| s.healthy) {
                s.load_watts = Some(total / healthy as f64);
            }
        }
    }
    out
}

/// The supply has lost its AC input (`LineInputStatus` `NoInput`/`LossOfInput`/`OutOfRange`,
/// or `LineInputVoltage` 0 where there is no status): what [`crate::topology::FeedWatch`]
/// compares between supplies.
pub fn input_lost(p: &Supply) -> bool {
    match p.line_input.as_deref() {
        Some(li) => matches!(li, "NoInput" | "LossOfInput" | "OutOfRange"),
        None => p.line_input_voltage == Some(0.0),
    }
}

/// Role and health of a PSU.
pub fn supply_health(p: &Supply) -> (Role, MemberHealth) {
    let role = match state_of(&p.status) {
        Ok(r) => r,
        Err(h) => return (Role::Active, h),
    };
    if let Some(li) = p.line_input.as_deref() {
        if matches!(li, "NoInput" | "LossOfInput" | "OutOfRange") {
            return (
                role,
                MemberHealth::Unhealthy(format!("LineInputStatus {li}")),
            );
        }
    }
    if p.line_input.is_none() && p.line_input_voltage == Some(0.0) {
        return (
            role,
            MemberHealth::Unhealthy("no line input (LineInputVoltage 0)".into()),
        );
    }
    (role, health_of(&p.status))
}

pub fn fan_health(f: &Fan) -> MemberHealth {
    match state_of(&f.status) {
        Ok(_) => health_of(&f.status),
        Err(h) => h,
    }
}

/// Worst statement of several (`Lost` over `Degraded` over `FullyRedundant`).
pub fn stated(rs: &[Redundancy]) -> Option<StatedRedundancy> {
    let rank = |s: &StatedRedundancy| match s {
        StatedRedundancy::FullyRedundant => 0,
        StatedRedundancy::Degraded => 1,
        StatedRedundancy::Lost => 2,
        StatedRedundancy::Insufficient => 3,
    };
    rs.iter().filter_map(Redundancy::stated).max_by_key(rank)
}

/// The PSU group of one chassis. `required` from the stated minimum, else 1 for two PSUs
/// and `ceil(N/2)` above; one PSU is single by design.
pub fn psu_group(name: String, supplies: &[Supply], red: &[Redundancy]) -> GroupReading {
    let count = supplies.len() as u32;
    let min = red.iter().find_map(|r| r.min_needed).filter(|m| *m >= 1);
    let required = min.unwrap_or(if count <= 2 { 1 } else { count.div_ceil(2) });
    let mut g = GroupReading::new(name, "psu", required);
    g.by_design = count == 1
        || red
            .iter()
            .any(|r| r.mode.as_deref() == Some("NotRedundant"));
    g.stated = stated(red);
    for p in supplies {
        let (role, health) = supply_health(p);
        g.members
            .push(MemberReading::new(p.id.clone(), role, health));
    }
    g
}

/// The fan group of one chassis: `required` from the stated minimum, else N − 1.
pub fn fan_group(name: String, fans: &[Fan], red: &[Redundancy]) -> GroupReading {
    let count = fans.len() as u32;
    let min = red.iter().find_map(|r| r.min_needed).filter(|m| *m >= 1);
    let required = min.unwrap_or(count.saturating_sub(1).max(1));
    let mut g = GroupReading::new(name, "fan", required);
    g.by_design = count == 1;
    g.stated = stated(red);
    for f in fans {
        g.members.push(MemberReading::new(
            f.id.clone(),
            Role::Active,
            fan_health(f),
        ));
    }
    g
}

/// Makes member names unique (`PSU`, `PSU_2`), keeping the first as is.
pub fn unique_ids<T>(items: &mut [T], id: fn(&mut T) -> &mut String) {
    let mut seen = std::collections::HashSet::new();
    for it in items.iter_mut() {
        let base = id(it).clone();
        let mut name = base.clone();
        let mut k = 2;
        while !seen.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        *id(it) = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup(v: &str) -> Supply {
        supply(&serde_json::from_str::<Value>(v).unwrap(), 0)
    }

    #[test]
    fn capacity_supplies_output_then_input_then_chassis() {
        let mut a = sup(
            r#"{"MemberId":"PS1","PowerCapacityWatts":800,"PowerInputWatts":600,"LastPowerOutputWatts":550,"Status":{"State":"Enabled","Health":"OK"}}"#,
        );
        let b = sup(
            r#"{"MemberId":"PS2","PowerCapacityWatts":800,"PowerInputWatts":600,"Status":{"State":"Enabled","Health":"OK"}}"#,
        );
        let c = capacity_supplies(&[a.clone(), b.clone()], Some(2000.0));
        // Own readings win over the chassis: output first, else input.
        assert_eq!(
            (c[0].load_watts, c[1].load_watts),
            (Some(550.0), Some(600.0))
        );
        a.output_watts = None;
        a.input_watts = None;
        let mut b2 = b.clone();
        b2.input_watts = None;
        // No supply says its load: the chassis' consumed watts, split over the healthy ones.
        let c = capacity_supplies(&[a.clone(), b2.clone()], Some(1100.0));
        assert_eq!(
            (c[0].load_watts, c[1].load_watts),
            (Some(550.0), Some(550.0))
        );
        // Neither: unknown, never guessed.
        let c = capacity_supplies(&[a, b2], None);
        assert_eq!((c[0].load_watts, c[1].load_watts), (None, None));
    }

    #[test]
    fn psu_states() {
        let ok = sup(
            r#"{"Id":"PSU1","Status":{"State":"Enabled","Health":"OK"},"LineInputStatus":"Normal"}"#,
        );
        assert_eq!(supply_health(&ok), (Role::Active, MemberHealth::Healthy));
        let spare = sup(r#"{"Id":"PSU2","Status":{"State":"StandbySpare","Health":"OK"}}"#);
        assert_eq!(
            supply_health(&spare),
            (Role::Standby, MemberHealth::Healthy)
        );
        let lost = sup(
            r#"{"Id":"PSU2","Status":{"State":"Enabled","Health":"Critical"},"LineInputStatus":"LossOfInput"}"#,
        );
        assert!(
            matches!(supply_health(&lost).1, MemberHealth::Unhealthy(r) if r.contains("LossOfInput"))
        );
        let absent = sup(r#"{"MemberId":"1","Status":{"State":"Absent"}}"#);
        assert!(!supply_health(&absent).1.counts_healthy());
        let old_no_ac = sup(
            r#"{"MemberId":"0","Status":{"State":"Enabled","Health":"OK"},"LineInputVoltage":0}"#,
        );
        assert!(!supply_health(&old_no_ac).1.counts_healthy());
        let warn = sup(r#"{"Id":"P","Status":{"State":"Enabled","Health":"Warning"}}"#);
        assert!(matches!(supply_health(&warn).1, MemberHealth::AtRisk(_)));
        let starting = sup(r#"{"Id":"P","Status":{"State":"Starting"}}"#);
        assert!(matches!(
            supply_health(&starting).1,
            MemberHealth::Unknown(_)
        ));
        let nothing = sup(r#"{"Id":"P"}"#);
        assert!(matches!(
            supply_health(&nothing).1,
            MemberHealth::Unknown(_)
        ));
        let wrong_types = sup(r#"{"Id":5,"Status":"OK","LineInputVoltage":"x"}"#);
        assert_eq!(wrong_types.id, "PSU0");
    }

    #[test]
    fn redundancy_statements_and_required() {
        let p = power(
            br#"{"PowerSupplies":[{"MemberId":"0","Status":{"State":"Enabled","Health":"OK"}},{"MemberId":"1","Status":{"State":"Enabled","Health":"OK"}}],
                "Redundancy":[{"Mode":"N+m","MinNumNeeded":1,"MaxNumSupported":2,"Status":{"State":"Enabled","Health":"Critical"}}],
                "PowerControl":[{"PowerConsumedWatts":344,"PowerCapacityWatts":800}]}"#,
            "/p",
        )
        .unwrap();
        let g = psu_group("psu:1U".into(), &p.supplies, &p.redundancy);
        assert_eq!((g.required, g.stated), (1, Some(StatedRedundancy::Lost)));
        assert_eq!(p.consumed_watts, Some(344.0));
        let four: Vec<Supply> = (0..4)
            .map(|i| {
                sup(&format!(
                    r#"{{"Id":"P{i}","Status":{{"State":"Enabled","Health":"OK"}}}}"#
                ))
            })
            .collect();
        assert_eq!(psu_group("g".into(), &four, &[]).required, 2);
        assert!(psu_group("g".into(), &four[..1], &[]).by_design);
    }

    #[test]
    fn fans_both_generations() {
        let t = thermal(br#"{"Fans":[{"MemberId":"0","Name":"BaseBoard System Fan","Reading":2100,"ReadingUnits":"RPM","Status":{"State":"Enabled","Health":"OK"}},
            {"MemberId":"1","Reading":35,"ReadingUnits":"Percent","Status":{"State":"Absent"}}],"Redundancy":[]}"#, "/t").unwrap();
        assert_eq!(t.fans[0].rpm, Some(2100.0));
        assert_eq!(t.fans[1].percent, Some(35.0));
        let g = fan_group("fan:1U".into(), &t.fans, &t.redundancy);
        assert_eq!(g.required, 1);
        assert!(!g.members[1].health.counts_healthy());
        let f = fan(&serde_json::from_str(r#"{"Id":"Fan1","SpeedPercent":{"Reading":45,"SpeedRPM":4200},"Status":{"State":"Enabled","Health":"OK"}}"#).unwrap(), 0);
        assert_eq!((f.rpm, f.percent), (Some(4200.0), Some(45.0)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"[]", b"{", b"null", b"\xff\xfe"] {
            assert!(service_root(bad).is_err());
            assert!(power(bad, "/p").is_err());
            assert!(collection(bad, "c").is_err());
        }
        assert!(collection(b"{\"Members\":5}", "c").is_err());
        assert_eq!(
            collection(b"{\"Members\":[5,{\"@odata.id\":\"/x\"}]}", "c")
                .unwrap()
                .len(),
            1
        );
    }

    /// Shapes: the DMTF PowerSupplyMetrics schema / power-shelf mockup (excerpt objects with
    /// `DataSourceUri` and `Reading`), bmcweb builds that link the sensor without a reading,
    /// and a reading of `null` (Redfish's "not available").
    #[test]
    fn supply_metrics_readings_and_their_absence() {
        let full = br##"{"@odata.type":"#PowerSupplyMetrics.v1_1_0.PowerSupplyMetrics","Id":"Metrics",
            "InputPowerWatts":{"DataSourceUri":"/redfish/v1/Chassis/1U/Sensors/PS1InputPower","Reading":937.4},
            "OutputPowerWatts":{"DataSourceUri":"/redfish/v1/Chassis/1U/Sensors/PS1OutputPower","Reading":882.1}}"##;
        assert_eq!(
            supply_metrics(full, "/m").unwrap(),
            SupplyMetrics {
                input_watts: Some(937.4),
                output_watts: Some(882.1)
            }
        );
        let linked_only = br#"{"Id":"Metrics","InputPowerWatts":{"DataSourceUri":"/s/in"},
            "OutputPowerWatts":{"DataSourceUri":"/s/out","Reading":null}}"#;
        assert_eq!(
            supply_metrics(linked_only, "/m").unwrap(),
            SupplyMetrics::default()
        );
        let odd = br#"{"InputPowerWatts":{"Reading":-5},"OutputPowerWatts":{"Reading":"400"}}"#;
        assert_eq!(supply_metrics(odd, "/m").unwrap(), SupplyMetrics::default());
        for bad in [&b""[..], b"[]", b"{", b"null"] {
            assert!(supply_metrics(bad, "/m").is_err());
        }
        // The supply links it; the deprecated schema has no such link.
        let v = serde_json::from_str(
            r#"{"Id":"powersupply0","Metrics":{"@odata.id":"/redfish/v1/Chassis/c/PowerSubsystem/PowerSupplies/powersupply0/Metrics"}}"#,
        )
        .unwrap();
        assert_eq!(
            supply(&v, 0).metrics.as_deref(),
            Some("/redfish/v1/Chassis/c/PowerSubsystem/PowerSupplies/powersupply0/Metrics")
        );
    }

    #[test]
    fn service_root_links() {
        let r = service_root(br#"{"Chassis":{"@odata.id":"/redfish/v1/Chassis"},"Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}},
            "ProtocolFeaturesSupported":{"ExpandQuery":{"ExpandAll":true,"Levels":true}}}"#).unwrap();
        assert_eq!(r.chassis.as_deref(), Some("/redfish/v1/Chassis"));
        assert_eq!(
            r.sessions.as_deref(),
            Some("/redfish/v1/SessionService/Sessions")
        );
        assert!(r.expand);
    }
}
