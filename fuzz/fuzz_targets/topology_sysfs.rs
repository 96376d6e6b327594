//! Resolved sysfs device paths and attribute values behind failure domains (card, disk, HBA,
//! FC rport, iSCSI session, WWNs): whatever the kernel or a damaged tree shows.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::topology::sysfs::{block_place, card_of_path, wwn};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Some(card) = card_of_path(&s) {
        // A card id is a PCI address without its function: dddd:bb:ss.
        assert_eq!(card.len(), 10);
    }
    for partition in [false, true] {
        let p = block_place(&s, partition);
        if let Some(f) = &p.controller_function {
            assert_eq!(f.len(), 12);
        }
    }
    if let Some(w) = wwn(&s) {
        assert!(w.starts_with("0x"));
    }
});
