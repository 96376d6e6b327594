//! `/proc/mdstat` and the md sysfs attribute parsers: any bytes a (changed or broken)
//! kernel could print.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::md::{array, mdstat};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = mdstat::parse(&text) {
        for a in &m.arrays {
            // Whatever the parser accepted must turn into a group without panicking.
            let info = array::ArrayInfo::from_mdstat(a);
            if let Some(g) = info.group() {
                assert!(g.required >= 1);
            }
            if let Some(s) = &a.sync {
                if let Some(r) = s.ratio() {
                    assert!((0.0..=1.0).contains(&r));
                }
            }
        }
    }
    let _ = array::parse_raid_disks(&text);
    let _ = array::parse_sync_completed(&text);
    let _ = array::parse_slot(&text);
    let _ = array::parse_member_state(&text);
    let _ = array::whole_disk_name(&text);
});
