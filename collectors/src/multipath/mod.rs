//! The `multipath` collector: dm-multipath maps and NVMe native multipath namespaces.
//!
//! dm-multipath: the per-path state that matters is the device-mapper's (`A` usable, `F`
//! failed), which only the DM status carries; it comes from `dmsetup status --target
//! multipath` (fixed arguments, timeout, configurable binary). Paths (`major:minor`) are
//! named through `/sys/dev/block`; maps are found in `/sys/block/dm-*/dm/{name,uuid}`.
//! Without a working `dmsetup`, maps with an `mpath-` uuid are judged from sysfs: each
//! path's SCSI device state (`/sys/block/dm-N/slaves/*/device/state`), plus multipathd's
//! checker when it answers.
//! NVMe: `/sys/class/nvme-subsystem/*`. Kernel uevents (`DM_ACTION=PATH_FAILED` /
//! `PATH_REINSTATED`, nvme controller changes) wake the collector.
//!
//! Size: about 640 lines of code (plus tests): dm-multipath from the DM status, its sysfs
//! fallback and NVMe native multipath share one pass and its readings; their parsers are in
//! [`dmstatus`], [`scsi`], [`checker`] and [`nvme`].

pub mod checker;
pub mod dmstatus;
pub mod nvme;
pub mod scsi;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::FlagSpec;
use serde::Deserialize;

use crate::events::Uevent;
use crate::one_hot::OneHot;
use crate::roots::{list_dir, read_value};
use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, GroupReading, MemberHealth,
    MemberReading, Reading, Role, Roots, Wake,
};
use dmstatus::{BadLine, MapStatus, StatusLines};

/// `collectors.multipath` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathConfig {
    /// Path of `dmsetup`; default: looked up under the root fs in /usr/sbin, /sbin,
    /// /usr/bin, /bin. `--collector.multipath.dmsetup` wins over this.
    #[serde(default)]
    pub dmsetup: Option<PathBuf>,
    /// Upper bound for one `dmsetup` run ("5s"); also bounds the `multipathd` query.
    #[serde(default)]
    pub dmsetup_timeout: Option<String>,
    /// Path of `multipathd`, asked for the path checkers' states when it runs; default:
    /// looked up under the root fs in /usr/sbin, /sbin. Not installed or not running: the
    /// dm states alone decide.
    #[serde(default)]
    pub multipathd: Option<PathBuf>,
}

pub const FLAGS: &[FlagSpec] = &[FlagSpec::text(
    "collector.multipath.dmsetup",
    "PATH",
    "dmsetup binary that reports dm-multipath path states (default: found under --path.rootfs in /usr/sbin, /sbin, /usr/bin, /bin)",
)];

const DEFAULT_DMSETUP_TIMEOUT: Duration = Duration::from_secs(5);

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let mut config: MultipathConfig = crate::parse_config("multipath", ctx.config)?;
    if let Some(p) = ctx.flags.text("multipath", "collector.multipath.dmsetup")? {
        config.dmsetup = Some(PathBuf::from(p));
    }
    let timeout = match &config.dmsetup_timeout {
        Some(s) => crate::parse_duration(s).map_err(|e| BuildError::Config {
            collector: "multipath",
            detail: format!("dmsetup_timeout: {e}"),
        })?,
        None => DEFAULT_DMSETUP_TIMEOUT,
    };
    let mut c = MultipathCollector::new(ctx.roots.clone(), config.dmsetup, timeout);
    c.multipathd = config.multipathd;
    Ok(Box::new(c))
}

pub struct MultipathCollector {
    roots: Roots,
    dmsetup: Option<PathBuf>,
    /// `multipathd` binary (config `multipathd`); `None`: looked up under the root fs.
    pub multipathd: Option<PathBuf>,
    timeout: Duration,
}

/// A dm device as sysfs shows it (`/sys/block/dm-N`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DmDevice {
    /// `dm-0`.
    pub kernel: String,
    pub name: String,
    pub uuid: String,
}

impl DmDevice {
    /// multipath-tools names its maps' uuid `mpath-<wwid>`.
    pub fn is_mpath(&self) -> bool {
        self.uuid.starts_with("mpath-")
    }
}

