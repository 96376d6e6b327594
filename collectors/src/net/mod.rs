//! The `net` collector: physical NIC links, bonds, team devices, and configured link groups.
//!
//! Reads `/sys/class/net` (under `--path.sysfs`); rtnetlink link notifications wake it, so a
//! carrier change reaches the metrics without waiting for the poll interval.
//!
//! Per event, not per host: an rtnetlink message names its interface, and the pass it wakes
//! re-reads only that interface and the bond or team it belongs to (or belonged to), keeping
//! every other interface's last reading; one link event costs the same with 10 or 10,000
//! interfaces. Full passes (every interface) stay the safety net: when events were lost
//! (ENOBUFS), when a message does not name its interface, at start, and on the interval,
//! where, while the rtnetlink socket is live, a full pass runs at most once per 200 × the
//! last full pass's duration (at most 10 minutes; [`crate::safety_net`]): on a small host
//! that is every interval as before, at 10,000 NICs every 4 minutes; the interval passes in
//! between report the remembered readings and read nothing.
//!
//! Size: about 580 lines: the per-event pass and the full pass share the collector's remembered
//! state (the last reading of each interface, the pending names) and are only correct
//! together, so they stay in one file; bonds and teams are parsed in [`bond`] and [`team`].

pub mod bond;
pub mod team;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{FlagSpec, Flags};
use regex_lite::Regex;
use serde::Deserialize;

use crate::roots::{list_dir, read_attr, Attr};
use crate::safety_net::{watcher_alive, Clock, SafetyNet};
use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, GroupReading, MemberHealth,
    MemberReading, Reading, Role, Roots, Wake,
};
use bond::{BondInfo, SlaveInfo};

/// `collectors.net` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Standalone interfaces bound into one group (two uplinks without a bond).
    #[serde(default)]
    pub groups: Vec<LinkGroupConfig>,
    /// Path of `teamdctl`; default: looked up in /usr/bin and /usr/sbin.
    #[serde(default)]
    pub teamdctl: Option<PathBuf>,
    /// Where to ask lldpd for each link's switch (failure domains).
    #[serde(default)]
    pub lldp: crate::topology::LldpConfig,
}

/// A configured group `link:<name>` of standalone interfaces.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkGroupConfig {
    pub name: String,
    pub members: Vec<String>,
    #[serde(default = "one")]
    pub required: u32,
    #[serde(default)]
    pub by_design: bool,
}

fn one() -> u32 {
    1
}

pub const FLAGS: &[FlagSpec] = &[FlagSpec::text(
    "collector.net.device-include",
    "REGEX",
    "Also report links of virtual interfaces whose name matches (physical NICs, bond/team members and configured group members are always reported)",
)];

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let config: NetConfig = crate::parse_config("net", ctx.config)?;
    Ok(Box::new(NetCollector::new(
        ctx.roots.clone(),
        config,
        include_regex(ctx.flags)?,
    )))
}

fn include_regex(f: &Flags) -> Result<Option<Regex>, BuildError> {
    let Some(s) = f.text("net", "collector.net.device-include")? else {
        return Ok(None);
    };
    Regex::new(&format!("^(?:{s})$"))
        .map(Some)
        .map_err(|e| BuildError::Config {
            collector: "net",
            detail: format!("--collector.net.device-include: {e}"),
        })
}

pub struct NetCollector {
    roots: Roots,
    config: NetConfig,
    include: Option<Regex>,
    /// Every interface as last read, by name (sorted, as a full pass lists them).
    links: BTreeMap<String, LinkState>,
    /// Whether `links` holds a full pass to build on.
    have_full: bool,
    /// Set by the rtnetlink watcher, taken by the next pass; `None` before `watch`.
    pending: Option<Arc<Mutex<Pending>>>,
    interfaces_read: u64,
    /// Full passes, skipped interval passes, and when the next safety-net pass is due.
    safety: SafetyNet,
    /// The groups of the last pass that read interfaces, with their failure domains (card,
    /// LLDP switch: sysfs reads per member); a skipped pass reports them. Only with events.
    annotated: Option<Vec<GroupReading>>,
    lldp: crate::topology::LldpCache,
}

/// Interfaces named by rtnetlink since the last pass.
#[derive(Default)]
struct Pending {
    names: BTreeSet<String>,
    all: bool,
}

