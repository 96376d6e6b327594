//! Durations as written in the config file and on the command line ("30s", "500ms").
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::parse_duration;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = parse_duration(s) {
            // Accepted values stay inside the documented range.
            assert!(d.as_secs_f64() <= 1e9);
        }
    }
});
