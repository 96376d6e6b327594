//! The `smart` collector: disk health from smartmontools (`smartctl --json`, version 7+).
//!
//! It forms no groups of its own: a disk at risk (SMART failing, prefail attribute at its
//! threshold, NVMe critical warning, reallocated/pending sectors, media errors) becomes a
//! [`crate::DeviceRisk`], and the engine marks every member built on that disk (an md
//! member, a hardware-RAID drive) at risk, so its group is at least `degraded`.
//!
//! Disks are queried with `-n standby`: a sleeping disk is never spun up; its last known
//! report is kept. SMART queries are slow (seconds per disk), hence the long interval.

pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::FlagSpec;
use serde::Deserialize;

use crate::roots::list_dir;
use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, DeviceRisk, Reading, Roots,
};
use report::{DiskReport, Limits, Location, ScanDevice};

/// Where smartctl is looked for (under `--path.rootfs`) when no path is configured.
const SMARTCTL_PATHS: [&str; 4] = [
    "usr/sbin/smartctl",
    "usr/bin/smartctl",
    "usr/local/sbin/smartctl",
    "sbin/smartctl",
];

/// `collectors.smart` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmartConfig {
    /// smartctl binary; default: the first of [`SMARTCTL_PATHS`] under the root prefix.
    pub smartctl: Option<PathBuf>,
    /// `open` (`--scan-open`: also finds drives behind RAID controllers) or `plain` (`--scan`).
    pub scan: ScanMode,
    /// Devices to query instead of scanning.
    pub devices: Vec<DeviceConfig>,
    /// Upper bound for one smartctl run.
    #[serde(with = "duration_str")]
    pub command_timeout: Duration,
    /// A disk with more reallocated sectors (ATA 5) or SCSI grown defects is at risk.
    pub max_reallocated_sectors: u64,
    /// A disk with more pending (ATA 197) or offline-uncorrectable (ATA 198) sectors is at risk.
    pub max_pending_sectors: u64,
    /// An NVMe device with more media errors is at risk.
    pub max_media_errors: u64,
}

impl Default for SmartConfig {
    fn default() -> Self {
        let l = Limits::default();
        SmartConfig {
            smartctl: None,
            scan: ScanMode::Open,
            devices: Vec::new(),
            command_timeout: Duration::from_secs(30),
            max_reallocated_sectors: l.reallocated_sectors,
            max_pending_sectors: l.pending_sectors,
            max_media_errors: l.media_errors,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    Open,
    Plain,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// `/dev/sda`, `/dev/bus/0`.
    pub name: String,
    /// smartctl's `-d` type (`sat`, `nvme`, `megaraid,12`); default `auto`.
    #[serde(default = "auto", rename = "type")]
    pub dtype: String,
}

fn auto() -> String {
    "auto".into()
}

mod duration_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        crate::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

pub const FLAGS: &[FlagSpec] = &[FlagSpec::text(
    "collector.smart.smartctl-path",
    "PATH",
    "smartctl binary (smartmontools 7 or later) [default: /usr/sbin/smartctl, /usr/bin/smartctl, … under --path.rootfs]",
)];

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let mut config: SmartConfig = crate::parse_config("smart", ctx.config)?;
    if let Some(p) = ctx.flags.text("smart", "collector.smart.smartctl-path")? {
        config.smartctl = Some(PathBuf::from(p));
    }
    Ok(Box::new(SmartCollector::new(ctx.roots.clone(), config)))
}

pub struct SmartCollector {
    roots: Roots,
    config: SmartConfig,
    /// The last full report per device (by display id), kept while the disk sleeps.
    last: BTreeMap<String, DiskReport>,
}

/// One queried device, ready to export.
struct Disk {
    /// Display id and `device` label: `sdb`, `nvme0`, `megaraid:0:12`.
    id: String,
    name: String,
    dtype: String,
    /// The [`DeviceRisk`] keys this disk stands for (its namespaces, for an NVMe controller).
    keys: Vec<String>,
    report: DiskReport,
    /// The report is the last one before the disk went to sleep.
    stale: bool,
    /// This collection's smartctl query answered with a report that parsed. When not, the
    /// report is the disk's last good one (if any): its risk marks stay.
    query_ok: bool,
    /// smartctl's exit status of this query, when it ran to an exit.
    exit_status: Option<i32>,
}

impl SmartCollector {
    pub fn new(roots: Roots, config: SmartConfig) -> Self {
        SmartCollector {
            roots,
            config,
            last: BTreeMap::new(),
        }
    }

