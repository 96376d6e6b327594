//! `lldpcli -f json0 show neighbors details`: output of an external program (lldpd relays
//! what switches send, so every field is outside data).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::topology::lldp::parse_neighbours;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = parse_neighbours(s) {
            // Every neighbour kept has a chassis ID: the switch domain is never empty.
            assert!(n.values().flatten().all(|x| !x.chassis_id.is_empty()));
        }
    }
});
