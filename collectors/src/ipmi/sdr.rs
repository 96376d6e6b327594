//! Sensor Data Records (IPMI 2.0 §43) and the SDR repository responses (§33), parsed from
//! bytes. Nothing here does I/O: the session layer hands over the raw response data.

use std::fmt;

/// Why bytes could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdrError(pub String);

impl fmt::Display for SdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn short(what: &str, need: usize, got: usize) -> SdrError {
    SdrError(format!("{what}: {got} bytes, need at least {need}"))
}

/// Get SDR Repository Info (NetFn Storage, cmd 0x20) response data after the completion code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub version: u8,
    pub record_count: u16,
    pub most_recent_addition: u32,
    pub most_recent_erase: u32,
}

impl RepositoryInfo {
    pub fn parse(data: &[u8]) -> Result<Self, SdrError> {
        if data.len() < 13 {
            return Err(short("SDR repository info", 13, data.len()));
        }
        Ok(RepositoryInfo {
            version: data[0],
            record_count: u16::from_le_bytes([data[1], data[2]]),
            most_recent_addition: u32::from_le_bytes([data[5], data[6], data[7], data[8]]),
            most_recent_erase: u32::from_le_bytes([data[9], data[10], data[11], data[12]]),
        })
    }

    /// What decides whether a cached copy of the repository is still current. The
    /// timestamps are what the spec offers; BMCs that never set them (0 or 0xFFFFFFFF,
    /// "unspecified") still change the record count when records come or go.
    pub fn cache_key(&self) -> (u32, u32, u16) {
        (
            self.most_recent_addition,
            self.most_recent_erase,
            self.record_count,
        )
    }
}

/// Reserve SDR Repository (cmd 0x22) response: the reservation ID.
pub fn parse_reservation(data: &[u8]) -> Result<u16, SdrError> {
    if data.len() < 2 {
        return Err(short("SDR reservation", 2, data.len()));
    }
    Ok(u16::from_le_bytes([data[0], data[1]]))
}

/// Get SDR (cmd 0x23) request data.
pub fn get_sdr_request(reservation: u16, record_id: u16, offset: u8, count: u8) -> Vec<u8> {
    let r = reservation.to_le_bytes();
    let id = record_id.to_le_bytes();
    vec![r[0], r[1], id[0], id[1], offset, count]
}

/// Get SDR response: the next record ID and the bytes read.
pub fn parse_get_sdr(data: &[u8]) -> Result<(u16, &[u8]), SdrError> {
    if data.len() < 2 {
        return Err(short("Get SDR response", 2, data.len()));
    }
    Ok((u16::from_le_bytes([data[0], data[1]]), &data[2..]))
}

/// The 5-byte header of every SDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdrHeader {
    pub record_id: u16,
    pub version: u8,
    pub record_type: u8,
    /// Bytes following the header.
    pub length: u8,
}

impl SdrHeader {
    pub const LEN: usize = 5;
    pub fn parse(data: &[u8]) -> Result<Self, SdrError> {
        if data.len() < Self::LEN {
            return Err(short("SDR header", Self::LEN, data.len()));
        }
        Ok(SdrHeader {
            record_id: u16::from_le_bytes([data[0], data[1]]),
            version: data[2],
            record_type: data[3],
            length: data[4],
        })
    }
}

/// Event/reading type code 0x01: a threshold-based sensor.
pub const READING_TYPE_THRESHOLD: u8 = 0x01;
/// Generic reading type 0x0B: redundancy states.
pub const READING_TYPE_REDUNDANCY: u8 = 0x0B;
/// Sensor-specific reading type (offsets defined by the sensor type).
pub const READING_TYPE_SENSOR_SPECIFIC: u8 = 0x6F;

pub const SENSOR_TYPE_TEMPERATURE: u8 = 0x01;
pub const SENSOR_TYPE_VOLTAGE: u8 = 0x02;
pub const SENSOR_TYPE_CURRENT: u8 = 0x03;
pub const SENSOR_TYPE_FAN: u8 = 0x04;
pub const SENSOR_TYPE_POWER_SUPPLY: u8 = 0x08;
pub const SENSOR_TYPE_POWER_UNIT: u8 = 0x09;

