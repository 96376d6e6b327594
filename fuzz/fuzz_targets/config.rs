//! The config file (`--config.file`, YAML).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sparewatch::config::parse(&text, vec!["net", "md", "multipath", "hwmon", "smart"]);
});
