//! sparewatch collectors: one module per collector, parsers apart from I/O.
//!
//! Every collector implements [`Collector`] and is listed once in [`COLLECTORS`]; that table
//! becomes the `--collector.<name>` / `--no-collector.<name>` flags, the per-collector flags,
//! and the scheduler's list.

pub mod command;
pub mod error;
pub mod events;
pub mod flags;
pub mod hwmon;
pub mod hwraid;
pub mod ipmi;
pub mod md;
pub mod memory;
pub mod model;
pub mod multipath;
pub mod net;
pub mod one_hot;
pub mod password;
pub mod policy;
pub mod redfish;
pub mod roots;
pub mod safety_net;
pub mod smart;
pub mod topology;
pub mod ups;

use std::time::Duration;

pub use error::{BuildError, CollectError};
pub use events::Wake;
pub use flags::{FlagKind, FlagSpec, FlagValue, Flags};
pub use memory::CollectorMemory;
pub use model::*;
pub use roots::Roots;

/// A source of readings. `collect` may block on I/O: the scheduler runs every collector on
/// its own thread with a timeout, so a hung one only marks itself down.
pub trait Collector: Send + 'static {
    /// One pass: read, parse, and return the groups and raw readings.
    fn collect(&mut self) -> Result<Collection, CollectError>;

    /// Starts kernel event watchers that call `wake` when this collector should re-collect
    /// now. Called once before the first collection. Default: interval polling only.
    fn watch(&mut self, _wake: Wake) -> Result<(), CollectError> {
        Ok(())
    }
}

/// What building a collector may look at.
pub struct BuildContext<'a> {
    pub roots: &'a Roots,
    /// The command line's values of the flags collectors declared ([`flags`]).
    pub flags: &'a Flags,
    /// The `collectors.<name>` section of the config file, if any, without the keys the
    /// scheduler owns (`interval`, `timeout`).
    pub config: Option<&'a serde_norway::Value>,
    /// A one-shot run (`status`, `check`): persisted memory is read, never written.
    pub read_only: bool,
    /// The collector's section of the agent's store (see [`memory`]).
    pub memory: CollectorMemory,
}

/// One row of the collector table.
pub struct CollectorSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub enabled_by_default: bool,
    /// Poll interval when no event arrives (overridable: `collectors.<name>.interval`).
    pub interval: Duration,
    /// Upper bound for one `collect` before the collector is marked down.
    pub timeout: Duration,
    /// Collector-specific flags (`--collector.net.device-include`, `--ipmi.host`, ...).
    pub flags: &'static [FlagSpec],
    pub build: fn(&BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError>,
}

/// The collector table. Order is the order of `status` output and of the docs.
pub static COLLECTORS: &[CollectorSpec] = &[
    CollectorSpec {
        name: "net",
        help: "NIC links, bonds and team devices (sysfs, rtnetlink events, teamdctl)",
        enabled_by_default: true,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        flags: net::FLAGS,
        build: net::build,
    },
    CollectorSpec {
        name: "md",
        help: "Linux software RAID arrays (/proc/mdstat, /sys/block/md*/md, poll() events)",
        enabled_by_default: true,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        flags: md::FLAGS,
        build: md::build,
    },
    CollectorSpec {
        name: "multipath",
        help: "dm-multipath maps (dmsetup status, sysfs, uevents) and NVMe native multipath",
        enabled_by_default: true,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        flags: multipath::FLAGS,
        build: multipath::build,
    },
    CollectorSpec {
        name: "hwmon",
        help: "Fans and PMBus power supplies from hwmon, mains supplies from power_supply (sysfs, uevents)",
        enabled_by_default: true,
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        flags: hwmon::FLAGS,
        build: hwmon::build,
    },
    CollectorSpec {
        name: "smart",
        help: "Disk health from smartctl --json (smartmontools 7); disks at risk mark the RAID members on them",
        enabled_by_default: true,
        // SMART queries take seconds per disk and wake nothing: every 5 minutes is plenty.
        interval: Duration::from_secs(300),
        timeout: Duration::from_secs(120),
        flags: smart::FLAGS,
        build: smart::build,
    },
    CollectorSpec {
        name: "hwraid",
        help: "Hardware RAID virtual drives and their physical drives (storcli/perccli JSON)",
        enabled_by_default: true,
        // storcli takes seconds per call and the controller raises no kernel events.
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(90),
        flags: hwraid::FLAGS,
        build: hwraid::build,
    },
    CollectorSpec {
        name: "ipmi",
        help: "PSUs, power redundancy and fans from the BMC (in-band /dev/ipmi0 or RMCP+)",
        enabled_by_default: true,
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        flags: ipmi::FLAGS,
        build: ipmi::build,
    },
    CollectorSpec {
        name: "redfish",
        help: "PSUs, power redundancy and fans from Redfish BMCs (both schema generations)",
        enabled_by_default: true,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(20),
        flags: redfish::FLAGS,
        build: redfish::build,
    },
    CollectorSpec {
        name: "ups",
        help: "UPSes through NUT's upsd (utility and battery as a redundancy group)",
        enabled_by_default: true,
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        flags: ups::FLAGS,
        build: ups::build,
    },
];

/// Deserializes a collector's config section into its typed config, or its default.
pub fn parse_config<T: serde::de::DeserializeOwned + Default>(
    collector: &'static str,
    config: Option<&serde_norway::Value>,
) -> Result<T, BuildError> {
    match config {
        None => Ok(T::default()),
        Some(v) => serde_norway::from_value(v.clone()).map_err(|e| BuildError::Config {
            collector,
            detail: e.to_string(),
        }),
    }
}

/// Parses a duration as written in the config file and flags: "500ms", "30s", "5m", "1h".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("{s:?}: missing unit (ms, s, m, h, d)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: not a number before the unit"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}
