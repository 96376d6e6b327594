//! NVMe native multipath path names (`nvme0c1n1`) as found in sysfs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::multipath::nvme::PathName;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(p) = PathName::parse(s) {
            let _ = (p.subsystem_name(), p.controller_name(), p.head_name());
        }
    }
});
