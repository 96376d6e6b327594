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

pub use lldp::{Neighbour, Neighbours};

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
pub fn lldp_neighbours(roots: &Roots, config: &LldpConfig) -> Option<Neighbours> {
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
pub fn net_domains(roots: &Roots, ifname: &str, lldp: Option<&Neighbours>) -> Vec<FailureDomain> {
    let dir = roots.sys("class/net").join(ifname);
    let mut out = Vec::new();
    let device = dir.join("device");
    if device.exists() {
        // Hardware behind it: a card we can name, or one we cannot.
        out.push(known(
            CARD,
            resolved(&device).and_then(|p| sysfs::card_of_path(&p)),
        ));
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
pub fn annotate_net_group(roots: &Roots, lldp: Option<&Neighbours>, g: &mut GroupReading) {
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
        out.push(known(DISK, place.disk.clone()));
    }
    out.push(known(HBA, place.controller_function.clone()));
    if let Some(host) = &place.scsi_host {
        if let Some(fabric) = attr(&roots.sys("class/fc_host").join(host).join("fabric_name"))
            .and_then(|v| sysfs::wwn(&v))
        {
            out.push(FailureDomain::new(FABRIC, fabric));
        }
    }
    if usage == BlockUse::Path {
        let rports = roots.sys("class/fc_remote_ports");
        if let Some(rport) = &place.fc_rport {
            let node = attr(&rports.join(rport).join("node_name")).and_then(|v| sysfs::wwn(&v));
            out.push(known(CONTROLLER, node));
        } else if let Some(session) = &place.iscsi_session {
            out.push(known(CONTROLLER, iscsi_portal(roots, session)));
        }
    }
    // An enclosure slot links to the SCSI device directory, an ancestor of the disk's.
    let scsi_dir = place.scsi_device.as_deref().and_then(|hctl| {
        Path::new(&path)
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n.to_string_lossy() == hctl))
    });
    if let Some(encl) = scsi_dir.and_then(|d| enclosures.get(d.to_string_lossy().as_ref())) {
        out.push(FailureDomain::new(ENCLOSURE, encl.clone()));
    }
    out
}

/// A resolved domain, or the kind marked unknown.
fn known(kind: &'static str, id: Option<String>) -> FailureDomain {
    id.map_or_else(
        || FailureDomain::unknown(kind),
        |id| FailureDomain::new(kind, id),
    )
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
        m.add_domains([known(FEED, feeds.get(&m.name).cloned())]);
    }
}

/// "Two PSUs losing AC within seconds of each other": the sign of two supplies on one feed
/// that the config does not know about (or maps wrongly). The collector tells, per cycle,
/// which PSUs of a group have lost their input (Redfish `LineInputStatus`
/// `NoInput`/`LossOfInput`/`OutOfRange` or `LineInputVoltage` 0); a PSU is *newly* lost at
/// the first cycle it is seen so. Two PSUs of one group newly lost at most
/// [`FeedWatch::WINDOW`] apart (which includes "in the same cycle": a poll cannot tell closer
/// apart) are a suspected shared feed: both get the `feed` domain
/// `suspected:<first>+<second>` for [`FeedWatch::HOLD`] after the event, so once they are
/// healthy again the effective spare is 0 and the hidden-single-point alert names them.
/// Kept in memory: a restart forgets the suspicion.
#[derive(Debug, Default)]
pub struct FeedWatch {
    /// (group, member) → when it was first seen without input, while it stays so.
    lost: BTreeMap<(String, String), std::time::Instant>,
    /// group → (when, first member, second member) of each suspicion.
    suspected: BTreeMap<String, Vec<(std::time::Instant, String, String)>>,
}

impl FeedWatch {
    pub const WINDOW: Duration = Duration::from_secs(10);
    pub const HOLD: Duration = Duration::from_secs(24 * 3600);

