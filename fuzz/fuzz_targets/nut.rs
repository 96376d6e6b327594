//! upsd replies (NUT network protocol): any text as `LIST UPS`, `LIST VAR`, a one-line
//! reply and `ups.status`, and the variables fed on into the UPS group. No panic; a UPS
//! group always has its two members.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::ups::nut;
use sparewatch_collectors::Collection;

fuzz_target!(|text: &str| {
    let _ = nut::parse_list_ups(text);
    let _ = nut::parse_ok(text);
    let _ = nut::parse_status(text);
    let _ = nut::split_words(text);
    if let Ok(vars) = nut::parse_list_var(text, "ups-a") {
        let mut out = Collection::present();
        let limits = nut::Limits {
            min_charge_percent: Some(50.0),
            min_runtime_seconds: Some(300.0),
        };
        sparewatch_collectors::ups::ups_collection("ups-a", &vars, &limits, &mut out);
        assert_eq!(out.groups.len(), 1);
        assert_eq!(out.groups[0].members.len(), 2);
    }
});
