//! `dmsetup status --target multipath` output and NVMe path names: any bytes the tool or
//! sysfs could hand over.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::multipath::{dmstatus, nvme};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(maps) = dmstatus::parse(&text) {
        for m in &maps {
            let _ = m.queue_io();
            if let Some(i) = m.active_group() {
                assert!(i < m.groups.len());
            }
        }
    }
    let _ = nvme::PathName::parse(&text);
});
