//! Following the BMC's System Event Log (IPMI 2.0 §31) incrementally, so a PSU, redundancy
//! or fan event reaches the metric within about a second instead of at the next poll.
//!
//! Every poll is one Get SEL Info (a 14-byte answer). Only when its last-addition or
//! last-erase timestamp or its entry count moved are entries read: from the last record seen
//! onwards (Get SEL Entry, whole records, under a reservation that is taken again when the
//! BMC cancels it). A SEL that was cleared (erase timestamp moved, fewer entries, or the last
//! record seen is gone) is read from its first record. A full SEL logs nothing new, so the
//! caller falls back to full passes; an answer that does not parse is an error of that poll,
//! never a panic. Parsers are pure functions on bytes.

use super::sdr::SdrError;
pub use super::session::{GetSelEntry, GetSelInfo, ReserveSel};
use super::session::{RequestError, Session, CC_RESERVATION_CANCELLED};

/// Get SEL Entry: "requested record not present" (an empty SEL, a deleted record).
pub const CC_NOT_PRESENT: u8 = 0xCB;
/// Record IDs with a meaning of their own in Get SEL Entry.
pub const FIRST: u16 = 0x0000;
pub const LAST: u16 = 0xFFFF;
/// At most this many entries are read in one poll; the rest comes with the next one.
pub const MAX_ENTRIES_PER_POLL: usize = 256;

/// Get SEL Info (Storage 0x40) answer after the completion code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelInfo {
    pub version: u8,
    pub entries: u16,
    /// Free space in bytes.
    pub free: u16,
    pub last_add: u32,
    pub last_erase: u32,
    /// The BMC dropped events because the SEL was full.
    pub overflow: bool,
    pub reserve_supported: bool,
}

impl SelInfo {
    pub fn parse(d: &[u8]) -> Result<SelInfo, SdrError> {
        if d.len() < 14 {
            return Err(SdrError(format!("SEL info: {} bytes, need 14", d.len())));
        }
        Ok(SelInfo {
            version: d[0],
            entries: u16::from_le_bytes([d[1], d[2]]),
            free: u16::from_le_bytes([d[3], d[4]]),
            last_add: u32::from_le_bytes([d[5], d[6], d[7], d[8]]),
            last_erase: u32::from_le_bytes([d[9], d[10], d[11], d[12]]),
            overflow: d[13] & 0x80 != 0,
            reserve_supported: d[13] & 0x02 != 0,
        })
    }

    /// No room for another 16-byte record, or events already dropped.
    pub fn full(&self) -> bool {
        self.overflow || self.free < 16
    }

    /// What tells that something was added or erased. The timestamps have a resolution
    /// of one second, so two additions within one second differ only in the count.
    fn key(&self) -> (u32, u32, u16) {
        (self.last_add, self.last_erase, self.entries)
    }
}

/// One SEL record (16 bytes), as far as redundancy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelEntry {
    pub record_id: u16,
    /// 0x02 system event; 0xC0..=0xFF OEM (not decoded).
    pub record_type: u8,
    pub timestamp: u32,
    /// Generator ID byte 1: bits 7:1 slave address or software ID, bit 0 set = software.
    pub generator: u8,
    pub sensor_type: u8,
    pub sensor_number: u8,
    /// Assertion (`true`) or deassertion.
    pub assertion: bool,
    /// Event/reading type code (0x01 threshold, 0x0b redundancy, 0x6f sensor-specific...).
    pub event_type: u8,
    /// The offset of the state that changed (event data 1, bits 3:0).
    pub offset: u8,
}

impl SelEntry {
    pub fn parse(d: &[u8]) -> Result<SelEntry, SdrError> {
        if d.len() < 16 {
            return Err(SdrError(format!("SEL entry: {} bytes, need 16", d.len())));
        }
        Ok(SelEntry {
            record_id: u16::from_le_bytes([d[0], d[1]]),
            record_type: d[2],
            timestamp: u32::from_le_bytes([d[3], d[4], d[5], d[6]]),
            generator: d[7],
            sensor_type: d[10],
            sensor_number: d[11],
            assertion: d[12] & 0x80 == 0,
            event_type: d[12] & 0x7f,
            offset: d[13] & 0x0f,
        })
    }

