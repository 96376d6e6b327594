//! hwmon chip attributes: any names and values the files can hold (or refuse to give),
//! fed into the fan and PSU logic.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::hwmon::chip::{self, Chip};

#[derive(Arbitrary, Debug)]
struct In {
    name: String,
    device: Option<String>,
    attrs: Vec<(String, Option<String>)>,
    seen_spinning: bool,
}

fuzz_target!(|i: In| {
    let c = Chip {
        hwmon: "hwmon0".into(),
        name: i.name,
        device: i.device,
        attrs: i.attrs.into_iter().collect(),
    };
    let fans = c.fans();
    for f in &fans {
        let _ = chip::fan_health(f, i.seen_spinning);
    }
    let _ = chip::fan_names(&fans);
    let _ = c.raised_alarms();
    let _ = chip::psu_health(&c);
    let mut out = Vec::new();
    chip::fan_readings("chip", &fans, &mut out);
    chip::psu_readings("chip", &c, &mut out);
    let _ = chip::chip_ids(std::slice::from_ref(&c));
});