pub const ENTITY_PROCESSOR: u8 = 0x03;
pub const ENTITY_SYSTEM_BOARD: u8 = 0x07;
pub const ENTITY_POWER_SUPPLY: u8 = 0x0A;
pub const ENTITY_POWER_UNIT: u8 = 0x13;
pub const ENTITY_FAN: u8 = 0x1D;
pub const ENTITY_COOLING_UNIT: u8 = 0x1E;

/// How a threshold sensor's raw byte becomes a value (§36.3):
/// `y = L[(M·x + B·10^Bexp)·10^Rexp]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    /// Analog data format: 0 unsigned, 1 one's complement, 2 two's complement, 3 none.
    pub format: u8,
    pub linearization: u8,
    pub m: i16,
    pub b: i16,
    pub b_exp: i8,
    pub r_exp: i8,
}

impl Conversion {
    /// The value of a raw reading or threshold byte, `None` when the sensor has no numeric
    /// reading or uses a non-linear (OEM) formula.
    pub fn convert(&self, raw: u8) -> Option<f64> {
        let x = match self.format {
            0 => raw as f64,
            1 => {
                if raw & 0x80 != 0 {
                    -((!raw) as f64)
                } else {
                    raw as f64
                }
            }
            2 => raw as i8 as f64,
            _ => return None,
        };
        let y = (self.m as f64 * x + self.b as f64 * 10f64.powi(self.b_exp as i32))
            * 10f64.powi(self.r_exp as i32);
        let v = match self.linearization {
            0 => y,
            1 => y.ln(),
            2 => y.log10(),
            3 => y.log2(),
            4 => y.exp(),
            5 => 10f64.powf(y),
            6 => y.exp2(),
            7 => 1.0 / y,
            8 => y * y,
            9 => y * y * y,
            10 => y.sqrt(),
            11 => y.cbrt(),
            _ => return None,
        };
        if !v.is_finite() {
            return None;
        }
        // Rounds away the binary noise of 10^-n factors (0.06 · 200 = 12.000000000000002).
        let rounded = (v * 1e6).round() / 1e6;
        Some(if rounded.is_finite() { rounded } else { v })
    }
}

/// Threshold values of a full sensor record, raw bytes, present only when readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub lower_non_critical: Option<u8>,
    pub lower_critical: Option<u8>,
    pub lower_non_recoverable: Option<u8>,
    pub upper_non_critical: Option<u8>,
    pub upper_critical: Option<u8>,
    pub upper_non_recoverable: Option<u8>,
}

impl Thresholds {
    /// Named thresholds in the order of the state bits (§35.14).
    pub fn named(&self) -> [(&'static str, Option<u8>); 6] {
        [
            ("lower_non_critical", self.lower_non_critical),
            ("lower_critical", self.lower_critical),
            ("lower_non_recoverable", self.lower_non_recoverable),
            ("upper_non_critical", self.upper_non_critical),
            ("upper_critical", self.upper_critical),
            ("upper_non_recoverable", self.upper_non_recoverable),
        ]
    }
}

/// One sensor as the repository describes it (from a full or compact record; a compact
/// record shared by several sensors is expanded into one `SensorRecord` each).
#[derive(Clone, Debug, PartialEq)]
pub struct SensorRecord {
    pub record_id: u16,
    /// Sensor owner ID byte: bits 7:1 slave address, bit 0 set = system software ID.
    pub owner_id: u8,
    pub owner_lun: u8,
    pub channel: u8,
    pub number: u8,
    pub entity_id: u8,
    /// Instance without the logical-entity bit; 0x60.. are device-relative.
    pub entity_instance: u8,
    pub sensor_type: u8,
    pub reading_type: u8,
    /// Discrete: offsets the sensor can return. Threshold: readable-threshold mask (bits 5:0).
    pub reading_mask: u16,
    /// Base unit code (Sensor Units 2), e.g. 18 = RPM, 6 = Watts, 4 = Volts.
    pub base_unit: u8,
    pub percentage: bool,
    /// Full records only.
    pub conversion: Option<Conversion>,
    pub thresholds: Thresholds,
    pub name: String,
}

impl SensorRecord {
    pub fn is_threshold(&self) -> bool {
        self.reading_type == READING_TYPE_THRESHOLD
    }
    /// Whether a discrete offset can be returned by this sensor.
    pub fn returns_offset(&self, offset: u8) -> bool {
        offset < 15 && self.reading_mask & (1 << offset) != 0
    }
    /// The unit of its value for metric labels, in base units (`rpm`, `watts`, `volts`...).
    pub fn unit(&self) -> &'static str {
        if self.percentage {
            return "percent";
        }
        unit_name(self.base_unit)
    }
}