    /// A system event from a sensor (not an OEM record).
    pub fn is_sensor_event(&self) -> bool {
        self.record_type == 0x02
    }

    /// The bit of Get Sensor Reading's state field this event is about: the offset itself
    /// for discrete sensors; for threshold sensors the comparison bit of the threshold
    /// crossed (offsets 0/1 LNC, 2/3 LC, 4/5 LNR, 6/7 UNC, 8/9 UC, 10/11 UNR).
    pub fn state_bit(&self) -> Option<u8> {
        match self.event_type {
            0x01 => (self.offset < 12).then_some(self.offset / 2),
            0x02..=0x0c | 0x6f => (self.offset < 15).then_some(self.offset),
            _ => None,
        }
    }
}

/// Get SEL Entry answer: the next record ID and the record.
pub fn parse_get_entry(d: &[u8]) -> Result<(u16, SelEntry), SdrError> {
    if d.len() < 2 {
        return Err(SdrError(format!("SEL entry answer: {} bytes", d.len())));
    }
    Ok((u16::from_le_bytes([d[0], d[1]]), SelEntry::parse(&d[2..])?))
}

/// What one poll found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// New entries, oldest first.
    pub entries: Vec<SelEntry>,
    /// The SEL was cleared (or records deleted) since the last poll.
    pub cleared: bool,
}

/// The state of following one BMC's SEL.
#[derive(Clone, Debug, Default)]
pub struct SelFollower {
    info: Option<SelInfo>,
    /// The last record read; `None` while the SEL is empty.
    last_id: Option<u16>,
    /// Whether the position is known (after the first successful poll).
    baselined: bool,
    /// The last poll stopped at [`MAX_ENTRIES_PER_POLL`]: read on even if nothing moved.
    more: bool,
    pub polls: u64,
    pub events: u64,
    pub clears: u64,
    pub errors: u64,
}

impl SelFollower {
    pub fn info(&self) -> Option<SelInfo> {
        self.info
    }

    /// Forget the position: the next poll takes a new baseline (after garbage).
    pub fn reset(&mut self) {
        self.baselined = false;
        self.info = None;
        self.last_id = None;
        self.more = false;
    }

