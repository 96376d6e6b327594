//! Bond sysfs attributes (`bonding/mode`, `slaves`, `active_slave`, `ad_aggregator`,
//! `bonding_slave/*`): any strings and numbers the files can hold, fed into the group logic.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::net::bond::{BondInfo, SlaveInfo};

#[derive(Arbitrary, Debug)]
struct Slave {
    name: String,
    mii_status: Option<String>,
    state: Option<String>,
    aggregator_id: Option<u32>,
    link_failure_count: Option<u64>,
}

#[derive(Arbitrary, Debug)]
struct Bond {
    mode: String,
    slaves: Vec<Slave>,
    active_slave: Option<String>,
    min_links: u32,
    active_aggregator: Option<u32>,
}

fuzz_target!(|b: Bond| {
    let info = BondInfo {
        name: "bond0".into(),
        mode: b.mode,
        slaves: b
            .slaves
            .into_iter()
            .map(|s| SlaveInfo {
                name: s.name,
                mii_status: s.mii_status,
                state: s.state,
                aggregator_id: s.aggregator_id,
                link_failure_count: s.link_failure_count,
            })
            .collect(),
        active_slave: b.active_slave,
        min_links: b.min_links,
        active_aggregator: b.active_aggregator,
    };
    let g = info.group();
    assert_eq!(g.members.len(), info.slaves.len());
    assert!(g.required >= 1);
});