/// More names than this between two passes: re-read all instead.
const MAX_PENDING: usize = 4096;

/// One interface as last read, with its bond or team group if it is one.
#[derive(Clone, Debug)]
struct LinkState {
    info: LinkInfo,
    group: Option<GroupReading>,
    readings: Vec<Reading>,
}

/// What sysfs says about one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub physical: bool,
    pub admin_up: Option<bool>,
    /// `None`: no carrier value now (the interface is down: sysfs answers EINVAL).
    pub carrier: Option<bool>,
    pub operstate: Option<String>,
    pub speed_mbps: Option<u64>,
    pub duplex: Option<String>,
    pub carrier_changes: Option<u64>,
    pub master: Option<String>,
    pub devtype: Option<String>,
}

impl LinkInfo {
    /// A standalone link is healthy when it is administratively up and has carrier.
    /// Carrier, not operstate: in VMs operstate can lag carrier.
    pub fn health(&self) -> MemberHealth {
        match (self.admin_up, self.carrier) {
            (Some(false), _) => MemberHealth::Unhealthy("administratively down".into()),
            (_, Some(true)) => MemberHealth::Healthy,
            (_, Some(false)) | (Some(true), None) => MemberHealth::Unhealthy("no carrier".into()),
            (None, None) => MemberHealth::Unknown("link state unreadable".into()),
        }
    }
}

impl NetCollector {
    pub fn new(roots: Roots, config: NetConfig, include: Option<Regex>) -> Self {
        Self::with_clock(roots, config, include, Arc::new(std::time::Instant::now))
    }

    /// [`NetCollector::new`] timing its passes on `clock` (tests drive it by hand).
    pub fn with_clock(
        roots: Roots,
        config: NetConfig,
        include: Option<Regex>,
        clock: Clock,
    ) -> Self {
        NetCollector {
            lldp: crate::topology::LldpCache::new(config.lldp.clone()),
            roots,
            config,
            include,
            links: BTreeMap::new(),
            have_full: false,
            pending: None,
            interfaces_read: 0,
            safety: SafetyNet::new(clock),
            annotated: None,
        }
    }

    /// Interfaces read from sysfs so far (a full pass reads all; an event one or two).
    pub fn interfaces_read(&self) -> u64 {
        self.interfaces_read
    }

    /// Full passes so far, and interval passes that read nothing.
    pub fn passes(&self) -> (u64, u64) {
        self.safety.passes()
    }

    /// Reads one interface and, if it is a bond or team, its group. `None`: not there (or
    /// not an interface, like `bonding_masters`).
    fn read_one(&mut self, name: &str, teamdctl: Option<&Path>) -> Option<LinkState> {
        if name == "lo" || !self.class_net().join(name).is_dir() {
            return None;
        }
        self.interfaces_read += 1;
        // A broken interface makes only its own members unknown, not the collector.
        let info = self.read_link(name).unwrap_or_else(|e| {
            tracing::warn!(device = %name, error = %e, "cannot read interface");
            LinkInfo {
                name: name.to_string(),
                ..LinkInfo::default()
            }
        });
        let mut st = LinkState {
            info,
            group: None,
            readings: Vec::new(),
        };
        let l = &st.info;
        if self.class_net().join(name).join("bonding").is_dir() {
            match self.read_bond(name) {
                // Loading the bonding module creates an unused, down `bond0` without
                // slaves: not configured, so not a group. A bond that is up without
                // slaves is a real failure and stays one.
                Ok(b) if b.slaves.is_empty() && l.admin_up != Some(true) => {}
                Ok(b) => {
                    bond_readings(&b, &mut st.readings);
                    st.group = Some(b.group());
                }
                Err(e) => st.group = Some(unreadable_group("bond", name, &e)),
            }
        } else if l.devtype.as_deref() == Some("team") {
            if let Some(t) = teamdctl {
                st.group = Some(match self.read_team(name, t) {
                    Ok(g) => g,
                    Err(e) => unreadable_group("team", name, &e),
                });
            }
        }
        Some(st)
    }

