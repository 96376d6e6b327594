//! Get Sensor Reading (NetFn Sensor/Event, cmd 0x2D) responses and what their state bits
//! mean for redundancy (IPMI 2.0 §35.14, tables 42-2 and 42-3). Pure functions on bytes.

use super::sdr::{
    SdrError, SensorRecord, READING_TYPE_REDUNDANCY, READING_TYPE_SENSOR_SPECIFIC,
    READING_TYPE_THRESHOLD, SENSOR_TYPE_POWER_SUPPLY, SENSOR_TYPE_POWER_UNIT,
};
use crate::{MemberHealth, Role, StatedRedundancy};

/// One Get Sensor Reading response (data after the completion code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SensorReading {
    /// The raw analog reading byte (threshold sensors).
    pub raw: u8,
    pub scanning_enabled: bool,
    /// "Reading/state unavailable": the BMC has no valid value now.
    pub unavailable: bool,
    /// Threshold sensors: comparison status bits 5:0 (LNC, LC, LNR, UNC, UC, UNR).
    /// Discrete sensors: asserted offsets 0..=14.
    pub states: u16,
}

impl SensorReading {
    pub fn parse(data: &[u8]) -> Result<Self, SdrError> {
        if data.len() < 2 {
            return Err(SdrError(format!(
                "sensor reading: {} bytes, need at least 2",
                data.len()
            )));
        }
        let lo = data.get(2).copied().unwrap_or(0) as u16;
        let hi = (data.get(3).copied().unwrap_or(0) & 0x7f) as u16;
        Ok(SensorReading {
            raw: data[0],
            scanning_enabled: data[1] & 0x40 != 0,
            // A reading without its state bytes carries no state either.
            unavailable: data[1] & 0x20 != 0 || data.len() < 3,
            states: lo | (hi << 8),
        })
    }

    pub fn asserted(&self, offset: u8) -> bool {
        offset < 15 && self.states & (1 << offset) != 0
    }

    /// Whether there is something to read: scanning on and a reading available.
    pub fn valid(&self) -> bool {
        self.scanning_enabled && !self.unavailable
    }
}

/// Threshold comparison bits (§35.14, byte 3).
pub const LNC: u8 = 0;
pub const LC: u8 = 1;
pub const LNR: u8 = 2;
pub const UNC: u8 = 3;
pub const UC: u8 = 4;
pub const UNR: u8 = 5;

/// Names of state offsets, for the `state` label of the one-hot state metric.
pub fn state_names(sensor_type: u8, reading_type: u8) -> &'static [&'static str] {
    const THRESHOLD: &[&str] = &[
        "at_or_below_lower_non_critical",
        "at_or_below_lower_critical",
        "at_or_below_lower_non_recoverable",
        "at_or_above_upper_non_critical",
        "at_or_above_upper_critical",
        "at_or_above_upper_non_recoverable",
    ];
    const REDUNDANCY: &[&str] = &[
        "fully_redundant",
        "redundancy_lost",
        "redundancy_degraded",
        "non_redundant_sufficient_from_redundant",
        "non_redundant_sufficient_from_insufficient",
        "non_redundant_insufficient",
        "redundancy_degraded_from_fully_redundant",
        "redundancy_degraded_from_non_redundant",
    ];
    const POWER_SUPPLY: &[&str] = &[
        "presence_detected",
        "failure_detected",
        "predictive_failure",
        "input_lost",
        "input_lost_or_out_of_range",
        "input_out_of_range",
        "configuration_error",
        "inactive",
    ];
    const POWER_UNIT: &[&str] = &[
        "power_off",
        "power_cycle",
        "power_down_240va",
        "interlock_power_down",
        "ac_lost",
        "soft_power_control_failure",
        "power_unit_failure",
        "predictive_failure",
    ];
    const PRESENCE: &[&str] = &["device_absent", "device_present"];
    const SEVERITY: &[&str] = &[
        "ok",
        "non_critical_from_ok",
        "critical_from_less_severe",
        "non_recoverable_from_less_severe",
        "non_critical_from_more_severe",
        "critical_from_non_recoverable",
        "non_recoverable",
        "monitor",
        "informational",
    ];
    const DIGITAL: &[&str] = &["deasserted", "asserted"];
    match (reading_type, sensor_type) {
        (READING_TYPE_THRESHOLD, _) => THRESHOLD,
        (READING_TYPE_REDUNDANCY, _) => REDUNDANCY,
        (0x03, _) => DIGITAL,
        (0x07, _) => SEVERITY,
        (0x08, _) => PRESENCE,
        (READING_TYPE_SENSOR_SPECIFIC, SENSOR_TYPE_POWER_SUPPLY) => POWER_SUPPLY,
        (READING_TYPE_SENSOR_SPECIFIC, SENSOR_TYPE_POWER_UNIT) => POWER_UNIT,
        _ => &[],
    }
}

