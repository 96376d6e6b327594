//! `sparewatch demo`: the real agent against a simulated server.
//!
//! A sysfs/procfs tree in a temporary directory is read by the same collectors as on real
//! hardware; a story thread breaks and repairs parts every few seconds and wakes the
//! collectors, so metrics, the status page, `status`, dashboards and alerts all move.

pub mod hwmon;
pub mod power;
pub mod storage;

use std::io;
use std::time::Duration;

use anyhow::Context;

use crate::cli::Parsed;
use crate::fixture::SysTree;

/// One step of the story: what happens, and how the simulated server changes.
pub struct Step {
    pub says: &'static str,
    pub apply: fn(&SysTree) -> io::Result<()>,
}

/// The simulated server at the start: everything redundant.
pub fn build_server(t: &SysTree) -> io::Result<()> {
    for nic in ["eth0", "eth1", "eth2", "eth3"] {
        t.nic(nic)?;
    }
    t.bond("bond0", "active-backup 1", &["eth0", "eth1"], 0)?;
    t.bond("bond1", "802.3ad 4", &["eth2", "eth3"], 1)?;
    crate::demo_storage::build(t)?;
    crate::demo_hwmon::build(t)?;
    crate::demo_power::build(t)?;
    Ok(())
}

/// The story, played in a loop. Each later collector adds its kinds here.
pub const STORY: &[Step] = &[
    Step {
        says: "bond0: the standby link eth1 loses carrier — still working, but no spare left",
        apply: |t| t.link("eth1", false),
    },
    Step {
        says: "bond0: eth1 is back — redundant again after the hold-down",
        apply: |t| t.link("eth1", true),
    },
    Step {
        says: "bond0: the active link eth0 fails; the bond fails over to eth1",
        apply: |t| {
            t.link("eth0", false)?;
            t.set_active_slave("bond0", "eth1")
        },
    },
    Step {
        says: "bond0: eth0 is repaired and becomes the standby",
        apply: |t| t.link("eth0", true),
    },
    Step {
        says: "bond1 (802.3ad): eth3 is up but falls out of the active aggregator (switch misconfigured)",
        apply: |t| t.set_aggregator("eth3", 2),
    },
    Step {
        says: "bond1: eth3 rejoins the active aggregator",
        apply: |t| t.set_aggregator("eth3", 1),
    },
    Step {
        says: "bond0: both links lose carrier — the function is lost (failed)",
        apply: |t| {
            t.link("eth0", false)?;
            t.link("eth1", false)?;
            t.bond_carrier("bond0", false)
        },
    },
    Step {
        says: "bond0: both links are back",
        apply: |t| {
            t.link("eth0", true)?;
            t.link("eth1", true)?;
            t.bond_carrier("bond0", true)?;
            t.set_active_slave("bond0", "eth0")
        },
    },
    Step {
        says: "md0 (RAID1): sdb1 fails — the mirror runs on its last disk (no redundancy)",
        apply: |t| crate::demo_storage::md0(t, crate::demo_storage::Md0::Sdb1Failed),
    },
    Step {
        says: "md0: sdb1 is replaced and rebuilding — not redundant until the rebuild is done",
        apply: |t| crate::demo_storage::md0(t, crate::demo_storage::Md0::Sdb1Rebuilding),
    },
    Step {
        says: "md0: the rebuild finished — redundant again",
        apply: |t| crate::demo_storage::md0(t, crate::demo_storage::Md0::Healthy),
    },
    Step {
        says: "mpatha: the standby path sdc fails — I/O still flows over sdb, no spare path left",
        apply: |t| crate::demo_storage::mpatha(t, false, 1),
    },
    Step {
        says: "mpatha: sdc is reinstated",
        apply: |t| crate::demo_storage::mpatha(t, true, 1),
    },
    Step {
        says: "fan:nct6775: SYS_FAN1 stops — two fans left, no spare fan",
        apply: |t| crate::demo_hwmon::fan(t, false),
    },
    Step {
        says: "fan:nct6775: SYS_FAN1 is replaced and spins again",
        apply: |t| crate::demo_hwmon::fan(t, true),
    },
    Step {
        says: "psu:pmbus: PSU pmbus@7-0059 loses AC input — the server runs on one PSU",
        apply: |t| crate::demo_hwmon::psu(t, false),
    },
    Step {
        says: "psu:pmbus: AC is back on pmbus@7-0059",
        apply: |t| crate::demo_hwmon::psu(t, true),
    },
    Step {
        says: "Redfish BMC psu:1: PSU2 loses its input — running on PSU1 alone",
        apply: |t| crate::demo_power::redfish_psu(t, false),
    },
    Step {
        says: "Redfish BMC psu:1: PSU2 has input again",
        apply: |t| crate::demo_power::redfish_psu(t, true),
    },
    Step {
        says: "UPS ups:ups-a: utility power lost — the UPS runs on battery (no redundancy)",
        apply: |t| crate::demo_power::ups(t, true),
    },
    Step {
        says: "UPS ups:ups-a: utility power is back, the UPS is on line",
        apply: |t| crate::demo_power::ups(t, false),
    },
];

