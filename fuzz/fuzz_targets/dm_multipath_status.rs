//! `dmsetup status --target multipath` output, multipathd's checker listing and NVMe path
//! names: any bytes the tools or sysfs could hand over.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::multipath::{checker, dmstatus, nvme};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Line by line, as the collector reads it: the maps that parse are usable even when
    // other lines are bad.
    let lines = dmstatus::parse_lines(&text);
    for m in &lines.maps {
        let _ = m.queue_io();
        if let Some(i) = m.active_group() {
            assert!(i < m.groups.len());
        }
    }
    assert_eq!(dmstatus::parse(&text).is_ok(), lines.bad.is_empty());
    let _ = nvme::PathName::parse(&text);
    for (dev, state) in checker::parse(&text) {
        assert!(!dev.contains('|'));
        let _ = checker::health_of_usable_path(Some(&state));
    }
});
