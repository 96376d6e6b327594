//! Failure domains: what members of a redundancy group share, so that one failure takes
//! several of them down (docs/failure-domains.md).
//!
//! Collectors call in here once per group they build ([`annotate_net_group`],
//! [`annotate_block_group`], [`annotate_psu_feeds`]); the parsers live in [`sysfs`] and
//! [`lldp`], pure on `&str`, and the power capacity check in [`power`]. A domain that applies
//! but cannot be resolved is recorded as `unknown` ([`FailureDomain::unknown`]): never taken
//! for independent, never for shared. A missing sysfs link or a malformed LLDP answer costs
//! only that member's domain.

pub mod lldp;
pub mod power;
pub mod sysfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::roots::read_attr;
use crate::{FailureDomain, GroupReading, Roots};

pub use lldp::Neighbour;

pub const CARD: &str = "card";
pub const SWITCH: &str = "switch";
pub const HBA: &str = "hba";
pub const FABRIC: &str = "fabric";
pub const CONTROLLER: &str = "controller";
pub const DISK: &str = "disk";
pub const ENCLOSURE: &str = "enclosure";
pub const FEED: &str = "feed";

/// Every domain kind, in the order the docs list them.
pub const KINDS: [&str; 8] = [CARD, SWITCH, HBA, FABRIC, CONTROLLER, DISK, ENCLOSURE, FEED];

/// `collectors.net.lldp` in the config file: where the agent asks lldpd for neighbours.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LldpConfig {
    /// Ask lldpd at all (default true). Off: every link's `switch` domain is unknown.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Path of `lldpcli`; default: looked up in /usr/sbin and /usr/bin.
    #[serde(default)]
    pub lldpcli: Option<PathBuf>,
    /// lldpd's control socket (`lldpcli -u`); default: lldpd's own default.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