/// The records the collector uses; others (locators, OEM) are kept apart as `Other`.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Sensors(Vec<SensorRecord>),
    Other { record_id: u16, record_type: u8 },
}

/// Parses one whole record (header included).
pub fn parse_record(data: &[u8]) -> Result<Record, SdrError> {
    let h = SdrHeader::parse(data)?;
    let end = SdrHeader::LEN + h.length as usize;
    if data.len() < end {
        return Err(short(
            &format!("SDR record {:#06x}", h.record_id),
            end,
            data.len(),
        ));
    }
    let rec = &data[..end];
    match h.record_type {
        0x01 => parse_full(h, rec).map(|s| Record::Sensors(vec![s])),
        0x02 => parse_compact(h, rec).map(Record::Sensors),
        t => Ok(Record::Other {
            record_id: h.record_id,
            record_type: t,
        }),
    }
}

/// Bytes 5..=19 common to full and compact records.
struct Common {
    owner_id: u8,
    owner_lun: u8,
    channel: u8,
    number: u8,
    entity_id: u8,
    entity_instance: u8,
    sensor_type: u8,
    reading_type: u8,
    reading_mask: u16,
    units1: u8,
    base_unit: u8,
}

fn common(h: SdrHeader, rec: &[u8], need: usize) -> Result<Common, SdrError> {
    if rec.len() < need {
        return Err(short(
            &format!("sensor record {:#06x}", h.record_id),
            need,
            rec.len(),
        ));
    }
    let reading_type = rec[13];
    let mask = u16::from_le_bytes([rec[18], rec[19]]);
    Ok(Common {
        owner_id: rec[5],
        owner_lun: rec[6] & 0x03,
        channel: rec[6] >> 4,
        number: rec[7],
        entity_id: rec[8],
        entity_instance: rec[9] & 0x7f,
        sensor_type: rec[12],
        reading_type,
        reading_mask: if reading_type == READING_TYPE_THRESHOLD {
            mask & 0x3f
        } else {
            mask & 0x7fff
        },
        units1: rec[20],
        base_unit: rec[21],
    })
}

fn sign_extend(v: u16, bits: u32) -> i16 {
    let shift = 16 - bits;
    ((v << shift) as i16) >> shift
}

fn parse_full(h: SdrHeader, rec: &[u8]) -> Result<SensorRecord, SdrError> {
    const FIXED: usize = 48;
    let c = common(h, rec, FIXED)?;
    let m = sign_extend(rec[24] as u16 | ((rec[25] as u16 & 0xc0) << 2), 10);
    let b = sign_extend(rec[26] as u16 | ((rec[27] as u16 & 0xc0) << 2), 10);
    let r_exp = sign_extend((rec[29] >> 4) as u16, 4) as i8;
    let b_exp = sign_extend((rec[29] & 0x0f) as u16, 4) as i8;
    let conversion = Conversion {
        format: c.units1 >> 6,
        linearization: rec[23] & 0x7f,
        m,
        b,
        b_exp,
        r_exp,
    };
    let readable = |bit: u16, idx: usize| {
        (c.reading_type == READING_TYPE_THRESHOLD && c.reading_mask & (1 << bit) != 0)
            .then_some(rec[idx])
    };
    let thresholds = Thresholds {
        lower_non_critical: readable(0, 41),
        lower_critical: readable(1, 40),
        lower_non_recoverable: readable(2, 39),
        upper_non_critical: readable(3, 38),
        upper_critical: readable(4, 37),
        upper_non_recoverable: readable(5, 36),
    };
    let name = id_string(rec[47], &rec[FIXED..]);
    Ok(SensorRecord {
        record_id: h.record_id,
        owner_id: c.owner_id,
        owner_lun: c.owner_lun,
        channel: c.channel,
        number: c.number,
        entity_id: c.entity_id,
        entity_instance: c.entity_instance,
        sensor_type: c.sensor_type,
        reading_type: c.reading_type,
        reading_mask: c.reading_mask,
        base_unit: c.base_unit,
        percentage: c.units1 & 1 != 0,
        conversion: Some(conversion),
        thresholds,
        name,
    })
}