/// Runs the demo until SIGTERM/Ctrl-C.
pub fn run(parsed: &Parsed, step: Duration) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("sparewatch-demo-")
        .tempdir()
        .context("creating the demo's temporary directory")?;
    let tree = SysTree::new(dir.path()).context("creating the simulated server")?;
    build_server(&tree).context("creating the simulated server")?;
    let roots = sparewatch_collectors::Roots::under(dir.path());
    let mut setup = crate::app::setup(parsed, &roots)?;
    // The power layer's BMC and UPS server, on loopback, for the real collectors.
    let power =
        crate::demo_power::start(dir.path()).context("starting the demo's BMC and UPS server")?;
    for (job, _) in &mut setup.jobs {
        match job.name {
            "redfish" => {
                job.collector = Box::new(
                    sparewatch_collectors::redfish::RedfishCollector::new(vec![
                        sparewatch_collectors::redfish::BmcSpec {
                            name: "demo-bmc".into(),
                            group_prefix: String::new(),
                            url: power.redfish_url.clone(),
                            user: None,
                            password: sparewatch_collectors::password::Password::None,
                            trust: None,
                            timeout: Duration::from_secs(2),
                            retries: 0,
                        },
                    ])
                    .map_err(anyhow::Error::msg)?,
                )
            }
            "ups" => {
                job.collector = Box::new(sparewatch_collectors::ups::UpsCollector::new(
                    vec![power.nut_address.clone()],
                    false,
                    sparewatch_collectors::ups::Settings {
                        user: None,
                        password: sparewatch_collectors::password::Password::None,
                        timeout: Duration::from_secs(2),
                        limits: Default::default(),
                        feeds: Default::default(),
                    },
                ))
            }
            _ => {}
        }
    }
    // Kernel events do not exist for a simulated tree: poll it fast instead.
    for (job, info) in &mut setup.jobs {
        job.interval = Duration::from_secs(1);
        info.interval = job.interval;
    }
    if parsed.cli.common.hold_down.is_none() {
        setup.engine_config.hold_down = Duration::from_secs(5);
    }
    let agent = crate::app::start(setup, Some(crate::host::HostInfo::detect()), true)?;
    tracing::info!(tree = %dir.path().display(), "demo: simulated server ready; story step every {step:?}");
    let wakes = agent.wakes.clone();
    std::thread::Builder::new()
        .name("demo-story".into())
        .spawn(move || {
            for s in STORY.iter().cycle() {
                std::thread::sleep(step);
                tracing::info!("demo: {}", s.says);
                if let Err(e) = (s.apply)(&tree) {
                    tracing::error!(error = %e, "demo step failed");
                }
                for (_, w) in &wakes {
                    w.wake();
                }
            }
        })
        .context("starting the demo story")?;
    let r = crate::app::serve_agent(&parsed.cli.common, &agent);
    drop(dir);
    r
}