/// The label for one offset: its name where known, `offset<N>` otherwise.
pub fn state_name(sensor_type: u8, reading_type: u8, offset: u8) -> String {
    state_names(sensor_type, reading_type)
        .get(offset as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("offset{offset}"))
}

/// Power Supply status (type 0x08, reading type 0x6F) → health and role of the PSU.
/// Presence counts only when the sensor can report it (its reading mask has offset 0).
/// "Inactive" is a cold-standby PSU: healthy, role standby.
pub fn psu_status(rec: &SensorRecord, r: &SensorReading) -> (MemberHealth, Role) {
    if !r.valid() {
        return (
            MemberHealth::Unknown("status sensor reading unavailable".into()),
            Role::Active,
        );
    }
    let role = if r.asserted(7) {
        Role::Standby
    } else {
        Role::Active
    };
    let mut problems = Vec::new();
    if rec.returns_offset(0) && !r.asserted(0) {
        problems.push("not present");
    }
    for (bit, what) in [
        (1, "failure detected"),
        (3, "AC lost"),
        (4, "input lost or out of range"),
        (5, "input out of range"),
        (6, "configuration error"),
    ] {
        if r.asserted(bit) {
            problems.push(what);
        }
    }
    let health = if !problems.is_empty() {
        MemberHealth::Unhealthy(problems.join(", "))
    } else if r.asserted(2) {
        MemberHealth::AtRisk("predictive failure".into())
    } else {
        MemberHealth::Healthy
    };
    (health, role)
}

/// Generic redundancy states (reading type 0x0B) → what the hardware states; worst wins
/// when a BMC asserts several offsets. `None`: nothing asserted.
pub fn redundancy(r: &SensorReading) -> Option<StatedRedundancy> {
    if !r.valid() {
        return None;
    }
    let mut worst: Option<StatedRedundancy> = None;
    for offset in 0..8 {
        if !r.asserted(offset) {
            continue;
        }
        let s = match offset {
            0 => StatedRedundancy::FullyRedundant,
            2 | 6 | 7 => StatedRedundancy::Degraded,
            1 | 3 | 4 => StatedRedundancy::Lost,
            _ => StatedRedundancy::Insufficient,
        };
        worst = Some(match worst {
            Some(w) if rank(w) >= rank(s) => w,
            _ => s,
        });
    }
    worst
}

fn rank(s: StatedRedundancy) -> u8 {
    match s {
        StatedRedundancy::FullyRedundant => 0,
        StatedRedundancy::Degraded => 1,
        StatedRedundancy::Lost => 2,
        StatedRedundancy::Insufficient => 3,
    }
}

/// The worse of two stated redundancies.
pub fn worse(a: Option<StatedRedundancy>, b: Option<StatedRedundancy>) -> Option<StatedRedundancy> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if rank(x) >= rank(y) { x } else { y }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Power Unit (type 0x09, reading type 0x6F): a failed power unit states the PSU group
/// failed (offsets 4 AC lost, 6 power unit failure), a predictive failure degraded
/// (offset 7). Other offsets (power off/cycle) say nothing about redundancy.
pub fn power_unit(r: &SensorReading) -> Option<StatedRedundancy> {
    if !r.valid() {
        return None;
    }
    if r.asserted(4) || r.asserted(6) {
        Some(StatedRedundancy::Insufficient)
    } else if r.asserted(7) {
        Some(StatedRedundancy::Degraded)
    } else {
        None
    }
}