impl Default for LldpConfig {
    fn default() -> Self {
        LldpConfig {
            enabled: true,
            lldpcli: None,
            socket: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// Neighbours per local interface from lldpd; `None` when lldpd is not asked, not
/// installed, or does not answer (then `switch` domains are unknown, and nothing fails).
pub fn lldp_neighbours(
    roots: &Roots,
    config: &LldpConfig,
) -> Option<BTreeMap<String, Vec<Neighbour>>> {
    if !config.enabled {
        return None;
    }
    let cli = roots.find_tool(
        config.lldpcli.as_ref(),
        &["usr/sbin/lldpcli", "usr/bin/lldpcli", "sbin/lldpcli"],
    )?;
    let socket = config.socket.as_ref().map(|s| s.display().to_string());
    let mut args: Vec<&str> = Vec::new();
    if let Some(s) = &socket {
        args.extend(["-u", s.as_str()]);
    }
    args.extend(["-f", "json0", "show", "neighbors", "details"]);
    let out = match crate::command::run(&cli, &args, Duration::from_secs(3)) {
        Ok(Some(o)) => o,
        Ok(None) => return None,
        Err(e) => {
            tracing::debug!(error = %e, "lldpcli");
            return None;
        }
    };
    let stdout = match out.success_stdout(&cli, &args) {
        Ok(s) => s,
        Err(e) => {
            // lldpd not running: lldpcli cannot connect. Normal on hosts without it.
            tracing::debug!(error = %e, "lldpcli");
            return None;
        }
    };
    match lldp::parse_neighbours(&String::from_utf8_lossy(&stdout)) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot parse lldpcli output; switch domains unknown");
            None
        }
    }
}

fn resolved(p: &Path) -> Option<String> {
    std::fs::canonicalize(p)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn attr(p: &Path) -> Option<String> {
    read_attr(p)
        .ok()
        .and_then(|a| a.value().map(|v| v.trim().to_string()))
        .filter(|v| !v.is_empty())
}

/// The domains of one network interface: its card (PCI slot without the function; the
/// `phys_switch_id`/`phys_port_id` the driver sets) and its switch (LLDP chassis ID).
pub fn net_domains(
    roots: &Roots,
    ifname: &str,
    lldp: Option<&BTreeMap<String, Vec<Neighbour>>>,
) -> Vec<FailureDomain> {
    let dir = roots.sys("class/net").join(ifname);
    let mut out = Vec::new();
    let device = dir.join("device");
    if device.exists() {
        // Hardware behind it: a card we can name, or one we cannot.
        out.push(
            match resolved(&device).and_then(|p| sysfs::card_of_path(&p)) {
                Some(card) => FailureDomain::new(CARD, card),
                None => FailureDomain::unknown(CARD),
            },
        );
    }
    if let Some(id) = attr(&dir.join("phys_switch_id")) {
        out.push(FailureDomain::new(CARD, format!("switch-id:{id}")));
    }
    if let Some(id) = attr(&dir.join("phys_port_id")) {
        out.push(FailureDomain::new(CARD, format!("port-id:{id}")));
    }
    let neighbours = lldp.and_then(|m| m.get(ifname)).filter(|n| !n.is_empty());
    match neighbours {
        Some(n) => out.extend(n.iter().map(|n| FailureDomain::new(SWITCH, n.switch_id()))),
        None => out.push(FailureDomain::unknown(SWITCH)),
    }
    out
}

/// Adds card and switch domains to every member of a bond/team/link group.
pub fn annotate_net_group(
    roots: &Roots,
    lldp: Option<&BTreeMap<String, Vec<Neighbour>>>,
    g: &mut GroupReading,
) {
    for m in &mut g.members {
        if roots.sys("class/net").join(&m.name).exists() {
            let d = net_domains(roots, &m.name, lldp);
            m.add_domains(d);
        }
    }
}

/// What a block member is for: its domains differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockUse {
    /// A mirror/RAID member: its disk, HBA and enclosure matter.
    RaidMember,
    /// A multipath path: all paths reach one LUN by design, so the disk is not a domain;
    /// the HBA, fabric and array controller are.
    Path,
}

/// The sysfs directory of a block device named `sdb1` or `8:17`.
fn block_dir(roots: &Roots, name: &str) -> PathBuf {
    if name.contains(':') {
        roots.sys("dev/block").join(name)
    } else {
        roots.sys("class/block").join(name)
    }
}

/// Enclosure slots: resolved SCSI device path → enclosure id (`/sys/class/enclosure/*/*/device`).
fn enclosure_map(roots: &Roots) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let class = roots.sys("class/enclosure");
    for enc in crate::roots::list_dir(&class).unwrap_or_default() {
        let dir = class.join(&enc);
        let id = attr(&dir.join("id")).unwrap_or_else(|| enc.clone());
        for slot in crate::roots::list_dir(&dir).unwrap_or_default() {
            if let Some(dev) = resolved(&dir.join(&slot).join("device")) {
                out.insert(dev, id.clone());
            }
        }
    }
    out
}

/// The domains of one block device.
pub fn block_domains(
    roots: &Roots,
    name: &str,
    usage: BlockUse,
    enclosures: &BTreeMap<String, String>,
) -> Vec<FailureDomain> {
    let dir = block_dir(roots, name);
    let mut out = Vec::new();
    let Some(path) = resolved(&dir) else {
        // No such device in sysfs (a missing member): nothing known about it.
        if usage == BlockUse::RaidMember {
            out.push(FailureDomain::unknown(DISK));
        }
        out.push(FailureDomain::unknown(HBA));
        return out;
    };
    let place = sysfs::block_place(&path, dir.join("partition").exists());
    if usage == BlockUse::RaidMember {
        out.push(match &place.disk {
            Some(d) => FailureDomain::new(DISK, d.clone()),
            None => FailureDomain::unknown(DISK),
        });
    }
    out.push(match &place.controller_function {
        Some(f) => FailureDomain::new(HBA, f.clone()),
        None => FailureDomain::unknown(HBA),
    });
    if let Some(host) = &place.scsi_host {
        if let Some(fabric) = attr(&roots.sys("class/fc_host").join(host).join("fabric_name"))
            .and_then(|v| sysfs::wwn(&v))
        {
            out.push(FailureDomain::new(FABRIC, fabric));
        }
    }
    if usage == BlockUse::Path {
        if let Some(rport) = &place.fc_rport {
            out.push(
                match attr(
                    &roots
                        .sys("class/fc_remote_ports")
                        .join(rport)
                        .join("node_name"),
                )
                .and_then(|v| sysfs::wwn(&v))
                {
                    Some(n) => FailureDomain::new(CONTROLLER, n),
                    None => FailureDomain::unknown(CONTROLLER),
                },
            );
        } else if let Some(session) = &place.iscsi_session {
            out.push(match iscsi_portal(roots, session) {
                Some(p) => FailureDomain::new(CONTROLLER, p),
                None => FailureDomain::unknown(CONTROLLER),
            });
        }
    }
    if let Some(encl) = place.scsi_device.as_ref().and_then(|_| {
        // The SCSI device directory is the parent of `block/<disk>`.
        let scsi = Path::new(&path)
            .ancestors()
            .find(|a| {
                a.file_name().is_some_and(|n| {
                    Some(n.to_string_lossy().as_ref()) == place.scsi_device.as_deref()
                })
            })?
            .to_string_lossy()
            .into_owned();
        enclosures.get(&scsi).cloned()
    }) {
        out.push(FailureDomain::new(ENCLOSURE, encl));
    }
    out
}