    /// One poll. The first one only finds where the SEL ends (what is already logged is
    /// history; the full pass reads the current state).
    pub fn poll(&mut self, s: &mut Session) -> Result<Poll, RequestError> {
        self.polls += 1;
        let info: SelInfo = s.request(None, 0, GetSelInfo {})?;
        if !self.baselined {
            self.last_id = last_record(s)?;
            self.info = Some(info);
            self.baselined = true;
            return Ok(Poll::default());
        }
        let prev = self.info.replace(info);
        if !self.more && prev.map(|p| p.key()) == Some(info.key()) {
            return Ok(Poll::default());
        }
        let mut cleared =
            prev.is_some_and(|p| p.last_erase != info.last_erase || info.entries < p.entries);
        let mut reservation = reserve(s, &info)?;
        let mut entries = Vec::new();
        let mut next = match (cleared, self.last_id) {
            (true, _) | (_, None) => FIRST,
            (false, Some(id)) => {
                match get_entry(s, &mut reservation, &info, id) {
                    Ok((next, _)) => next,
                    // The record we stopped at is gone: cleared without a new erase time.
                    Err(RequestError::Completion(CC_NOT_PRESENT)) => {
                        cleared = true;
                        FIRST
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if cleared {
            self.clears += 1;
            self.last_id = None;
        }
        while next != LAST && entries.len() < MAX_ENTRIES_PER_POLL {
            match get_entry(s, &mut reservation, &info, next) {
                Ok((n, e)) => {
                    if self.last_id == Some(e.record_id) || n == next {
                        return Err(RequestError::Parse(format!(
                            "SEL loops at record {next:#06x}"
                        )));
                    }
                    self.last_id = Some(e.record_id);
                    entries.push(e);
                    next = n;
                }
                // An empty SEL answers "not present" for its first record.
                Err(RequestError::Completion(CC_NOT_PRESENT)) if next == FIRST => break,
                Err(e) => return Err(e),
            }
        }
        // More than one poll's worth: the next poll reads on.
        self.more = next != LAST;
        self.events += entries.len() as u64;
        Ok(Poll { entries, cleared })
    }
}

fn reserve(s: &mut Session, info: &SelInfo) -> Result<u16, RequestError> {
    if info.reserve_supported {
        s.request(None, 0, ReserveSel {})
    } else {
        Ok(0)
    }
}

/// One whole record; a cancelled reservation (the SEL was erased meanwhile, or the BMC's
/// reservation timed out) is taken again, a few times.
fn get_entry(
    s: &mut Session,
    reservation: &mut u16,
    info: &SelInfo,
    id: u16,
) -> Result<(u16, SelEntry), RequestError> {
    let mut tries = 0;
    loop {
        match s.request(
            None,
            0,
            GetSelEntry {
                reservation: *reservation,
                record_id: id,
            },
        ) {
            Err(RequestError::Completion(CC_RESERVATION_CANCELLED)) if tries < 3 => {
                tries += 1;
                *reservation = reserve(s, info)?;
            }
            other => return other,
        }
    }
}

/// The ID of the SEL's last record, `None` when it is empty.
fn last_record(s: &mut Session) -> Result<Option<u16>, RequestError> {
    match s.request(
        None,
        0,
        GetSelEntry {
            reservation: 0,
            record_id: LAST,
        },
    ) {
        Ok((_, e)) => Ok(Some(e.record_id)),
        Err(RequestError::Completion(CC_NOT_PRESENT)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipmi_rs::connection::Message;
    use proptest::prelude::*;

    #[test]
    fn sel_info_and_entries_parse() {
        // As ipmi_sim answered with 4 of 4 entries used (overflow set, reserve supported).
        let info =
            SelInfo::parse(&[0x51, 4, 0, 0, 0, 0xae, 1, 0, 0, 0, 0, 0, 0, 0x8a]).expect("info");
        assert_eq!(info.entries, 4);
        assert_eq!(info.last_add, 0x1ae);
        assert!(info.overflow && info.reserve_supported && info.full());
        assert!(SelInfo::parse(&[0x51, 4]).is_err());

        // "Power Supply #0x12 | Failure detected | Asserted", as ipmi_sim logged it.
        let (next, e) = parse_get_entry(&[
            0xff, 0xff, 5, 0, 2, 0xb5, 1, 0, 0, 0x20, 0, 4, 8, 0x12, 0x6f, 1, 0xff, 0xff,
        ])
        .expect("entry");
        assert_eq!(next, LAST);
        assert_eq!(e.record_id, 5);
        assert!(e.is_sensor_event() && e.assertion);
        assert_eq!(
            (e.generator, e.sensor_type, e.sensor_number),
            (0x20, 8, 0x12)
        );
        assert_eq!((e.event_type, e.offset, e.state_bit()), (0x6f, 1, Some(1)));
        assert!(parse_get_entry(&[1, 0, 2]).is_err());
    }

    #[test]
    fn threshold_offsets_map_to_comparison_bits() {
        let mut e = SelEntry::parse(&[0; 16]).expect("entry");
        e.event_type = 0x01;
        e.offset = 3; // lower critical going high
        assert_eq!(e.state_bit(), Some(1));
        e.offset = 9; // upper critical going high
        assert_eq!(e.state_bit(), Some(4));
        e.offset = 12;
        assert_eq!(e.state_bit(), None);
        e.event_type = 0x70; // OEM
        assert_eq!(e.state_bit(), None);
    }

    #[test]
    fn requests_are_encoded_as_the_spec_says() {
        let m: Message = GetSelEntry {
            reservation: 0x0102,
            record_id: 0xFFFF,
        }
        .into();
        assert_eq!((m.netfn_raw(), m.cmd()), (0x0a, 0x43));
        assert_eq!(m.data(), &[0x02, 0x01, 0xff, 0xff, 0, 0xff][..]);
        let m: Message = GetSelInfo {}.into();
        assert_eq!((m.netfn_raw(), m.cmd()), (0x0a, 0x40));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(d in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = SelInfo::parse(&d);
            if let Ok((_, e)) = parse_get_entry(&d) {
                let _ = e.state_bit();
            }
        }
    }
}
