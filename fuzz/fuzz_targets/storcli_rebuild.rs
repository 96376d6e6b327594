//! `storcli /call/eall/sall show rebuild J`: output of an external program.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::hwraid::storcli::parse_rebuild;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = parse_rebuild(data) {
        for (_, _, pct) in rows {
            assert!((0.0..=100.0).contains(&pct));
        }
    }
});
