//! `storcli /call show all J`: output of an external program, then the groups built from it.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::hwraid::{layout, storcli};

fuzz_target!(|data: &[u8]| {
    if let Ok(show) = storcli::parse_show_all(data) {
        let rebuild = BTreeMap::new();
        let details = BTreeMap::new();
        for c in &show.controllers {
            let x = layout::Extra {
                host: Some(0),
                rebuild: &rebuild,
                details: &details,
            };
            let mut out = Vec::new();
            for g in layout::groups(c, &x) {
                assert!(g.name.starts_with("hwraid:c"));
            }
            layout::readings(c, &x, &mut out);
        }
    }
});
