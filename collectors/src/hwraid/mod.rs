//! The `hwraid` collector: hardware RAID through Broadcom/LSI `storcli` (or Dell's
//! `perccli`, same JSON): one group `hwraid:c<controller>/v<vd>` per virtual drive.
//!
//! Runs `storcli /call show all J` (controllers, topology, virtual and physical drives),
//! `storcli /call/eall/sall show all J` (each drive's predictive-failure count and SMART
//! alert: a drive the controller expects to fail is at risk), and
//! `storcli /call/eall/sall show rebuild J` only while a drive rebuilds. Members carry
//! the device key `megaraid:<SCSI host>:<device id>` (host from the controller's PCI
//! address in sysfs), the key the `smart` collector uses for the same drive.

pub mod layout;
pub mod storcli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::FlagSpec;
use serde::Deserialize;

use crate::roots::list_dir;
use crate::{BuildContext, BuildError, CollectError, Collection, Collector, Roots};

/// Where storcli/perccli are looked for (under `--path.rootfs`) when no path is configured.
const STORCLI_PATHS: [&str; 11] = [
    "opt/MegaRAID/storcli/storcli64",
    "opt/MegaRAID/storcli/storcli",
    "opt/MegaRAID/perccli/perccli64",
    "opt/MegaRAID/perccli/perccli",
    "opt/lsi/storcli/storcli",
    "usr/sbin/storcli64",
    "usr/sbin/storcli",
    "usr/sbin/perccli64",
    "usr/sbin/perccli",
    "usr/bin/storcli64",
    "usr/bin/storcli",
];

/// `collectors.hwraid` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwraidConfig {
    /// storcli or perccli binary; default: the first of the usual install paths that exists.
    #[serde(default)]
    pub storcli: Option<PathBuf>,
    /// Upper bound for one storcli run (default 30s).
    #[serde(default)]
    pub command_timeout: Option<String>,
    /// Also run `/call/eall/sall show all J` for each drive's predictive-failure count and
    /// SMART alert (default true; one more storcli call per pass).
    #[serde(default)]
    pub drive_details: Option<bool>,
}

pub const FLAGS: &[FlagSpec] = &[FlagSpec::text(
    "collector.hwraid.storcli-path",
    "PATH",
    "storcli or perccli binary [default: /opt/MegaRAID/storcli/storcli64, /usr/sbin/storcli64, … under --path.rootfs]",
)];

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let mut config: HwraidConfig = crate::parse_config("hwraid", ctx.config)?;
    if let Some(p) = ctx.flags.text("hwraid", "collector.hwraid.storcli-path")? {
        config.storcli = Some(PathBuf::from(p));
    }
    let timeout = match &config.command_timeout {
        Some(s) => crate::parse_duration(s).map_err(|e| BuildError::Config {
            collector: "hwraid",
            detail: format!("command_timeout: {e}"),
        })?,
        None => Duration::from_secs(30),
    };
    Ok(Box::new(HwraidCollector {
        roots: ctx.roots.clone(),
        storcli: config.storcli,
        timeout,
        drive_details: config.drive_details.unwrap_or(true),
    }))
}

pub struct HwraidCollector {
    roots: Roots,
    storcli: Option<PathBuf>,
    timeout: Duration,
    drive_details: bool,
}

impl HwraidCollector {
    pub fn new(roots: Roots, storcli: Option<PathBuf>, timeout: Duration) -> Self {
        HwraidCollector {
            roots,
            storcli,
            timeout,
            drive_details: true,
        }
    }

    fn binary(&self) -> Option<PathBuf> {
        self.roots.find_tool(self.storcli.as_ref(), &STORCLI_PATHS)
    }

    /// Runs storcli; `Ok(None)` when it is absent. storcli exits non-zero when a command
    /// fails, with the reason in its JSON: the parser reports it.
    fn run(&self, bin: &Path, args: &[&str]) -> Result<Option<Vec<u8>>, CollectError> {
        let Some(out) = crate::command::run(bin, args, self.timeout)? else {
            return Ok(None);
        };
        if out.status.code().is_none() {
            return Err(CollectError::Command {
                command: format!("{} {}", bin.display(), args.join(" ")),
                detail: format!("killed by a signal ({})", out.status),
            });
        }
        Ok(Some(out.stdout))
    }

    /// The SCSI host number of the controller at this PCI address: the `hostN` entry of
    /// `/sys/bus/pci/devices/<address>/`.
    fn scsi_host(&self, pci: &str) -> Result<Option<u32>, CollectError> {
        Ok(list_dir(&self.roots.sys("bus/pci/devices").join(pci))?
            .iter()
            .find_map(|e| e.strip_prefix("host").and_then(|n| n.parse().ok())))
    }
}

impl Collector for HwraidCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let Some(bin) = self.binary() else {
            return Ok(Collection::not_present());
        };
        let Some(out) = self.run(&bin, &["/call", "show", "all", "J"])? else {
            return Ok(Collection::not_present());
        };
        let show = storcli::parse_show_all(&out)?;
        if show.controllers.is_empty() {
            return Ok(Collection::not_present());
        }
        let rebuilding = show
            .controllers
            .iter()
            .any(|c| c.topology.iter().any(|r| r.state == "Rbld"));
        let mut progress: BTreeMap<u32, BTreeMap<String, f64>> = BTreeMap::new();
        if rebuilding {
            if let Some(out) = self.run(&bin, &["/call/eall/sall", "show", "rebuild", "J"])? {
                for (c, drive, pct) in storcli::parse_rebuild(&out)? {
                    progress.entry(c).or_default().insert(drive, pct);
                }
            }
        }
        let mut details: BTreeMap<u32, BTreeMap<String, storcli::DriveDetail>> = BTreeMap::new();
        if self.drive_details {
            if let Some(out) = self.run(&bin, &["/call/eall/sall", "show", "all", "J"])? {
                for d in storcli::parse_drive_details(&out)? {
                    details
                        .entry(d.controller)
                        .or_default()
                        .insert(d.drive.clone(), d);
                }
            }
        }
        let mut col = Collection::present();
        let empty = BTreeMap::new();
        let no_details = BTreeMap::new();
        for c in &show.controllers {
            // The SCSI host only adds device keys: a listing error costs those, not the VDs.
            let host = match &c.pci_address {
                Some(p) => self.scsi_host(p).unwrap_or_else(|e| {
                    tracing::warn!(controller = c.index, error = %e, "cannot list the controller's PCI device for its SCSI host");
                    None
                }),
                None => None,
            };
            if host.is_none() {
                tracing::debug!(
                    controller = c.index,
                    "no SCSI host found for the controller: its drives carry no device key"
                );
            }
            let x = layout::Extra {
                host,
                rebuild: progress.get(&c.index).unwrap_or(&empty),
                details: details.get(&c.index).unwrap_or(&no_details),
            };
            col.groups.extend(layout::groups(c, &x));
            layout::readings(c, &x, &mut col.readings);
        }
        Ok(col)
    }
}