    fn smartctl(&self) -> Option<PathBuf> {
        self.roots
            .find_tool(self.config.smartctl.as_ref(), &SMARTCTL_PATHS)
    }

    fn limits(&self) -> Limits {
        Limits {
            reallocated_sectors: self.config.max_reallocated_sectors,
            pending_sectors: self.config.max_pending_sectors,
            media_errors: self.config.max_media_errors,
        }
    }

    /// Runs smartctl; `Ok(None)` when the binary is absent.
    fn run(
        &self,
        bin: &std::path::Path,
        args: &[&str],
    ) -> Result<Option<(Vec<u8>, i32)>, CollectError> {
        let Some(out) = crate::command::run(bin, args, self.config.command_timeout)? else {
            return Ok(None);
        };
        let code = out.status.code().ok_or_else(|| CollectError::Command {
            command: format!("{} {}", bin.display(), args.join(" ")),
            detail: format!("killed by a signal ({})", out.status),
        })?;
        Ok(Some((out.stdout, code)))
    }

    fn devices(&self, bin: &std::path::Path) -> Result<Option<Vec<ScanDevice>>, CollectError> {
        if !self.config.devices.is_empty() {
            return Ok(Some(
                self.config
                    .devices
                    .iter()
                    .map(|d| ScanDevice {
                        name: d.name.clone(),
                        dtype: d.dtype.clone(),
                    })
                    .collect(),
            ));
        }
        let scan = match self.config.scan {
            ScanMode::Open => "--scan-open",
            ScanMode::Plain => "--scan",
        };
        let Some((out, code)) = self.run(bin, &["--json=c", scan])? else {
            return Ok(None);
        };
        if code & report::exit_bits::CMDLINE != 0 {
            return Err(CollectError::Command {
                command: format!("{} --json=c {scan}", bin.display()),
                detail: format!(
                    "exit status {code}: {}",
                    String::from_utf8_lossy(&out).trim()
                ),
            });
        }
        report::parse_scan(&out).map(Some)
    }

    /// The `/sys/class/block/<dev>/device` link's SCSI address gives the host number.
    fn scsi_host_of(&self, name: &str) -> Option<u32> {
        let dev = name.rsplit('/').next()?;
        let link =
            std::fs::read_link(self.roots.sys("class/block").join(dev).join("device")).ok()?;
        report::scsi_address_host(&link.file_name()?.to_string_lossy())
    }

    /// The namespaces (`nvme0n1`) of an NVMe controller (`nvme0`): its own, and those of its
    /// subsystem when native multipath names them after the subsystem.
    fn nvme_namespaces(&self, ctrl: &str) -> Result<Vec<String>, CollectError> {
        let is_ns = |n: &str| {
            n.strip_prefix("nvme").is_some_and(|rest| {
                rest.split_once('n').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                })
            })
        };
        let mut out: Vec<String> = list_dir(&self.roots.sys("class/nvme").join(ctrl))?
            .into_iter()
            .filter(|n| is_ns(n))
            .collect();
        let subsystems = self.roots.sys("class/nvme-subsystem");
        for s in list_dir(&subsystems)? {
            let entries = list_dir(&subsystems.join(&s))?;
            if entries.iter().any(|e| e == ctrl) {
                out.extend(entries.into_iter().filter(|n| is_ns(n)));
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            out.push(format!("{ctrl}n1"));
        }
        Ok(out)
    }