/// A threshold sensor's health from the BMC's own comparison bits: at or beyond a critical
/// or non-recoverable threshold is unhealthy, at a non-critical one at risk.
pub fn threshold_health(r: &SensorReading) -> MemberHealth {
    if !r.valid() {
        return MemberHealth::Unknown("reading unavailable".into());
    }
    let s = |b: u8| r.asserted(b);
    if s(LNR) {
        MemberHealth::Unhealthy("below lower non-recoverable".into())
    } else if s(LC) {
        MemberHealth::Unhealthy("below lower critical".into())
    } else if s(UNR) {
        MemberHealth::Unhealthy("above upper non-recoverable".into())
    } else if s(UC) {
        MemberHealth::Unhealthy("above upper critical".into())
    } else if s(LNC) {
        MemberHealth::AtRisk("below lower non-critical".into())
    } else if s(UNC) {
        MemberHealth::AtRisk("above upper non-critical".into())
    } else {
        MemberHealth::Healthy
    }
}

/// Health of a fan sensor of any reading type: threshold bits, or the generic discrete
/// types BMCs use for fans (0x03 digital, 0x07 severity, 0x08 presence). `None`: this
/// sensor says nothing about the fan's health (a redundancy sensor, an OEM type).
pub fn fan_health(rec: &SensorRecord, r: &SensorReading) -> Option<MemberHealth> {
    match rec.reading_type {
        READING_TYPE_THRESHOLD => Some(threshold_health(r)),
        _ if !r.valid() => Some(MemberHealth::Unknown("reading unavailable".into())),
        0x03 => Some(if r.asserted(1) {
            MemberHealth::Unhealthy("fault asserted".into())
        } else {
            MemberHealth::Healthy
        }),
        0x07 => Some(
            if r.asserted(3) || r.asserted(6) || r.asserted(2) || r.asserted(5) {
                MemberHealth::Unhealthy("critical".into())
            } else if r.asserted(1) || r.asserted(4) {
                MemberHealth::AtRisk("non-critical".into())
            } else {
                MemberHealth::Healthy
            },
        ),
        0x08 => Some(if r.asserted(0) {
            MemberHealth::Unhealthy("absent".into())
        } else {
            MemberHealth::Healthy
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipmi::sdr::{parse_record, Record};
    use proptest::prelude::*;

    fn rec(bytes: &[u8]) -> SensorRecord {
        match parse_record(bytes).expect("parses") {
            Record::Sensors(mut s) => s.remove(0),
            r => panic!("{r:?}"),
        }
    }
    fn reading(states: u16) -> SensorReading {
        SensorReading {
            raw: 0,
            scanning_enabled: true,
            unavailable: false,
            states,
        }
    }

    #[test]
    fn parses_the_simulator_answers() {
        // FAN2 at 800 rpm: raw 8, scanning on, LNC and LC asserted.
        let r = SensorReading::parse(&[0x08, 0xc0, 0x03, 0x00]).expect("parses");
        assert_eq!(r.raw, 8);
        assert!(r.valid());
        assert!(r.asserted(LC) && r.asserted(LNC) && !r.asserted(LNR));
        assert_eq!(
            threshold_health(&r),
            MemberHealth::Unhealthy("below lower critical".into())
        );
        let unavailable = SensorReading::parse(&[0x00, 0xe0]).expect("parses");
        assert!(!unavailable.valid());
        assert!(SensorReading::parse(&[0x00]).is_err());
        // Byte 4 bit 7 is reserved: never an offset.
        assert_eq!(
            SensorReading::parse(&[0, 0xc0, 0, 0xff]).expect("p").states,
            0x7f00
        );
    }

    #[test]
    fn psu_states() {
        let psu = rec(crate::ipmi::sdr::tests::PSU1);
        let h = |states| psu_status(&psu, &reading(states));
        assert_eq!(h(0x01), (MemberHealth::Healthy, Role::Active));
        assert_eq!(
            h(0x03).0,
            MemberHealth::Unhealthy("failure detected".into())
        );
        assert_eq!(h(0x09).0, MemberHealth::Unhealthy("AC lost".into()));
        assert_eq!(h(0x00).0, MemberHealth::Unhealthy("not present".into()));
        assert_eq!(h(0x05).0, MemberHealth::AtRisk("predictive failure".into()));
        assert_eq!(
            h(0x41).0,
            MemberHealth::Unhealthy("configuration error".into())
        );
        assert_eq!(
            h(0x21).0,
            MemberHealth::Unhealthy("input out of range".into())
        );
        // Cold standby: healthy, standby.
        assert_eq!(h(0x81), (MemberHealth::Healthy, Role::Standby));
        // Failure and predictive failure together: the failure counts.
        assert_eq!(
            h(0x07).0,
            MemberHealth::Unhealthy("failure detected".into())
        );
        // A sensor that cannot report presence is not "absent" for lack of the bit.
        let mut no_presence = psu.clone();
        no_presence.reading_mask &= !1;
        assert_eq!(
            psu_status(&no_presence, &reading(0)).0,
            MemberHealth::Healthy
        );
        let unavailable = SensorReading {
            unavailable: true,
            ..reading(1)
        };
        assert!(matches!(
            psu_status(&psu, &unavailable).0,
            MemberHealth::Unknown(_)
        ));
    }

    #[test]
    fn redundancy_states() {
        use StatedRedundancy::*;
        let s = |b| redundancy(&reading(b));
        assert_eq!(s(0x01), Some(FullyRedundant));
        assert_eq!(s(0x02), Some(Lost));
        assert_eq!(s(0x04), Some(Degraded));
        assert_eq!(s(0x08), Some(Lost));
        assert_eq!(s(0x10), Some(Lost));
        assert_eq!(s(0x20), Some(Insufficient));
        assert_eq!(s(0x40), Some(Degraded));
        assert_eq!(s(0x80), Some(Degraded));
        assert_eq!(s(0x00), None);
        // Worst wins when several offsets are asserted.
        assert_eq!(s(0x03), Some(Lost));
        assert_eq!(s(0x25), Some(Insufficient));
        assert_eq!(worse(Some(Degraded), Some(Lost)), Some(Lost));
        assert_eq!(worse(None, Some(Degraded)), Some(Degraded));
    }

    #[test]
    fn power_unit_states() {
        assert_eq!(
            power_unit(&reading(0x10)),
            Some(StatedRedundancy::Insufficient)
        );
        assert_eq!(
            power_unit(&reading(0x40)),
            Some(StatedRedundancy::Insufficient)
        );
        assert_eq!(power_unit(&reading(0x80)), Some(StatedRedundancy::Degraded));
        assert_eq!(power_unit(&reading(0x01)), None);
    }

    #[test]
    fn threshold_and_fan_states() {
        let fan = rec(crate::ipmi::sdr::tests::FAN1);
        assert_eq!(fan_health(&fan, &reading(0)), Some(MemberHealth::Healthy));
        assert!(matches!(
            fan_health(&fan, &reading(1 << LNC)),
            Some(MemberHealth::AtRisk(_))
        ));
        assert!(matches!(
            threshold_health(&reading(0b111)),
            MemberHealth::Unhealthy(r) if r.contains("non-recoverable")
        ));
        assert!(matches!(
            threshold_health(&reading(1 << UC)),
            MemberHealth::Unhealthy(_)
        ));
        let mut presence = fan.clone();
        presence.reading_type = 0x08;
        assert_eq!(
            fan_health(&presence, &reading(1)),
            Some(MemberHealth::Unhealthy("absent".into()))
        );
        assert_eq!(
            fan_health(&presence, &reading(2)),
            Some(MemberHealth::Healthy)
        );
        presence.reading_type = 0x0b;
        assert_eq!(fan_health(&presence, &reading(1)), None);
    }

    #[test]
    fn state_labels() {
        assert_eq!(state_name(0x08, 0x6f, 1), "failure_detected");
        assert_eq!(state_name(0x09, 0x0b, 1), "redundancy_lost");
        assert_eq!(state_name(0x04, 0x01, 1), "at_or_below_lower_critical");
        assert_eq!(state_name(0xc0, 0x6f, 3), "offset3");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8),
                                st: u8, rt: u8, mask: u16) {
            if let Ok(r) = SensorReading::parse(&bytes) {
                let mut s = rec(crate::ipmi::sdr::tests::PSU1);
                s.sensor_type = st;
                s.reading_type = rt;
                s.reading_mask = mask;
                let _ = psu_status(&s, &r);
                let _ = fan_health(&s, &r);
                let _ = redundancy(&r);
                let _ = power_unit(&r);
                let _ = threshold_health(&r);
                for o in 0..16 {
                    let _ = state_name(st, rt, o);
                }
            }
        }
    }
}