    fn full_pass(&mut self) -> Result<bool, CollectError> {
        let names = list_dir(&self.class_net())?;
        if names.is_empty() {
            return Ok(false);
        }
        let started = self.safety.now();
        let teamdctl = self.teamdctl();
        let mut links = BTreeMap::new();
        // Interfaces are directories (symlinks to them); /sys/class/net also holds the
        // plain file `bonding_masters` once the bonding module is loaded.
        for name in names {
            if let Some(st) = self.read_one(&name, teamdctl.as_deref()) {
                links.insert(name, st);
            }
        }
        self.links = links;
        self.have_full = true;
        self.safety.full_done(started);
        Ok(true)
    }

    /// Re-reads the named interfaces and the bonds/teams they are or were members of.
    fn partial_pass(&mut self, names: BTreeSet<String>) {
        let teamdctl = self.teamdctl();
        let mut masters = BTreeSet::new();
        for name in &names {
            if let Some(m) = self.links.get(name).and_then(|s| s.info.master.clone()) {
                masters.insert(m);
            }
            match self.read_one(name, teamdctl.as_deref()) {
                Some(st) => {
                    if let Some(m) = &st.info.master {
                        masters.insert(m.clone());
                    }
                    self.links.insert(name.clone(), st);
                }
                None => {
                    self.links.remove(name);
                }
            }
        }
        for m in masters.difference(&names) {
            match self.read_one(m, teamdctl.as_deref()) {
                Some(st) => self.links.insert(m.clone(), st),
                None => self.links.remove(m),
            };
        }
    }

    /// The collection from the interfaces as last read; without `groups`, only readings.
    fn assemble(&self, groups: bool) -> Collection {
        let mut c = Collection::present();
        let configured: Vec<&str> = self
            .config
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(String::as_str))
            .collect();
        for st in self.links.values() {
            let l = &st.info;
            c.readings.extend(st.readings.iter().cloned());
            if let Some(g) = st.group.as_ref().filter(|_| groups) {
                c.groups.push(g.clone());
            }
            let reported = l.physical
                || l.master.is_some()
                || configured.contains(&l.name.as_str())
                || self.include.as_ref().is_some_and(|r| r.is_match(&l.name));
            if reported {
                link_readings(l, &mut c.readings);
            }
        }
        for g in self.config.groups.iter().filter(|_| groups) {
            let mut group = GroupReading::new(format!("link:{}", g.name), "link", g.required);
            group.by_design = g.by_design;
            for m in &g.members {
                let health = match self.links.get(m) {
                    Some(st) => st.info.health(),
                    None => MemberHealth::Unhealthy("interface does not exist".into()),
                };
                group
                    .members
                    .push(MemberReading::new(m, Role::Active, health));
            }
            c.groups.push(group);
        }
        if self.pending.is_some() {
            c.pass_stats.push(Reading::counter(
                "sparewatch_net_interfaces_read_total",
                "Interfaces read from sysfs: a full pass reads every one, a link event only the interface it names and its bond or team.",
                Vec::new(),
                self.interfaces_read as f64,
            ));
            self.safety.readings(
                (
                    "sparewatch_net_full_passes_total",
                    "Passes that read every interface (interval, lost events, start).",
                ),
                (
                    "sparewatch_net_full_passes_skipped_total",
                    "Interval passes that read no interface: rtnetlink was live and the safety-net period had not run out, so the remembered readings were reported.",
                ),
                (
                    "sparewatch_net_safety_net_period_seconds",
                    "Shortest time between two interval passes that read every interface while rtnetlink is live: 200 times the last full pass, at most 600 s; below the interval, every interval pass is a full one.",
                ),
                &mut c.pass_stats,
            );
        }
        c
    }

    fn class_net(&self) -> PathBuf {
        self.roots.sys("class/net")
    }

    fn read_link(&self, name: &str) -> Result<LinkInfo, CollectError> {
        let dir = self.class_net().join(name);
        let flags = read_attr(&dir.join("flags"))?
            .value()
            .and_then(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        let uevent = read_attr(&dir.join("uevent"))?;
        Ok(LinkInfo {
            name: name.to_string(),
            physical: dir.join("device").exists(),
            admin_up: flags.map(|f| f & 1 == 1),
            carrier: read_attr(&dir.join("carrier"))?.value().map(|v| v == "1"),
            operstate: read_attr(&dir.join("operstate"))?
                .value()
                .map(str::to_string),
            // speed is -1 or EINVAL when unknown.
            speed_mbps: read_attr(&dir.join("speed"))?
                .value()
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v > 0)
                .map(|v| v as u64),
            duplex: read_attr(&dir.join("duplex"))?.value().map(str::to_string),
            carrier_changes: parse_u64(&read_attr(&dir.join("carrier_changes"))?),
            master: link_target_name(&dir.join("master")),
            devtype: uevent.value().and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVTYPE="))
                    .map(str::to_string)
            }),
        })
    }

    fn read_bond(&self, name: &str) -> Result<BondInfo, CollectError> {
        let b = self.class_net().join(name).join("bonding");
        let val = |attr: &str| -> Result<Option<String>, CollectError> {
            Ok(read_attr(&b.join(attr))?.value().map(str::to_string))
        };
        let mode = val("mode")?.unwrap_or_default();
        let names: Vec<String> = match val("slaves")? {
            Some(line) => line.split_whitespace().map(str::to_string).collect(),
            None => bond::slaves_from_links(&list_dir(&self.class_net().join(name))?),
        };
        let mut slaves = Vec::new();
        for s in &names {
            let sd = bond::slave_dir(&self.class_net(), name, s);
            // An unreadable slave attribute is an unknown value for that slave only.
            let sval = |attr: &str| -> Option<String> {
                match read_attr(&sd.join(attr)) {
                    Ok(a) => a.value().map(str::to_string),
                    Err(e) => {
                        tracing::warn!(slave = %s, error = %e, "cannot read bonding_slave/{attr}");
                        None
                    }
                }
            };
            slaves.push(SlaveInfo {
                name: s.to_string(),
                mii_status: sval("mii_status"),
                state: sval("state"),
                aggregator_id: sval("ad_aggregator_id").and_then(|v| v.parse().ok()),
                link_failure_count: sval("link_failure_count").and_then(|v| v.parse().ok()),
            });
        }
        Ok(BondInfo {
            name: name.to_string(),
            mode,
            slaves,
            active_slave: val("active_slave")?.filter(|s| !s.is_empty()),
            min_links: val("min_links")?.and_then(|v| v.parse().ok()).unwrap_or(0),
            active_aggregator: val("ad_aggregator")?.and_then(|v| v.parse().ok()),
        })
    }

    fn teamdctl(&self) -> Option<PathBuf> {
        self.roots.find_tool(
            self.config.teamdctl.as_ref(),
            &["usr/bin/teamdctl", "usr/sbin/teamdctl", "bin/teamdctl"],
        )
    }

    fn read_team(&self, dev: &str, teamdctl: &Path) -> Result<GroupReading, CollectError> {
        let args = [dev, "state", "dump"];
        let out =
            crate::command::run(teamdctl, &args, Duration::from_secs(5))?.ok_or_else(|| {
                CollectError::Command {
                    command: teamdctl.display().to_string(),
                    detail: "not found".into(),
                }
            })?;
        team::parse_state_dump(dev, &out.success_stdout(teamdctl, &args)?)
    }
}

