//! In-band IPMI event messages (the event message buffer's 16 bytes, as the kernel hands
//! them over) and SEL answers: Get SEL Info, Get SEL Entry, and what a partial pass makes
//! of the entry (the state bit it names).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::ipmi::{events::EventMessage, sel};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = EventMessage::parse(data) {
        let entry = e.as_sel_entry();
        assert_eq!(entry.sensor_number, e.sensor_number);
        if let Some(bit) = entry.state_bit() {
            assert!(bit < 15);
        }
        let _ = e.concerns_redundancy();
    }
    let _ = sel::SelInfo::parse(data).map(|i| i.full());
    if let Ok((_, e)) = sel::parse_get_entry(data) {
        let _ = e.state_bit();
    }
});