fn parse_compact(h: SdrHeader, rec: &[u8]) -> Result<Vec<SensorRecord>, SdrError> {
    const FIXED: usize = 32;
    let c = common(h, rec, FIXED)?;
    let share_count = (rec[23] & 0x0f).max(1);
    let modifier_type = (rec[23] >> 4) & 0x03;
    let instance_increments = rec[24] & 0x80 != 0;
    let modifier_offset = rec[24] & 0x7f;
    let base_name = id_string(rec[31], &rec[FIXED..]);
    let mut out = Vec::with_capacity(share_count as usize);
    for i in 0..share_count {
        let name = if share_count > 1 {
            format!(
                "{base_name}{}",
                instance_modifier(modifier_type, modifier_offset as u32 + i as u32)
            )
        } else {
            base_name.clone()
        };
        out.push(SensorRecord {
            record_id: h.record_id,
            owner_id: c.owner_id,
            owner_lun: c.owner_lun,
            channel: c.channel,
            number: c.number.wrapping_add(i),
            entity_id: c.entity_id,
            entity_instance: if instance_increments {
                c.entity_instance.wrapping_add(i) & 0x7f
            } else {
                c.entity_instance
            },
            sensor_type: c.sensor_type,
            reading_type: c.reading_type,
            reading_mask: c.reading_mask,
            base_unit: c.base_unit,
            percentage: c.units1 & 1 != 0,
            conversion: None,
            thresholds: Thresholds::default(),
            name,
        });
    }
    Ok(out)
}

/// ID string instance modifier of shared records: numeric (type 0) or alpha (type 1:
/// A..Z, then AA, AB...).
fn instance_modifier(kind: u8, n: u32) -> String {
    if kind == 1 {
        let mut s = String::new();
        let mut n = n;
        loop {
            s.insert(0, (b'A' + (n % 26) as u8) as char);
            if n < 26 {
                break;
            }
            n = n / 26 - 1;
        }
        s
    } else {
        n.to_string()
    }
}

/// Decodes an ID string by its type/length byte (§43.15): Unicode, BCD plus, 6-bit packed
/// ASCII or 8-bit ASCII/Latin-1. Names are trimmed of padding and control characters.
pub fn id_string(type_len: u8, bytes: &[u8]) -> String {
    let len = (type_len & 0x1f) as usize;
    let bytes = &bytes[..len.min(bytes.len())];
    let s: String = match type_len >> 6 {
        0b11 => bytes.iter().map(|&b| b as char).collect(),
        0b10 => {
            // 6-bit packed: 4 characters in 3 bytes, least significant bits first.
            let mut out = String::new();
            let mut acc: u32 = 0;
            let mut nbits = 0;
            for &b in bytes {
                acc |= (b as u32) << nbits;
                nbits += 8;
                while nbits >= 6 {
                    out.push((((acc & 0x3f) as u8) + 0x20) as char);
                    acc >>= 6;
                    nbits -= 6;
                }
            }
            out
        }
        0b01 => {
            const BCD: &[u8; 16] = b"0123456789 -.:,_";
            bytes
                .iter()
                .flat_map(|&b| [BCD[(b & 0x0f) as usize], BCD[(b >> 4) as usize]])
                .map(|c| c as char)
                .collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    };
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

/// Unit names for metric labels (IPMI 2.0 table 43-15), lower-case, for the codes a
/// redundancy agent meets; others are `other`.
pub fn unit_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "celsius",
        2 => "fahrenheit",
        3 => "kelvin",
        4 => "volts",
        5 => "amperes",
        6 => "watts",
        7 => "joules",
        8 => "coulombs",
        9 => "va",
        18 => "rpm",
        19 => "hz",
        20 => "microseconds",
        21 => "milliseconds",
        22 => "seconds",
        _ => "other",
    }
}