    fn identify(&self, d: &ScanDevice) -> Result<(String, Vec<String>), CollectError> {
        Ok(match report::locate(&d.name, &d.dtype) {
            Location::Disk(k) => (k.clone(), vec![k]),
            Location::NvmeController(c) => {
                let ns = self.nvme_namespaces(&c)?;
                (c, ns)
            }
            Location::Megaraid { name, did } => {
                let host = report::bus_host(&name).or_else(|| self.scsi_host_of(&name));
                match host {
                    Some(h) => {
                        let k = report::megaraid_key(h, did);
                        (k.clone(), vec![k])
                    }
                    // Without the host number the key would not match the hwraid member.
                    None => (format!("megaraid:?:{did}"), Vec::new()),
                }
            }
            Location::Cciss { name, index } => {
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                let k = format!("cciss:{base}:{index}");
                (k.clone(), vec![k])
            }
        })
    }
}

fn dev(id: &str) -> Vec<(&'static str, String)> {
    vec![("device", id.to_string())]
}

/// Risk marks for every key of a disk with reasons.
fn push_risks(d: &Disk, why: &[String], out: &mut Vec<DeviceRisk>) {
    if why.is_empty() {
        return;
    }
    for k in &d.keys {
        out.push(DeviceRisk {
            device: k.clone(),
            reason: format!("SMART: {}", why.join("; ")),
        });
    }
}

/// Readings every queried disk has, whether its query answered or not.
fn query_readings(d: &Disk, at_risk: bool, out: &mut Vec<Reading>) {
    out.push(Reading::gauge(
        "sparewatch_smart_device_query_ok",
        "Whether the disk's last smartctl query answered with output that parsed (0: killed, timed out or unparsable; its last good report's risk is kept).",
        dev(&d.id),
        d.query_ok as u8 as f64,
    ));
    if !d.query_ok {
        out.push(Reading::gauge(
            "sparewatch_smart_at_risk",
            "Whether the disk is at risk (failing SMART, threshold or counter, NVMe critical warning).",
            dev(&d.id),
            at_risk as u8 as f64,
        ));
    }
}

