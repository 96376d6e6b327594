//! `smartctl --scan-open --json`: output of an external program.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::smart::report::{locate, parse_scan};

fuzz_target!(|data: &[u8]| {
    if let Ok(devices) = parse_scan(data) {
        for d in devices {
            let _ = locate(&d.name, &d.dtype);
        }
    }
});