/// The uevents that should re-collect multipath: a dm path failed or came back, a dm
/// device came, went or was reloaded, an NVMe controller or subsystem changed.
pub fn wants_uevent(ev: &Uevent) -> bool {
    match ev.var("SUBSYSTEM") {
        Some("block") => ev.var("DM_ACTION").is_some() || ev.devpath.contains("/block/dm-"),
        Some("nvme") | Some("nvme-subsystem") => true,
        _ => false,
    }
}

fn link_name(p: &Path) -> Option<String> {
    std::fs::read_link(p)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

impl MultipathCollector {
    pub fn new(roots: Roots, dmsetup: Option<PathBuf>, timeout: Duration) -> Self {
        MultipathCollector {
            roots,
            dmsetup,
            multipathd: None,
            timeout,
        }
    }

    fn dm_devices(&self) -> Result<Vec<DmDevice>, CollectError> {
        let mut out = Vec::new();
        for n in list_dir(&self.roots.sys("block"))? {
            if !n.starts_with("dm-") {
                continue;
            }
            let dm = self.roots.sys("block").join(&n).join("dm");
            out.push(DmDevice {
                name: read_value(&dm.join("name"))?.unwrap_or_default(),
                uuid: read_value(&dm.join("uuid"))?.unwrap_or_default(),
                kernel: n,
            });
        }
        Ok(out)
    }

    fn dmsetup_path(&self) -> Option<PathBuf> {
        self.roots.find_tool(
            self.dmsetup.as_ref(),
            &[
                "usr/sbin/dmsetup",
                "sbin/dmsetup",
                "usr/bin/dmsetup",
                "bin/dmsetup",
            ],
        )
    }

    /// The multipath maps from `dmsetup status --target multipath`, and the lines that did
    /// not parse. `Ok(None)`: dmsetup is not installed (then, and when it fails, maps with
    /// an `mpath-` uuid are judged from sysfs: [`Self::sysfs_fallback`]).
    fn dm_status(&self) -> Result<Option<StatusLines>, CollectError> {
        let Some(bin) = self.dmsetup_path() else {
            return Ok(None);
        };
        let args = ["status", "--target", "multipath"];
        let Some(out) = crate::command::run(&bin, &args, self.timeout)? else {
            return Ok(None);
        };
        let stdout = out.success_stdout(&bin, &args)?;
        Ok(Some(dmstatus::parse_lines(&String::from_utf8_lossy(
            &stdout,
        ))))
    }

    /// Checker state per path device from multipathd; empty when multipathd is not
    /// installed, not running, or answers with an error (the dm state then decides alone).
    fn checker_states(&self) -> Vec<(String, String)> {
        let candidates = ["usr/sbin/multipathd", "sbin/multipathd"];
        let Some(bin) = self.roots.find_tool(self.multipathd.as_ref(), &candidates) else {
            return Vec::new();
        };
        let args = ["show", "paths", "raw", "format", "%d|%T"];
        match crate::command::run(&bin, &args, self.timeout) {
            Ok(Some(out)) if out.status.success() => {
                checker::parse(&String::from_utf8_lossy(&out.stdout))
            }
            Ok(Some(out)) => {
                tracing::debug!(status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "multipathd not answering; dm path states only");
                Vec::new()
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::debug!(error = %e, "multipathd query failed; dm path states only");
                Vec::new()
            }
        }
    }

    /// `major:minor` → block device name through `/sys/dev/block`.
    fn block_name(&self, dev: &str) -> Option<String> {
        link_name(&self.roots.sys("dev/block").join(dev))
    }

    fn map_group(
        &self,
        m: &MapStatus,
        out: &mut Collection,
        sysfs: &[DmDevice],
        checkers: &[(String, String)],
    ) {
        map_info(&m.name, sysfs, &mut out.readings);
        if let Some(q) = m.queue_io() {
            out.readings.push(Reading::gauge(
                "sparewatch_multipath_queue_io",
                "The map's queue_io flag: 1 while the kernel holds I/O back instead of sending it to a path (no path chosen yet, path group initialising, or no usable path with queue_if_no_path).",
                vec![("map", m.name.clone())],
                q as u8 as f64,
            ));
        }
        let active_group = m.active_group();
        let mut g = GroupReading::new(format!("mpath:{}", m.name), "mpath", 1);
        for (i, pg) in m.groups.iter().enumerate() {
            let pg_label = (i + 1).to_string();
            PATH_GROUP_STATE.push(
                &mut out.readings,
                &[("map", m.name.clone()), ("path_group", pg_label.clone())],
                Some(pg.state.as_str()),
            );
            let role = if Some(i) == active_group {
                Role::Active
            } else {
                Role::Standby
            };
            for p in &pg.paths {
                let name = self.block_name(&p.dev).unwrap_or_else(|| p.dev.clone());
                let labels = vec![
                    ("map", m.name.clone()),
                    ("path", name.clone()),
                    ("path_group", pg_label.clone()),
                ];
                out.readings.push(Reading::gauge(
                    "sparewatch_multipath_path_active",
                    "Whether the device-mapper considers the path usable (A = 1) or failed (F = 0).",
                    labels,
                    p.active as u8 as f64,
                ));
                out.readings.push(Reading::counter(
                    "sparewatch_multipath_path_failures_total",
                    "Times the device-mapper failed this path since the map was loaded.",
                    vec![("map", m.name.clone()), ("path", name.clone())],
                    p.fail_count as f64,
                ));
                let chk = checkers
                    .iter()
                    .find(|(d, _)| *d == name)
                    .map(|(_, s)| s.as_str());
                CHECKER_STATE.push(
                    &mut out.readings,
                    &[("map", m.name.clone()), ("path", name.clone())],
                    chk,
                );
                let health = if p.active {
                    checker::health_of_usable_path(chk)
                } else {
                    MemberHealth::Unhealthy("path failed".into())
                };
                let device = if name.contains(':') {
                    None
                } else {
                    Some(name.clone())
                };
                let mut member = MemberReading::new(name, role, health);
                member.device = device;
                g.members.push(member);
            }
        }
        out.groups.push(g);
    }

    /// Groups for the maps whose status line did not parse: their paths (the dm device's
    /// `slaves/` in sysfs) are unknown with the parse error. A line without a readable map
    /// name is charged to every multipath map sysfs shows that the output did not cover.
    /// Returns the errors, for one log line per collection.
    fn unparsed_map_groups(
        &self,
        bad: &[BadLine],
        parsed: &[MapStatus],
        sysfs: &[DmDevice],
        out: &mut Collection,
    ) -> Vec<String> {
        let mut broken: Vec<(String, String)> = bad
            .iter()
            .filter_map(|b| b.map.clone().map(|m| (m, b.error.to_string())))
            .collect();
        let unnamed: Vec<String> = bad
            .iter()
            .filter(|b| b.map.is_none())
            .map(|b| b.error.to_string())
            .collect();
        if !unnamed.is_empty() {
            let why = unnamed.join("; ");
            for d in sysfs.iter().filter(|d| d.is_mpath()) {
                let covered = parsed.iter().any(|m| m.name == d.name)
                    || broken.iter().any(|(n, _)| *n == d.name);
                if !covered {
                    broken.push((d.name.clone(), why.clone()));
                }
            }
        }
        let mut done: Vec<&str> = Vec::new();
        for (name, why) in &broken {
            if done.contains(&name.as_str()) {
                continue;
            }
            done.push(name);
            map_info(name, sysfs, &mut out.readings);
            let mut g = GroupReading::new(format!("mpath:{name}"), "mpath", 1);
            let slaves = sysfs
                .iter()
                .find(|d| d.name == *name)
                .map(|d| list_dir(&self.roots.sys("block").join(&d.kernel).join("slaves")))
                .and_then(Result::ok)
                .unwrap_or_default();
            for p in &slaves {
                let mut m = MemberReading::new(p, Role::Active, MemberHealth::Unknown(why.clone()));
                m.device = Some(p.clone());
                g.members.push(m);
            }
            if g.members.is_empty() {
                g.members.push(MemberReading::new(
                    name,
                    Role::Active,
                    MemberHealth::Unknown(why.clone()),
                ));
            }
            out.groups.push(g);
        }
        let mut errors: Vec<String> = bad
            .iter()
            .map(|b| match &b.map {
                Some(m) => format!("{m}: {}", b.error),
                None => b.error.to_string(),
            })
            .collect();
        errors.dedup();
        errors
    }

    /// Groups for multipath maps (uuid `mpath-*`) from sysfs alone, when `dmsetup` is
    /// absent or failed (`why`): members are the map's `slaves/`, healthy when their SCSI
    /// device is `running` ([`scsi::health`]); the path groups and dm path states are not
    /// known. `sparewatch_multipath_sysfs_fallback` is 1 for these maps.
    fn sysfs_fallback(
        &self,
        maps: &[&DmDevice],
        sysfs: &[DmDevice],
        why: &str,
        out: &mut Collection,
    ) {
        let checkers = self.checker_states();
        tracing::warn!(
            collector = "multipath",
            reason = %why,
            "dm path states unavailable; paths of {} map(s) judged by their SCSI device state in sysfs (install dmsetup or set --collector.multipath.dmsetup)",
            maps.len()
        );
        for d in maps {
            map_info(&d.name, sysfs, &mut out.readings);
            out.readings.push(Reading::gauge(
                "sparewatch_multipath_sysfs_fallback",
                "1 when the map's path health comes from the paths' SCSI device state in sysfs because dmsetup is absent or failed.",
                vec![("map", d.name.clone())],
                1.0,
            ));
            let mut g = GroupReading::new(format!("mpath:{}", d.name), "mpath", 1);
            let slaves_dir = self.roots.sys("block").join(&d.kernel).join("slaves");
            for p in list_dir(&slaves_dir).unwrap_or_default() {
                let state = read_value(&slaves_dir.join(&p).join("device/state"));
                if let Ok(Some(st)) = &state {
                    SCSI_STATE.push(
                        &mut out.readings,
                        &[("map", d.name.clone()), ("path", p.clone())],
                        Some(st.as_str()),
                    );
                }
                let chk = checkers
                    .iter()
                    .find(|(dev, _)| *dev == p)
                    .map(|(_, s)| s.as_str());
                CHECKER_STATE.push(
                    &mut out.readings,
                    &[("map", d.name.clone()), ("path", p.clone())],
                    chk,
                );
                let health = match state {
                    // A SCSI device that takes I/O: multipathd's checker, when it answers,
                    // has the last word (a cut iSCSI session stays "running" for a while).
                    Ok(st) => match scsi::health(st.as_deref()) {
                        MemberHealth::Healthy => checker::health_of_usable_path(chk),
                        h => h,
                    },
                    Err(e) => MemberHealth::Unknown(e.to_string()),
                };
                let health = match health {
                    MemberHealth::Unknown(r) => MemberHealth::Unknown(format!("{r} ({why})")),
                    h => h,
                };
                let mut m = MemberReading::new(&p, Role::Active, health);
                m.device = Some(p.clone());
                g.members.push(m);
            }
            if g.members.is_empty() {
                g.members.push(MemberReading::new(
                    &d.name,
                    Role::Active,
                    MemberHealth::Unknown(format!("no path in sysfs ({why})")),
                ));
            }
            out.groups.push(g);
        }
    }

    /// NVMe namespaces with native multipath: the hidden path devices `nvme<S>c<C>n<N>` in
    /// `/sys/block`, grouped by subsystem and head; subsystem details from
    /// `/sys/class/nvme-subsystem/nvme-subsys<S>`, controller state from
    /// `/sys/class/nvme/nvme<C>`.
    fn nvme_subsystems(&self) -> Result<Vec<nvme::Subsystem>, CollectError> {
        let mut out: Vec<nvme::Subsystem> = Vec::new();
        for entry in list_dir(&self.roots.sys("block"))? {
            let Some(pn) = nvme::PathName::parse(&entry) else {
                continue;
            };
            let sub_name = pn.subsystem_name();
            let i = match out.iter().position(|s| s.name == sub_name) {
                Some(i) => i,
                None => {
                    out.push(self.nvme_subsystem(&sub_name)?);
                    out.len() - 1
                }
            };
            let sub = &mut out[i];
            let ctrl = pn.controller_name();
            if !sub.controllers.iter().any(|c| c.name == ctrl) {
                let dir = self.roots.sys("class/nvme").join(&ctrl);
                sub.controllers.push(nvme::Controller {
                    state: read_value(&dir.join("state"))?,
                    transport: read_value(&dir.join("transport"))?,
                    name: ctrl.clone(),
                });
            }
            let path = nvme::Path {
                ana_state: read_value(&self.roots.sys("block").join(&entry).join("ana_state"))?,
                name: entry,
                controller: ctrl,
            };
            let head = pn.head_name();
            match sub.namespaces.iter_mut().find(|n| n.name == head) {
                Some(ns) => ns.paths.push(path),
                None => sub.namespaces.push(nvme::Namespace {
                    name: head,
                    paths: vec![path],
                }),
            }
        }
        Ok(out)
    }

    fn nvme_subsystem(&self, name: &str) -> Result<nvme::Subsystem, CollectError> {
        let dir = self.roots.sys("class/nvme-subsystem").join(name);
        Ok(nvme::Subsystem {
            name: name.to_string(),
            nqn: read_value(&dir.join("subsysnqn"))?,
            model: read_value(&dir.join("model"))?,
            serial: read_value(&dir.join("serial"))?,
            iopolicy: read_value(&dir.join("iopolicy"))?,
            ..nvme::Subsystem::default()
        })
    }
}

/// `sparewatch_multipath_map_info` of a map, with its uuid and dm device when sysfs has it.
fn map_info(map: &str, sysfs: &[DmDevice], out: &mut Vec<Reading>) {
    let dm = sysfs.iter().find(|d| d.name == map);
    out.push(Reading::gauge(
        "sparewatch_multipath_map_info",
        "A dm-multipath map, its uuid and its dm device.",
        vec![
            ("map", map.to_string()),
            ("uuid", dm.map(|d| d.uuid.clone()).unwrap_or_default()),
            (
                "dm_device",
                dm.map(|d| d.kernel.clone()).unwrap_or_default(),
            ),
        ],
        1.0,
    ));
}

fn nvme_readings(s: &nvme::Subsystem, out: &mut Vec<Reading>) {
    out.push(Reading::gauge(
        "sparewatch_multipath_nvme_subsystem_info",
        "An NVMe subsystem with native multipath namespaces.",
        vec![
            ("subsystem", s.name.clone()),
            ("nqn", s.nqn.clone().unwrap_or_default()),
            ("model", s.model.clone().unwrap_or_default()),
            ("serial", s.serial.clone().unwrap_or_default()),
            ("iopolicy", s.iopolicy.clone().unwrap_or_default()),
        ],
        1.0,
    ));
    for c in &s.controllers {
        CONTROLLER_STATE.push(
            out,
            &[
                ("subsystem", s.name.clone()),
                ("controller", c.name.clone()),
            ],
            c.state.as_deref(),
        );
    }
    for ns in &s.namespaces {
        for p in &ns.paths {
            ANA_STATE.push(
                out,
                &[
                    ("subsystem", s.name.clone()),
                    ("namespace", ns.name.clone()),
                    ("path", p.name.clone()),
                ],
                p.ana_state.as_deref(),
            );
        }
    }
}

const CONTROLLER_STATE: OneHot = OneHot {
    name: "sparewatch_multipath_nvme_controller_state",
    help:
        "State of an NVMe controller (path endpoint): one series per state, the current one is 1.",
    label: "state",
    known: &nvme::CONTROLLER_STATES,
};

const ANA_STATE: OneHot = OneHot {
    name: "sparewatch_multipath_nvme_path_ana_state",
    help: "ANA state of an NVMe namespace path: one series per state, the current one is 1.",
    label: "state",
    known: &nvme::ANA_STATES,
};

const CHECKER_STATE: OneHot = OneHot {
    name: "sparewatch_multipath_path_checker_state",
    help: "multipathd's path checker state (when multipathd runs): one series per state, the current one is 1.",
    label: "state",
    known: &checker::CHECKER_STATES,
};

const SCSI_STATE: OneHot = OneHot {
    name: "sparewatch_multipath_path_scsi_state",
    help: "SCSI device state of a path (device/state), exported while the sysfs fallback judges the map: one series per state, the current one is 1.",
    label: "state",
    known: &scsi::SCSI_STATES,
};

const PATH_GROUP_STATE: OneHot = OneHot {
    name: "sparewatch_multipath_path_group_state",
    help: "State of a path group as the device-mapper reports it: active (in use), enabled (standby), disabled (bypassed).",
    label: "state",
    known: &["active", "enabled", "disabled"],
};

impl Collector for MultipathCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let dm = self.dm_devices()?;
        let mpath_maps: Vec<&DmDevice> = dm.iter().filter(|d| d.is_mpath()).collect();
        // Hand-built maps (dmsetup create, no multipath-tools) have no mpath- uuid: a loaded
        // dm_multipath module is reason enough to ask.
        let module_loaded = self.roots.sys("module/dm_multipath").is_dir();
        let mut c = Collection::present();
        if !mpath_maps.is_empty() || module_loaded {
            let status = match self.dm_status() {
                Ok(Some(status)) => Some(status),
                Ok(None) if mpath_maps.is_empty() => None,
                // dmsetup absent or failing costs the dm path states, not the maps: their
                // paths' SCSI device states in sysfs stand in.
                Ok(None) => {
                    self.sysfs_fallback(&mpath_maps, &dm, "dmsetup was not found", &mut c);
                    None
                }
                Err(e) if !mpath_maps.is_empty() => {
                    self.sysfs_fallback(&mpath_maps, &dm, &e.to_string(), &mut c);
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(status) = status {
                let checkers = if status.maps.is_empty() {
                    Vec::new()
                } else {
                    self.checker_states()
                };
                for m in &status.maps {
                    self.map_group(m, &mut c, &dm, &checkers);
                }
                let errors = self.unparsed_map_groups(&status.bad, &status.maps, &dm, &mut c);
                if !errors.is_empty() {
                    tracing::warn!(
                        collector = "multipath",
                        errors = %errors.join("; "),
                        "{} dmsetup status line(s) could not be parsed; those maps' paths are reported unknown",
                        errors.len()
                    );
                }
            }
        }
        for s in self.nvme_subsystems()? {
            nvme_readings(&s, &mut c.readings);
            c.groups.extend(s.groups());
        }
        if c.groups.is_empty() {
            return Ok(Collection::not_present());
        }
        for g in c.groups.iter_mut().filter(|g| g.kind == "mpath") {
            crate::topology::annotate_block_group(&self.roots, crate::topology::BlockUse::Path, g);
        }
        Ok(c)
    }

    fn watch(&mut self, wake: Wake) -> Result<(), CollectError> {
        crate::events::spawn_uevent_watcher("multipath", wake, wants_uevent)
            .map_err(|e| CollectError::Other(format!("uevents: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(msg: &[u8]) -> Uevent {
        Uevent::parse(msg).unwrap()
    }

    #[test]
    fn uevent_filter() {
        assert!(wants_uevent(&ev(
            b"change@/devices/virtual/block/dm-0\0SUBSYSTEM=block\0DM_ACTION=PATH_FAILED\0DM_PATH=8:16\0"
        )));
        assert!(wants_uevent(&ev(
            b"change@/devices/virtual/block/dm-0\0SUBSYSTEM=block\0DM_ACTION=PATH_REINSTATED\0"
        )));
        assert!(wants_uevent(&ev(
            b"add@/devices/virtual/block/dm-3\0SUBSYSTEM=block\0"
        )));
        assert!(wants_uevent(&ev(
            b"change@/devices/virtual/nvme-fabrics/ctl/nvme1\0SUBSYSTEM=nvme\0NVME_EVENT=connected\0"
        )));
        assert!(!wants_uevent(&ev(
            b"add@/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda\0SUBSYSTEM=block\0"
        )));
        assert!(!wants_uevent(&ev(
            b"add@/devices/virtual/net/veth0\0SUBSYSTEM=net\0"
        )));
    }
}