fn disk_readings(d: &Disk, at_risk: bool, out: &mut Vec<Reading>) {
    let r = &d.report;
    out.push(Reading::gauge(
        "sparewatch_smart_device_info",
        "A disk smartctl reports on: its smartctl name and type, model, serial and firmware.",
        vec![
            ("device", d.id.clone()),
            ("name", d.name.clone()),
            ("type", d.dtype.clone()),
            ("protocol", r.protocol.clone().unwrap_or_default()),
            ("model", r.model.clone().unwrap_or_default()),
            ("serial", r.serial.clone().unwrap_or_default()),
            ("firmware", r.firmware.clone().unwrap_or_default()),
        ],
        1.0,
    ));
    if let Some(code) = d.exit_status {
        out.push(Reading::gauge(
            "sparewatch_smart_exit_status",
            "smartctl's exit status bits for the disk's last query (see man smartctl, EXIT STATUS).",
            dev(&d.id),
            code as f64,
        ));
    }
    out.push(Reading::gauge(
        "sparewatch_smart_standby",
        "Whether the disk was asleep at the last query (not spun up; the values are from before).",
        dev(&d.id),
        d.stale as u8 as f64,
    ));
    out.push(Reading::gauge(
        "sparewatch_smart_at_risk",
        "Whether the disk is at risk (failing SMART, threshold or counter, NVMe critical warning).",
        dev(&d.id),
        at_risk as u8 as f64,
    ));
    if let Some(p) = r.passed {
        out.push(Reading::gauge(
            "sparewatch_smart_health_passed",
            "SMART overall-health self-assessment: 1 passed, 0 failed.",
            dev(&d.id),
            p as u8 as f64,
        ));
    }
    let gauges: [(&'static str, &'static str, Option<f64>); 10] = [
        (
            "sparewatch_smart_temperature_celsius",
            "Current drive temperature.",
            r.temperature_celsius,
        ),
        (
            "sparewatch_smart_power_on_seconds",
            "Power-on time reported by the drive.",
            r.power_on_hours.map(|h| h * 3600.0),
        ),
        (
            "sparewatch_smart_reallocated_sectors",
            "Reallocated sectors (ATA attribute 5, raw value).",
            r.reallocated_sectors.map(|v| v as f64),
        ),
        (
            "sparewatch_smart_pending_sectors",
            "Sectors waiting to be remapped (ATA attribute 197, raw value).",
            r.pending_sectors.map(|v| v as f64),
        ),
        (
            "sparewatch_smart_offline_uncorrectable_sectors",
            "Uncorrectable sectors found offline (ATA attribute 198, raw value).",
            r.offline_uncorrectable.map(|v| v as f64),
        ),
        (
            "sparewatch_smart_scsi_grown_defects",
            "Entries in the SCSI grown defect list.",
            r.scsi_grown_defects.map(|v| v as f64),
        ),
        (
            "sparewatch_smart_nvme_critical_warning",
            "NVMe critical warning bit field (0 = none).",
            r.nvme_critical_warning.map(|v| v as f64),
        ),
        (
            "sparewatch_smart_nvme_media_errors",
            "NVMe media and data integrity errors.",
            r.nvme_media_errors.map(|v| v as f64),
        ),
        (
            "sparewatch_smart_nvme_available_spare_ratio",
            "NVMe available spare capacity (0..1).",
            r.nvme_available_spare.map(|v| v / 100.0),
        ),
        (
            "sparewatch_smart_nvme_percentage_used_ratio",
            "NVMe endurance used, vendor estimate (1 = rated life reached; may exceed 1).",
            r.nvme_percentage_used.map(|v| v / 100.0),
        ),
    ];
    for (name, help, v) in gauges {
        if let Some(v) = v {
            out.push(Reading::gauge(name, help, dev(&d.id), v));
        }
    }
    if let Some(t) = &r.last_selftest {
        out.push(Reading::gauge(
            "sparewatch_smart_selftest_last_result",
            "The newest entry of the disk's self-test log: its test and result (passed, failed, aborted, in_progress, unknown). A failed newest test makes the disk at risk.",
            vec![
                ("device", d.id.clone()),
                ("test", t.test.clone()),
                ("result", t.result.as_str().to_string()),
            ],
            1.0,
        ));
        if let Some(h) = t.power_on_hours_ago {
            out.push(Reading::gauge(
                "sparewatch_smart_selftest_last_age_power_on_seconds",
                "Power-on time of the disk since its newest self-test ran (the drive logs power-on hours, not wall time).",
                dev(&d.id),
                h as f64 * 3600.0,
            ));
        }
    }
}

