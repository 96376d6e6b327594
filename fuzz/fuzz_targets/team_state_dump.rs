//! `teamdctl <dev> state dump` JSON: output of an external program.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::net::team::parse_state_dump;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = parse_state_dump("team0", data) {
        assert_eq!(g.name, "team:team0");
    }
});