/// A group whose state could not be read: one placeholder member of unknown health, so the
/// group is reported `unknown` (never dropped, never `failed`) while other groups go on.
fn unreadable_group(kind: &'static str, dev: &str, e: &CollectError) -> GroupReading {
    tracing::warn!(device = %dev, error = %e, "cannot read {kind}");
    let mut g = GroupReading::new(format!("{kind}:{dev}"), kind, 1);
    g.members.push(MemberReading::new(
        dev,
        Role::Active,
        MemberHealth::Unknown(format!("unreadable: {e}")),
    ));
    g
}

fn parse_u64(a: &Attr) -> Option<u64> {
    a.value().and_then(|v| v.parse().ok())
}

fn link_target_name(p: &Path) -> Option<String> {
    std::fs::read_link(p)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

fn dev(name: &str) -> Vec<(&'static str, String)> {
    vec![("device", name.to_string())]
}

fn link_readings(l: &LinkInfo, out: &mut Vec<Reading>) {
    if let Some(c) = l.carrier {
        out.push(Reading::gauge(
            "sparewatch_net_link_carrier",
            "Whether the link has carrier (1) or not (0); absent while the interface is down.",
            dev(&l.name),
            c as u8 as f64,
        ));
    }
    if let Some(a) = l.admin_up {
        out.push(Reading::gauge(
            "sparewatch_net_link_admin_up",
            "Whether the interface is administratively up (IFF_UP).",
            dev(&l.name),
            a as u8 as f64,
        ));
    }
    if let Some(o) = &l.operstate {
        out.push(Reading::gauge(
            "sparewatch_net_link_oper_up",
            "Whether the interface's operstate is \"up\".",
            dev(&l.name),
            (o == "up") as u8 as f64,
        ));
    }
    if let Some(s) = l.speed_mbps {
        out.push(Reading::gauge(
            "sparewatch_net_link_speed_bytes_per_second",
            "Negotiated link speed in bytes per second.",
            dev(&l.name),
            s as f64 * 1_000_000.0 / 8.0,
        ));
    }
    if let Some(d) = &l.duplex {
        out.push(Reading::gauge(
            "sparewatch_net_link_full_duplex",
            "Whether the link negotiated full duplex.",
            dev(&l.name),
            (d == "full") as u8 as f64,
        ));
    }
    if let Some(c) = l.carrier_changes {
        out.push(Reading::counter(
            "sparewatch_net_link_carrier_changes_total",
            "Carrier changes counted by the kernel since the interface was created.",
            dev(&l.name),
            c as f64,
        ));
    }
}

fn bond_readings(b: &BondInfo, out: &mut Vec<Reading>) {
    out.push(Reading::gauge(
        "sparewatch_net_bond_info",
        "A bond and its mode.",
        vec![
            ("bond", b.name.clone()),
            ("mode", bond::mode_name(&b.mode).to_string()),
        ],
        1.0,
    ));
    if let Some(a) = &b.active_slave {
        out.push(Reading::gauge(
            "sparewatch_net_bond_active_slave",
            "The slave currently carrying traffic (active-backup, tlb, alb).",
            vec![("bond", b.name.clone()), ("slave", a.clone())],
            1.0,
        ));
    }
    for s in &b.slaves {
        if let Some(n) = s.link_failure_count {
            out.push(Reading::counter(
                "sparewatch_net_bond_slave_link_failures_total",
                "Link failures the bonding driver counted for this slave.",
                vec![("bond", b.name.clone()), ("slave", s.name.clone())],
                n as f64,
            ));
        }
    }
}

impl Collector for NetCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let (names, all) = match &self.pending {
            Some(p) => {
                let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
                (std::mem::take(&mut g.names), std::mem::take(&mut g.all))
            }
            None => (BTreeSet::new(), false),
        };
        if !names.is_empty() && !all && self.have_full {
            self.partial_pass(names);
        } else if self
            .safety
            .due(watcher_alive(&self.pending), all || !self.have_full)
        {
            if !self.full_pass()? {
                self.links.clear();
                self.have_full = false;
                self.safety.reset();
                self.annotated = None;
                return Ok(Collection::not_present());
            }
        } else if let Some(groups) = &self.annotated {
            // An interval pass while rtnetlink is live and the stretched safety net is not
            // due: every change since the last full pass came as an event and was read.
            // The groups, failure domains included, are those of the last pass that read.
            self.safety.skip();
            let mut c = self.assemble(false);
            c.groups = groups.clone();
            return Ok(c);
        }
        let mut c = self.assemble(true);
        self.lldp.annotate(&self.roots, &mut c.groups);
        if self.pending.is_some() {
            self.annotated = Some(c.groups.clone());
        }
        Ok(c)
    }

    fn watch(&mut self, wake: Wake) -> Result<(), CollectError> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let shared = Arc::clone(&pending);
        crate::events::spawn_link_change_watcher("net", move |change| {
            // Wake only when the pending set turns non-empty: names added to a non-empty set
            // are taken by the pass that set's wake brings. A wake per message could leave a
            // wake behind whose names an earlier pass already took, and a pass without names
            // is a full pass.
            let was_idle;
            {
                let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                was_idle = g.names.is_empty() && !g.all;
                match change {
                    crate::events::LinkChange::All => g.all = true,
                    crate::events::LinkChange::Named(n) if n.is_empty() => return,
                    crate::events::LinkChange::Named(n) => {
                        g.names.extend(n);
                        if g.names.len() > MAX_PENDING {
                            g.names.clear();
                            g.all = true;
                        }
                    }
                }
            }
            if was_idle {
                wake.wake();
            }
        })
        .map_err(|e| CollectError::Other(format!("rtnetlink link events: {e}")))?;
        self.pending = Some(pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