    /// One cycle of group `g`: `ac_lost` names its members without input now.
    pub fn observe(
        &mut self,
        now: std::time::Instant,
        g: &mut GroupReading,
        ac_lost: &std::collections::BTreeSet<String>,
    ) {
        let group = g.name.clone();
        self.lost
            .retain(|(gr, m), _| gr != &group || ac_lost.contains(m));
        let mut newly = Vec::new();
        for m in ac_lost {
            if let std::collections::btree_map::Entry::Vacant(e) =
                self.lost.entry((group.clone(), m.clone()))
            {
                e.insert(now);
                newly.push(m.clone());
            }
        }
        for m in &newly {
            for ((gr, other), at) in &self.lost {
                if gr != &group || other == m {
                    continue;
                }
                // A pair newly lost in one cycle is recorded once, in name order.
                if newly.contains(other) && other > m {
                    continue;
                }
                if now.saturating_duration_since(*at) <= Self::WINDOW {
                    let (a, b) = if other < m { (other, m) } else { (m, other) };
                    let list = self.suspected.entry(group.clone()).or_default();
                    list.retain(|(_, x, y)| !(x == a && y == b));
                    list.push((now, a.clone(), b.clone()));
                }
            }
        }
        if let Some(list) = self.suspected.get_mut(&group) {
            list.retain(|(at, _, _)| now.saturating_duration_since(*at) <= Self::HOLD);
            for (_, a, b) in list.iter() {
                let d = FailureDomain::new(FEED, format!("suspected:{a}+{b}"));
                for m in g
                    .members
                    .iter_mut()
                    .filter(|m| &m.name == a || &m.name == b)
                {
                    m.add_domains([d.clone()]);
                }
            }
            if list.is_empty() {
                self.suspected.remove(&group);
            }
        }
    }
}

/// LLDP neighbours asked from lldpd at most once per [`LldpCache::MAX_AGE`]: a link event
/// re-collects the net collector at once, and must not wait for lldpcli (tens of ms) each
/// time; switches send LLDP every 30 s anyway, so a neighbour cannot be fresher than that.
pub struct LldpCache {
    config: LldpConfig,
    last: Option<(std::time::Instant, Option<Neighbours>)>,
}

impl LldpCache {
    pub const MAX_AGE: Duration = Duration::from_secs(30);
    /// How soon to ask again after lldpd did not answer.
    pub const RETRY: Duration = Duration::from_secs(5);

    pub fn new(config: LldpConfig) -> Self {
        LldpCache { config, last: None }
    }

