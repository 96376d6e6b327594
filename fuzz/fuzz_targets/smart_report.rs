//! `smartctl --json -a` of one device: output of an external program (and of a disk's
//! firmware), with every exit status.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::smart::report::{parse_report, risk_reasons, Limits};

fuzz_target!(|input: (i32, &[u8])| {
    let (status, data) = input;
    if let Ok(r) = parse_report(data, status) {
        let _ = risk_reasons(&r, &Limits::default());
    }
});
