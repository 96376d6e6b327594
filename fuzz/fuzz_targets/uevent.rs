//! Kernel uevent datagrams (NETLINK_KOBJECT_UEVENT): any bytes a socket can deliver.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::events::Uevent;

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = Uevent::parse(data) {
        // The accessors must hold up on whatever the parser accepted.
        let _ = ev.var("ACTION");
        let _ = ev.var("");
        assert!(!ev.action.contains('\0'));
    }
});