    /// Adds card and switch domains to the members of every bond, team and link group,
    /// asking lldpd only when some group has members and the last answer is too old.
    pub fn annotate(&mut self, roots: &Roots, groups: &mut [GroupReading]) {
        if groups.iter().all(|g| g.members.is_empty()) {
            return;
        }
        // No answer (lldpd starting, lldpcli slow on a loaded host) is asked again sooner.
        let fresh = self.last.as_ref().is_some_and(|(at, n)| {
            at.elapsed()
                < if n.is_some() {
                    Self::MAX_AGE
                } else {
                    Self::RETRY
                }
        });
        if !fresh {
            let n = lldp_neighbours(roots, &self.config);
            self.last = Some((std::time::Instant::now(), n));
        }
        let neighbours = self.last.as_ref().and_then(|(_, n)| n.as_ref());
        for g in groups.iter_mut() {
            annotate_net_group(roots, neighbours, g);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, v: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    }

    fn link(root: &Path, rel: &str, target: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// Two FC paths (sdc, sdd) through one HBA port (host3) into one fabric, to two target
    /// ports of one array node: the shapes of the kernel's FC transport class
    /// (drivers/scsi/scsi_transport_fc.c: fc_host/hostN/fabric_name,
    /// fc_remote_ports/rport-H:B-R/node_name).
    fn fc_tree(root: &Path) {
        let hba = "pci0000:00/0000:00:02.0/0000:05:00.0/host3";
        for (dev, rport, lun) in [
            ("sdc", "rport-3:0-2", "3:0:0:1"),
            ("sdd", "rport-3:0-3", "3:0:1:1"),
        ] {
            let path = format!("{hba}/{rport}/target3:0:{}/{lun}/block/{dev}", &lun[4..5]);
            write(root, &format!("sys/devices/{path}/dev"), "8:32");
            link(
                root,
                &format!("sys/class/block/{dev}"),
                &format!("../../devices/{path}"),
            );
            write(
                root,
                &format!("sys/class/fc_remote_ports/{rport}/node_name"),
                "0x50060e8007c2a300",
            );
        }
        write(
            root,
            "sys/class/fc_host/host3/fabric_name",
            "0x100000051e0c5f21",
        );
    }

    fn psu_group(names: &[&str]) -> GroupReading {
        let mut g = GroupReading::new("psu:chassis", "psu", 1);
        for n in names {
            g.members.push(crate::MemberReading::new(
                (*n).to_string(),
                crate::Role::Active,
                crate::MemberHealth::Healthy,
            ));
        }
        g
    }

    fn feeds_of(g: &GroupReading, member: &str) -> Vec<String> {
        g.members
            .iter()
            .find(|m| m.name == member)
            .map(|m| {
                m.domains
                    .iter()
                    .filter(|d| d.kind == FEED)
                    .map(|d| d.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn two_psus_losing_input_together_are_a_suspected_shared_feed() {
        let t0 = std::time::Instant::now();
        let lost = |v: &[&str]| -> std::collections::BTreeSet<String> {
            v.iter().map(|s| s.to_string()).collect()
        };
        // Both in one cycle.
        let mut w = FeedWatch::default();
        let mut g = psu_group(&["PS1", "PS2", "PS3"]);
        w.observe(t0, &mut g, &lost(&["PS1", "PS2"]));
        assert_eq!(feeds_of(&g, "PS1"), ["suspected:PS1+PS2"]);
        assert_eq!(feeds_of(&g, "PS3"), Vec::<String>::new());
        // Back: still suspected, and effective-spare-relevant now that they are healthy.
        let mut g = psu_group(&["PS1", "PS2", "PS3"]);
        w.observe(t0 + Duration::from_secs(60), &mut g, &lost(&[]));
        assert_eq!(feeds_of(&g, "PS2"), ["suspected:PS1+PS2"]);
        // Forgotten after the hold.
        let mut g = psu_group(&["PS1", "PS2", "PS3"]);
        w.observe(
            t0 + FeedWatch::HOLD + Duration::from_secs(1),
            &mut g,
            &lost(&[]),
        );
        assert_eq!(feeds_of(&g, "PS1"), Vec::<String>::new());

        // Five seconds apart: suspected; a minute apart: not (a feed and then another).
        let mut w = FeedWatch::default();
        let mut g = psu_group(&["PS1", "PS2"]);
        w.observe(t0, &mut g, &lost(&["PS2"]));
        assert!(feeds_of(&g, "PS2").is_empty());
        w.observe(t0 + Duration::from_secs(5), &mut g, &lost(&["PS1", "PS2"]));
        assert_eq!(feeds_of(&g, "PS1"), ["suspected:PS1+PS2"]);
        let mut w = FeedWatch::default();
        let mut g = psu_group(&["PS1", "PS2"]);
        w.observe(t0, &mut g, &lost(&["PS1"]));
        w.observe(t0 + Duration::from_secs(60), &mut g, &lost(&["PS1", "PS2"]));
        assert!(feeds_of(&g, "PS1").is_empty() && feeds_of(&g, "PS2").is_empty());
        // One PSU losing input twice is not a pair.
        let mut w = FeedWatch::default();
        let mut g = psu_group(&["PS1", "PS2"]);
        w.observe(t0, &mut g, &lost(&["PS1"]));
        w.observe(t0 + Duration::from_secs(1), &mut g, &lost(&[]));
        w.observe(t0 + Duration::from_secs(2), &mut g, &lost(&["PS1"]));
        assert!(feeds_of(&g, "PS1").is_empty());
    }

    #[test]
    fn fc_paths_through_one_hba_share_hba_fabric_and_array_node() {
        let dir = tempfile::tempdir().unwrap();
        fc_tree(dir.path());
        let roots = Roots::under(dir.path());
        let none = BTreeMap::new();
        for dev in ["sdc", "sdd"] {
            let d = block_domains(&roots, dev, BlockUse::Path, &none);
            assert_eq!(
                d,
                vec![
                    FailureDomain::new(HBA, "0000:05:00.0"),
                    FailureDomain::new(FABRIC, "0x100000051e0c5f21"),
                    FailureDomain::new(CONTROLLER, "0x50060e8007c2a300"),
                ],
                "{dev}"
            );
        }
    }

    #[test]
    fn an_md_member_in_an_enclosure_slot_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // SAS disk behind an expander; the SES enclosure's slot links to its SCSI device.
        let scsi = "pci0000:00/0000:00:03.0/0000:03:00.0/host11/port-11:0/expander-11:0/port-11:0:1/end_device-11:0:1/target11:0:8/11:0:8:0";
        write(
            root,
            &format!("sys/devices/{scsi}/block/sdk/sdk1/partition"),
            "1",
        );
        link(
            root,
            "sys/class/block/sdk1",
            &format!("../../devices/{scsi}/block/sdk/sdk1"),
        );
        write(
            root,
            "sys/class/enclosure/11:0:53:0/id",
            "0x500605b00ab1c2d3",
        );
        link(
            root,
            "sys/class/enclosure/11:0:53:0/Slot 05/device",
            &format!("../../../../devices/{scsi}"),
        );
        let roots = Roots::under(root);
        let enc = enclosure_map(&roots);
        assert_eq!(
            block_domains(&roots, "sdk1", BlockUse::RaidMember, &enc),
            vec![
                FailureDomain::new(DISK, "sdk"),
                FailureDomain::new(HBA, "0000:03:00.0"),
                FailureDomain::new(ENCLOSURE, "0x500605b00ab1c2d3"),
            ]
        );
        // Gone from sysfs: its domains are unknown, not guessed.
        assert_eq!(
            block_domains(&roots, "sdz1", BlockUse::RaidMember, &enc),
            vec![FailureDomain::unknown(DISK), FailureDomain::unknown(HBA)]
        );
    }

    #[test]
    fn an_iscsi_path_names_its_portal_and_has_no_pci_hba() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let path = "platform/host4/session1/target4:0:0/4:0:0:1/block/sde";
        write(root, &format!("sys/devices/{path}/dev"), "8:64");
        link(
            root,
            "sys/class/block/sde",
            &format!("../../devices/{path}"),
        );
        write(
            root,
            "sys/class/iscsi_connection/connection1:0/persistent_address",
            "10.0.0.5",
        );
        write(
            root,
            "sys/class/iscsi_connection/connection1:0/persistent_port",
            "3260",
        );
        let roots = Roots::under(root);
        assert_eq!(
            block_domains(&roots, "sde", BlockUse::Path, &BTreeMap::new()),
            vec![
                FailureDomain::unknown(HBA),
                FailureDomain::new(CONTROLLER, "10.0.0.5:3260"),
            ]
        );
    }

    #[test]
    fn feeds_from_the_config() {
        let mut g = GroupReading::new("psu:pmbus", "psu", 1);
        for n in ["PS1", "PS2", "PS3"] {
            g.members.push(crate::MemberReading::new(
                n,
                crate::Role::Active,
                crate::MemberHealth::Healthy,
            ));
        }
        let feeds: BTreeMap<String, String> =
            [("PS1".into(), "A".into()), ("PS2".into(), "A".into())].into();
        annotate_psu_feeds(&feeds, &mut g);
        assert_eq!(g.members[0].domains, vec![FailureDomain::new(FEED, "A")]);
        assert_eq!(g.members[2].domains, vec![FailureDomain::unknown(FEED)]);
    }
}