impl Collector for SmartCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let Some(bin) = self.smartctl() else {
            return Ok(Collection::not_present());
        };
        let Some(devices) = self.devices(&bin)? else {
            return Ok(Collection::not_present());
        };
        // No disk at all (a VM, a box with only unsupported devices): nothing to report on.
        if devices.is_empty() {
            return Ok(Collection::not_present());
        }
        let mut disks = Vec::new();
        for d in &devices {
            let (id, keys) = self.identify(d)?;
            // One disk's failed query (killed, timed out, unparsable output) is that disk's
            // problem: it is exported per disk and never takes the other disks' marks along.
            let args = ["--json=c", "-a", "-n", "standby", "-d", &d.dtype, &d.name];
            let queried = match self.run(&bin, &args) {
                Ok(None) => return Ok(Collection::not_present()),
                Ok(Some((out, code))) => report::parse_report(&out, code)
                    .map(|r| (r, code))
                    .map_err(|e| match e {
                        CollectError::Parse { detail, .. } => {
                            CollectError::parse(format!("smartctl output for {}", d.name), detail)
                        }
                        other => other,
                    }),
                Err(e) => Err(e),
            };
            let disk = |report, stale, query_ok, exit_status| Disk {
                id: id.clone(),
                name: d.name.clone(),
                dtype: d.dtype.clone(),
                keys: keys.clone(),
                report,
                stale,
                query_ok,
                exit_status,
            };
            match queried {
                Ok((report, code)) => disks.push(disk(report, false, true, Some(code))),
                Err(e) => {
                    tracing::warn!(device = %d.name, error = %e, "smartctl query failed; keeping the disk's last report");
                    let prev = self.last.get(&id).cloned().unwrap_or_default();
                    disks.push(disk(prev, false, false, None));
                }
            }
        }
        let mut c = Collection::present();
        let limits = self.limits();
        for d in &mut disks {
            if !d.query_ok {
                let why = report::risk_reasons(&d.report, &limits);
                query_readings(d, !why.is_empty(), &mut c.readings);
                push_risks(d, &why, &mut c.device_risks);
                continue;
            }
            // A sleeping disk's values are those of its last report (exit status: this query).
            if d.report.standby {
                if let Some(prev) = self.last.get(&d.id) {
                    d.report = prev.clone();
                }
                d.stale = true;
            } else if d.report.open_failed.is_none() {
                self.last.insert(d.id.clone(), d.report.clone());
            }
            // A sleeping disk never seen awake says nothing: no reasons.
            let why = report::risk_reasons(&d.report, &limits);
            if let Some(e) = &d.report.open_failed {
                tracing::warn!(device = %d.name, error = %e, "smartctl could not query the device");
            }
            query_readings(d, !why.is_empty(), &mut c.readings);
            disk_readings(d, !why.is_empty(), &mut c.readings);
            push_risks(d, &why, &mut c.device_risks);
        }
        Ok(c)
    }

    /// A disk added or removed (hot-plug, a replaced RAID member appearing) triggers a new
    /// scan at once; SMART values themselves raise no event and are polled.
    fn watch(&mut self, wake: crate::Wake) -> Result<(), CollectError> {
        crate::events::spawn_uevent_watcher("smart", wake, disk_added_or_removed)
            .map_err(|e| CollectError::Other(format!("uevents: {e}")))
    }
}

/// Whole disks appearing or going (`SUBSYSTEM=block`, `DEVTYPE=disk`, add/remove).
pub fn disk_added_or_removed(ev: &crate::events::Uevent) -> bool {
    ev.var("SUBSYSTEM") == Some("block")
        && ev.var("DEVTYPE") == Some("disk")
        && matches!(ev.action.as_str(), "add" | "remove")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Uevent;

    #[test]
    fn wakes_on_disks_coming_and_going_only() {
        let ev = |msg: &[u8]| Uevent::parse(msg).expect("uevent");
        assert!(disk_added_or_removed(&ev(
            b"add@/devices/pci0000:00/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0/block/sdc\0ACTION=add\0SUBSYSTEM=block\0DEVTYPE=disk\0DEVNAME=sdc\0"
        )));
        assert!(disk_added_or_removed(&ev(
            b"remove@/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1\0ACTION=remove\0SUBSYSTEM=block\0DEVTYPE=disk\0"
        )));
        assert!(!disk_added_or_removed(&ev(
            b"change@/devices/virtual/block/md0\0ACTION=change\0SUBSYSTEM=block\0DEVTYPE=disk\0"
        )));
        assert!(!disk_added_or_removed(&ev(
            b"add@/devices/x/block/sdc/sdc1\0ACTION=add\0SUBSYSTEM=block\0DEVTYPE=partition\0"
        )));
    }
}