/// `address:port` of an iSCSI session's connection (`/sys/class/iscsi_connection/connectionN:*`).
fn iscsi_portal(roots: &Roots, session: &str) -> Option<String> {
    let n = session.strip_prefix("session")?;
    let class = roots.sys("class/iscsi_connection");
    let conn = crate::roots::list_dir(&class).ok()?.into_iter().find(|c| {
        c.strip_prefix("connection")
            .and_then(|r| r.split(':').next())
            == Some(n)
    })?;
    let addr = attr(&class.join(&conn).join("persistent_address"))?;
    let port = attr(&class.join(&conn).join("persistent_port"));
    Some(match port {
        Some(p) => format!("{addr}:{p}"),
        None => addr,
    })
}

/// Adds domains to every member of an md array or multipath map whose name is a block
/// device (`sdb1`, `8:17`); placeholder members (`slot1`, `array`) get none.
pub fn annotate_block_group(roots: &Roots, usage: BlockUse, g: &mut GroupReading) {
    let enclosures = enclosure_map(roots);
    for m in &mut g.members {
        let looks_like_device = m.name.contains(':')
            || roots.sys("class/block").join(&m.name).exists()
            || m.device.is_some();
        if looks_like_device {
            let d = block_domains(roots, &m.name, usage, &enclosures);
            m.add_domains(d);
        }
    }
}

/// Adds the configured power feed of each PSU (`feeds: {PS1: A, PS2: B}`); a PSU the map
/// does not name has an unknown feed when the map names any PSU, none otherwise.
pub fn annotate_psu_feeds(feeds: &BTreeMap<String, String>, g: &mut GroupReading) {
    if feeds.is_empty() {
        return;
    }
    for m in &mut g.members {
        m.add_domains([match feeds.get(&m.name) {
            Some(f) => FailureDomain::new(FEED, f.clone()),
            None => FailureDomain::unknown(FEED),
        }]);
    }
}

/// Asks lldpd once (only when some group has members) and adds card and switch domains to
/// the members of every bond, team and link group.
pub fn annotate_net_groups(roots: &Roots, lldp: &LldpConfig, groups: &mut [GroupReading]) {
    if groups.iter().all(|g| g.members.is_empty()) {
        return;
    }
    let neighbours = lldp_neighbours(roots, lldp);
    for g in groups.iter_mut() {
        annotate_net_group(roots, neighbours.as_ref(), g);
    }
}

/// Feeds and capacity-true redundancy of a psu group: the configured feed of each PSU, and
/// whether the healthy supplies still carry the load when the largest one fails.
pub fn annotate_psu_group(
    feeds: &BTreeMap<String, String>,
    supplies: &[power::Supply],
    margin_percent: f64,
    g: &mut GroupReading,
) {
    annotate_psu_feeds(feeds, g);
    g.capacity = power::capacity(supplies, margin_percent);
}