/// Short, stable names of the entity IDs used in group and member names (table 43-13).
pub fn entity_name(id: u8) -> String {
    match id {
        ENTITY_PROCESSOR => "processor".into(),
        0x04 => "disk_bay".into(),
        0x06 => "system_management_module".into(),
        ENTITY_SYSTEM_BOARD => "system_board".into(),
        0x08 => "memory_module".into(),
        ENTITY_POWER_SUPPLY => "power_supply".into(),
        0x0B => "add_in_card".into(),
        0x0F => "system_chassis".into(),
        0x11 => "chassis_back_panel".into(),
        ENTITY_POWER_UNIT => "power_unit".into(),
        0x14 => "power_module".into(),
        0x17 => "system_chassis".into(),
        ENTITY_FAN => "fan".into(),
        ENTITY_COOLING_UNIT => "cooling_unit".into(),
        0x42 => "baseboard".into(),
        id => format!("entity{id}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A full record as `sdrcomp -8` compiles it: FAN1 of the lab BMC (rpm = 100·raw,
    /// lnc 20, lc 10, lnr 5).
    pub(crate) const FAN1: &[u8] = &[
        0x07, 0x00, 0x51, 0x01, 0x2f, 0x20, 0x00, 0x31, 0x1d, 0x01, 0x67, 0x44, 0x04, 0x01, 0x15,
        0x70, 0x15, 0x00, 0x07, 0x00, 0x00, 0x12, 0x00, 0x00, 0x64, 0x00, 0x00, 0x01, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0a, 0x14, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xc4, b'F', b'A', b'N', b'1',
    ];
    /// A compact record: PSU1 Status, type 0x08 reading type 0x6f, entity 10.1.
    pub(crate) const PSU1: &[u8] = &[
        0x02, 0x00, 0x51, 0x02, 0x26, 0x20, 0x00, 0x11, 0x0a, 0x01, 0x67, 0x00, 0x08, 0x6f, 0x0f,
        0x00, 0x0f, 0x00, 0xff, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xcb, b'P', b'S', b'U', b'1', b' ', b'S', b't', b'a', b't', b'u', b's',
    ];
    /// CPU1 Temp: m 1, b -40 (10-bit two's complement), unsigned raw.
    const CPU_TEMP: &[u8] = &[
        0x0b, 0x00, 0x51, 0x01, 0x34, 0x20, 0x00, 0x41, 0x03, 0x01, 0x67, 0x44, 0x01, 0x01, 0x00,
        0x00, 0x00, 0x20, 0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xd8, 0xc1, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xc9, b'C', b'P', b'U', b'1', b' ', b'T', b'e', b'm', b'p',
    ];

    fn sensors(data: &[u8]) -> Vec<SensorRecord> {
        match parse_record(data).expect("parses") {
            Record::Sensors(s) => s,
            other => panic!("not a sensor record: {other:?}"),
        }
    }

    #[test]
    fn full_record_fan() {
        let s = sensors(FAN1).remove(0);
        assert_eq!(s.name, "FAN1");
        assert_eq!((s.entity_id, s.entity_instance), (ENTITY_FAN, 1));
        assert_eq!((s.sensor_type, s.reading_type), (SENSOR_TYPE_FAN, 1));
        assert_eq!(s.number, 0x31);
        assert_eq!(s.unit(), "rpm");
        let c = s.conversion.expect("full record converts");
        assert_eq!(c.convert(60), Some(6000.0));
        assert_eq!(s.thresholds.lower_critical, Some(10));
        assert_eq!(s.thresholds.lower_non_recoverable, Some(5));
        assert_eq!(s.thresholds.lower_non_critical, Some(20));
        assert_eq!(s.thresholds.upper_critical, None);
    }

    #[test]
    fn full_record_negative_offset() {
        let s = sensors(CPU_TEMP).remove(0);
        assert_eq!(s.name, "CPU1 Temp");
        let c = s.conversion.expect("converts");
        assert_eq!(c.b, -40);
        assert_eq!(c.convert(85), Some(45.0));
        assert_eq!(
            c.convert(s.thresholds.upper_critical.expect("uc")),
            Some(90.0)
        );
        assert_eq!(s.unit(), "celsius");
    }

    #[test]
    fn exponent_and_signed_formats() {
        let c = Conversion {
            format: 0,
            linearization: 0,
            m: 6,
            b: 0,
            b_exp: 0,
            r_exp: -2,
        };
        assert_eq!(c.convert(200), Some(12.0));
        let c2 = Conversion { format: 2, ..c };
        assert_eq!(c2.convert(0xff), Some(-0.06));
        let c1 = Conversion { format: 1, ..c };
        assert_eq!(c1.convert(0xfe), Some(-0.06));
        let none = Conversion { format: 3, ..c };
        assert_eq!(none.convert(10), None);
        let oem = Conversion {
            linearization: 0x70,
            ..c
        };
        assert_eq!(oem.convert(10), None);
    }

    #[test]
    fn compact_record_psu() {
        let s = sensors(PSU1).remove(0);
        assert_eq!(s.name, "PSU1 Status");
        assert_eq!(
            (s.sensor_type, s.reading_type),
            (SENSOR_TYPE_POWER_SUPPLY, 0x6f)
        );
        assert_eq!((s.entity_id, s.entity_instance), (ENTITY_POWER_SUPPLY, 1));
        assert!(s.returns_offset(0) && s.returns_offset(7) && !s.returns_offset(8));
        assert!(s.conversion.is_none());
    }

    #[test]
    fn shared_compact_record_expands() {
        let mut rec = PSU1.to_vec();
        rec[23] = 0x13; // alpha modifier, 3 sensors
        rec[24] = 0x80; // entity instance increments, modifier offset 0
        let s = sensors(&rec);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].number, 0x13);
        assert_eq!(s[2].entity_instance, 3);
        assert_eq!(s[1].name, "PSU1 StatusB");
        assert_eq!(instance_modifier(1, 27), "AB");
        assert_eq!(instance_modifier(0, 7), "7");
    }

    #[test]
    fn id_string_encodings() {
        // "ABCD" packed 6-bit: A=0x21 B=0x22 C=0x23 D=0x24
        let packed = [
            0x21 | (0x22 << 6),
            (0x22 >> 2) | (0x23 << 4),
            (0x23 >> 4) | (0x24 << 2),
        ];
        assert_eq!(id_string(0x83, &packed), "ABCD");
        assert_eq!(id_string(0x42, &[0x21, 0x43]), "1234");
        assert_eq!(id_string(0xc3, b"FAN\0"), "FAN");
        assert_eq!(id_string(0xc9, b"FAN"), "FAN");
    }

    #[test]
    fn repository_info_and_requests() {
        let info = RepositoryInfo::parse(&[
            0x51, 0x0b, 0x00, 0xfe, 0xff, 0x9e, 0x03, 0x00, 0x00, 0, 0, 0, 0, 0x02,
        ])
        .expect("parses");
        assert_eq!(info.record_count, 11);
        assert_eq!(info.most_recent_addition, 0x39e);
        assert!(RepositoryInfo::parse(&[0x51]).is_err());
        assert_eq!(parse_reservation(&[0x34, 0x12]), Ok(0x1234));
        assert_eq!(
            get_sdr_request(0x1234, 7, 5, 16),
            vec![0x34, 0x12, 7, 0, 5, 16]
        );
        let (next, bytes) = parse_get_sdr(&[0x08, 0x00, 1, 2]).expect("parses");
        assert_eq!((next, bytes), (8, &[1u8, 2][..]));
    }

    #[test]
    fn truncated_records_are_errors() {
        for n in 0..FAN1.len() {
            assert!(parse_record(&FAN1[..n]).is_err(), "{n} bytes");
        }
        let mut short_len = FAN1.to_vec();
        short_len[4] = 10; // claims a 10-byte body: too short for a full record
        assert!(parse_record(&short_len).is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_record(&bytes);
            let _ = RepositoryInfo::parse(&bytes);
            let _ = parse_reservation(&bytes);
            let _ = parse_get_sdr(&bytes);
            let _ = SdrHeader::parse(&bytes);
            if let Some((&t, rest)) = bytes.split_first() {
                let _ = id_string(t, rest);
            }
        }

        #[test]
        fn conversion_never_panics(raw: u8, format in 0u8..4, lin: u8, m in -512i16..512,
                                   b in -512i16..512, be in -8i8..8, re in -8i8..8) {
            let c = Conversion { format, linearization: lin, m, b, b_exp: be, r_exp: re };
            if let Some(v) = c.convert(raw) {
                prop_assert!(v.is_finite());
            }
        }

        #[test]
        fn full_records_with_any_body_parse(body in proptest::collection::vec(any::<u8>(), 48..80)) {
            let mut rec = vec![0x01, 0x00, 0x51, 0x01, (body.len()) as u8];
            rec.extend_from_slice(&body);
            prop_assert!(parse_record(&rec).is_ok());
        }
    }
}
