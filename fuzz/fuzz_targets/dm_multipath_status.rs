//! `dmsetup status --target multipath` output, multipathd's checker listing and NVMe path
//! names: any bytes the tools or sysfs could hand over.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::multipath::{checker, dmstatus, nvme};

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
    for (dev, state) in checker::parse(&text) {
        assert!(!dev.contains('|'));
        let _ = checker::health_of_usable_path(Some(&state));
    }
});
