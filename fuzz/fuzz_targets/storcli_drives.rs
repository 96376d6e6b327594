//! `storcli /call/eall/sall show all J`: output of an external program.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::hwraid::{layout::drive_risk, storcli::parse_drive_details};

fuzz_target!(|data: &[u8]| {
    if let Ok(drives) = parse_drive_details(data) {
        for d in drives {
            let _ = drive_risk(&d);
        }
    }
});
