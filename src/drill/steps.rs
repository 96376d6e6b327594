//! The steps of each kind of drill. Every change is journaled before it is made, and undone
//! by the step itself when it ends normally; what is still journaled when a drill ends is
//! undone by the caller.
//!
//! Size: about 590 lines: one `Ctx` method per kind of drill (bond active-backup, bond
//! balance/802.3ad, dm-multipath, md scrub), each with its undo, sharing the command, attribute
//! and probe helpers at the top; each kind reads on its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sparewatch_collectors::multipath::dmstatus;
use sparewatch_collectors::Roots;

use super::probe;
use super::store::{DrillStore, Journal, Undo};
use super::{interrupted, Kind, Options};

/// Time between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long one probe waits for its answer.
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// Probes sent before any change: one answer is enough to go on.
const PROBES_BEFORE: u32 = 3;

#[derive(Debug)]
pub enum StepError {
    /// The standby did not carry, a step timed out or a command failed.
    Failed(String),
    /// SIGINT/SIGTERM.
    Aborted(String),
}

type StepResult<T> = Result<T, StepError>;

fn failed<T>(msg: impl Into<String>) -> StepResult<T> {
    Err(StepError::Failed(msg.into()))
}

/// What a drill measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub failover: Option<f64>,
    pub failback: Option<f64>,
    /// Probes sent after the first change; `None` for a drill without probes (md scrub).
    pub probes_sent: Option<u64>,
    pub probes_lost: u64,
}

pub struct Ctx<'a> {
    roots: &'a Roots,
    store: &'a dyn DrillStore,
    pub journal: Journal,
    opts: &'a Options,
    target: Option<String>,
    pub m: Measured,
}

fn tool(roots: &Roots, name: &str) -> StepResult<PathBuf> {
    let c: Vec<String> = ["usr/sbin", "sbin", "usr/bin", "bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .collect();
    let c: Vec<&str> = c.iter().map(String::as_str).collect();
    roots.find_tool(None, &c).map_or_else(
        || {
            failed(format!(
                "{name} not found under the root fs (/usr/sbin, /sbin, /usr/bin, /bin)"
            ))
        },
        Ok,
    )
}

/// Runs a tool with a fixed argument list; its stdout, or an error naming it.
fn cmd(roots: &Roots, name: &str, args: &[&str]) -> Result<String, String> {
    let p = tool(roots, name).map_err(|e| format!("{e:?}"))?;
    match sparewatch_collectors::command::run(&p, args, Duration::from_secs(10)) {
        Ok(Some(out)) => out
            .success_stdout(&p, args)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| e.to_string()),
        Ok(None) => Err(format!("{} not found", p.display())),
        Err(e) => Err(e.to_string()),
    }
}

fn write_attr(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

fn read_attr(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The whole disk a block device is on: `sdb` for `sdb1`, itself for a whole disk (or when
/// sysfs does not say).
fn whole_disk(roots: &Roots, dev: &str) -> String {
    let link = roots.sys(&format!("class/block/{dev}"));
    if link.join("partition").exists() {
        if let Some(parent) = std::fs::canonicalize(&link).ok().and_then(|p| {
            p.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        }) {
            return parent;
        }
    }
    dev.to_string()
}

/// Undoes one journaled change.
pub fn undo(roots: &Roots, u: &Undo) -> Result<(), String> {
    match u {
        Undo::ActiveSlave { bond, slave } => write_attr(
            &roots.sys(&format!("class/net/{bond}/bonding/active_slave")),
            slave,
        ),
        Undo::LinkUp { dev } => cmd(roots, "ip", &["link", "set", "dev", dev, "up"]).map(drop),
        Undo::ReinstatePath { map, path } => cmd(
            roots,
            "dmsetup",
            &["message", map, "0", "reinstate_path", path],
        )
        .map(drop),
        Undo::SwitchGroup { map, group } => cmd(
            roots,
            "dmsetup",
            &["message", map, "0", "switch_group", &group.to_string()],
        )
        .map(drop),
        Undo::SyncIdle { md } => {
            let p = roots.sys(&format!("block/{md}/md/sync_action"));
            match read_attr(&p)?.as_str() {
                "idle" => Ok(()),
                _ => write_attr(&p, "idle"),
            }
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn new(
        roots: &'a Roots,
        store: &'a dyn DrillStore,
        journal: Journal,
        opts: &'a Options,
        target: Option<String>,
    ) -> Self {
        Ctx {
            roots,
            store,
            journal,
            opts,
            target,
            m: Measured::default(),
        }
    }

    pub fn run(&mut self, kind: &Kind) -> StepResult<String> {
        match kind {
            Kind::BondActiveBackup {
                bond,
                active,
                standby,
            } => self.bond_active_backup(bond, active, standby),
            Kind::BondSlaveDown { bond, slave, .. } => self.bond_slave_down(bond, slave),
            Kind::Multipath { map } => self.multipath(map),
            Kind::MdScrub { md } => self.md_scrub(md),
        }
    }

    fn check(&self) -> StepResult<()> {
        if interrupted() {
            return Err(StepError::Aborted("interrupted by a signal".into()));
        }
        Ok(())
    }

    /// Journals `u` (durably) before the change it undoes is made.
    fn journal(&mut self, u: Undo) -> StepResult<()> {
        self.journal.undo.push(u);
        self.store
            .update_journal(&self.journal)
            .or_else(|e| failed(format!("cannot write the drill journal: {e}")))
    }

    /// Undoes the newest journaled change now, and drops it from the journal.
    fn undo_last(&mut self) -> StepResult<()> {
        let Some(u) = self.journal.undo.last().cloned() else {
            return Ok(());
        };
        undo(self.roots, &u).or_else(failed)?;
        self.journal.undo.pop();
        self.store
            .update_journal(&self.journal)
            .or_else(|e| failed(format!("cannot write the drill journal: {e}")))
    }

    /// Probes until `until`, counting; returns the seconds from `since` to the first answer.
    fn probe_for(
        &mut self,
        until: Instant,
        since: Instant,
        mut one: impl FnMut() -> bool,
    ) -> StepResult<Option<f64>> {
        let mut first = None;
        loop {
            self.check()?;
            let t = Instant::now();
            let ok = one();
            *self.m.probes_sent.get_or_insert(0) += 1;
            if ok {
                first.get_or_insert(t.elapsed().as_secs_f64() + (t - since).as_secs_f64());
            } else {
                self.m.probes_lost += 1;
            }
            if Instant::now() >= until {
                return Ok(first);
            }
            std::thread::sleep(PROBE_EVERY.saturating_sub(t.elapsed()));
        }
    }

    /// Probes until the first answer (bounded by the step timeout): the takeover time.
    fn until_answer(&mut self, since: Instant, one: &mut impl FnMut() -> bool) -> StepResult<f64> {
        let deadline = since + self.opts.step_timeout;
        loop {
            self.check()?;
            let t = Instant::now();
            let ok = one();
            *self.m.probes_sent.get_or_insert(0) += 1;
            if ok {
                return Ok((Instant::now() - since).as_secs_f64());
            }
            self.m.probes_lost += 1;
            if Instant::now() >= deadline {
                return failed(format!(
                    "no answer within {}",
                    humantime::format_duration(self.opts.step_timeout)
                ));
            }
            std::thread::sleep(PROBE_EVERY.saturating_sub(t.elapsed()));
        }
    }

    fn arp_probe(&self, dev: &str) -> StepResult<impl FnMut() -> bool> {
        let tool = probe::arping(self.roots).map_or_else(
            || failed("arping not found under the root fs: install busybox or iputils-arping"),
            Ok,
        )?;
        let target = self
            .target
            .clone()
            .map_or_else(|| failed("no probe target"), Ok)?;
        let dev = dev.to_string();
        Ok(move || probe::arp(&tool, &dev, &target, PROBE_WAIT))
    }

    fn probe_before(&mut self, one: &mut impl FnMut() -> bool, what: &str) -> StepResult<()> {
        for _ in 0..PROBES_BEFORE {
            self.check()?;
            if one() {
                return Ok(());
            }
        }
        failed(format!(
            "{what}: no answer before the drill ({PROBES_BEFORE} probes); nothing was changed"
        ))
    }

    fn bond_active_backup(
        &mut self,
        bond: &str,
        active: &str,
        standby: &str,
    ) -> StepResult<String> {
        let attr = self
            .roots
            .sys(&format!("class/net/{bond}/bonding/active_slave"));
        let mut probe = self.arp_probe(bond)?;
        self.probe_before(&mut probe, &format!("ARP through {bond}"))?;
        // Failover.
        self.journal(Undo::ActiveSlave {
            bond: bond.into(),
            slave: active.into(),
        })?;
        let t0 = Instant::now();
        write_attr(&attr, standby).or_else(failed)?;
        self.wait_attr(&attr, standby, t0)?;
        let fo = self.until_answer(t0, &mut probe)?;
        self.m.failover = Some(fo);
        let hold_end = Instant::now() + self.opts.hold;
        self.probe_for(hold_end, Instant::now(), &mut probe)?;
        if read_attr(&attr).or_else(failed)? != standby {
            return failed(format!("{standby} did not stay the active slave"));
        }
        // Failback (the undo of the failover, measured).
        let t1 = Instant::now();
        self.undo_last()?;
        self.wait_attr(&attr, active, t1)?;
        let fb = self.until_answer(t1, &mut probe)?;
        self.m.failback = Some(fb);
        self.probe_before(&mut probe, &format!("ARP through {bond} after failback"))?;
        Ok(format!(
            "{standby} carried {bond} alone for {}; {active} active again",
            humantime::format_duration(self.opts.hold)
        ))
    }

    fn wait_attr(&self, attr: &Path, want: &str, since: Instant) -> StepResult<()> {
        loop {
            self.check()?;
            if read_attr(attr).or_else(failed)? == want {
                return Ok(());
            }
            if since.elapsed() > self.opts.step_timeout {
                return failed(format!("{} did not become {want}", attr.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn bond_slave_down(&mut self, bond: &str, slave: &str) -> StepResult<String> {
        let mut probe = self.arp_probe(bond)?;
        self.probe_before(&mut probe, &format!("ARP through {bond}"))?;
        self.journal(Undo::LinkUp { dev: slave.into() })?;
        let t0 = Instant::now();
        cmd(self.roots, "ip", &["link", "set", "dev", slave, "down"]).or_else(failed)?;
        let fo = self.until_answer(t0, &mut probe)?;
        self.m.failover = Some(fo);
        let hold_end = t0 + self.opts.hold;
        self.probe_for(hold_end, Instant::now(), &mut probe)?;
        let bond_carrier =
            read_attr(&self.roots.sys(&format!("class/net/{bond}/carrier"))).or_else(failed)?;
        if bond_carrier != "1" {
            return failed(format!("{bond} lost its carrier with {slave} down"));
        }
        self.undo_last()?;
        let mii = self
            .roots
            .sys(&format!("class/net/{slave}/bonding_slave/mii_status"));
        let t1 = Instant::now();
        self.wait_attr(&mii, "up", t1)?;
        self.m.failback = Some(t1.elapsed().as_secs_f64());
        Ok(format!(
            "{bond} carried traffic with {slave} down for {}; {slave} back up",
            humantime::format_duration(self.opts.hold)
        ))
    }

    fn mpath_status(&self, map: &str) -> StepResult<dmstatus::MapStatus> {
        let out = cmd(self.roots, "dmsetup", &["status", map]).or_else(failed)?;
        let line = out.lines().next().unwrap_or("");
        let params = line
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(" ");
        if line.split_whitespace().nth(2) != Some("multipath") {
            return failed(format!("{map} is not a multipath map: {line:?}"));
        }
        dmstatus::parse_params(map, &params).or_else(|e| failed(format!("{map}: {e}")))
    }

    fn multipath(&mut self, map: &str) -> StepResult<String> {
        let dev = self.roots.root(&format!("dev/mapper/{map}"));
        let mut n = 0u64;
        let mut read = {
            let dev = dev.clone();
            move || {
                n += 1;
                probe::direct_read(&dev, n * 7, PROBE_WAIT * 5)
            }
        };
        // Reads first: a map that has seen no I/O shows no active group yet.
        self.probe_before(&mut read, &format!("direct read through {}", dev.display()))?;
        let st = self.mpath_status(map)?;
        if st.groups.iter().flat_map(|g| &g.paths).any(|p| !p.active) {
            return failed(format!(
                "{map} has a failed path before the drill; nothing was changed"
            ));
        }
        let original = st
            .groups
            .iter()
            .position(|g| g.state == dmstatus::GroupState::Active)
            .map_or(st.next_group.max(1), |i| i as u32 + 1);
        let victims: Vec<String> = if st.groups.len() >= 2 {
            let Some(g) = st.groups.get(original as usize - 1) else {
                return failed(format!(
                    "{map}: the kernel names path group {original} of {} as the next one",
                    st.groups.len()
                ));
            };
            g.paths.iter().map(|p| p.dev.clone()).collect()
        } else {
            // One group (multibus): fail all but its last path.
            let paths = &st
                .groups
                .first()
                .map(|g| g.paths.clone())
                .unwrap_or_default();
            paths[..paths.len().saturating_sub(1)]
                .iter()
                .map(|p| p.dev.clone())
                .collect()
        };
        if victims.is_empty() {
            return failed(format!("{map}: no path to fail without losing the map"));
        }
        if st.groups.len() >= 2 {
            self.journal(Undo::SwitchGroup {
                map: map.into(),
                group: original,
            })?;
        }
        let t0 = Instant::now();
        for v in &victims {
            self.journal(Undo::ReinstatePath {
                map: map.into(),
                path: v.clone(),
            })?;
            cmd(
                self.roots,
                "dmsetup",
                &["message", map, "0", "fail_path", v],
            )
            .or_else(failed)?;
        }
        let fo = self.until_answer(t0, &mut read)?;
        self.m.failover = Some(fo);
        let hold_end = Instant::now() + self.opts.hold;
        self.probe_for(hold_end, Instant::now(), &mut read)?;
        let during = self.mpath_status(map)?;
        let carried: Vec<&str> = during
            .groups
            .iter()
            .flat_map(|g| &g.paths)
            .filter(|p| p.active)
            .map(|p| p.dev.as_str())
            .collect();
        if carried.is_empty() {
            return failed(format!("{map}: no active path left during the drill"));
        }
        // Failback: reinstate (last journaled first), then the original group.
        let t1 = Instant::now();
        while self.journal.undo.len() > usize::from(st.groups.len() >= 2) {
            self.undo_last()?;
        }
        self.undo_last()?;
        let fb = self.until_answer(t1, &mut read)?;
        self.m.failback = Some(fb);
        let after = self.mpath_status(map)?;
        let bad: Vec<&str> = after
            .groups
            .iter()
            .flat_map(|g| &g.paths)
            .filter(|p| !p.active)
            .map(|p| p.dev.as_str())
            .collect();
        if !bad.is_empty() {
            return failed(format!(
                "{map}: paths {bad:?} not active after reinstate_path"
            ));
        }
        Ok(format!(
            "{} failed, I/O went on over {}; reinstated",
            victims.join(","),
            carried.join(",")
        ))
    }

    /// Starts a SMART short self-test (`smartctl -t short`) on the whole disk under each
    /// member; says what was started and what could not be. Nothing to undo: the test only
    /// reads, and the drive ends it by itself within its short-test time (about 2 minutes).
    fn selftests(&self, members: &[&str]) -> String {
        let mut started = Vec::new();
        let mut not = Vec::new();
        for m in members {
            let disk = whole_disk(self.roots, m);
            let dev = format!("/dev/{disk}");
            match cmd(self.roots, "smartctl", &["-t", "short", "-d", "auto", &dev]) {
                Ok(_) => started.push(format!("{disk} ({m})")),
                Err(e) => not.push(format!("{disk} ({m}): {e}")),
            }
        }
        let mut s = String::new();
        if !started.is_empty() {
            s.push_str(&format!(
                "SMART short self-test started on {} (result in sparewatch_smart_selftest_last_result after it ends)",
                started.join(", ")
            ));
        }
        if !not.is_empty() {
            if !s.is_empty() {
                s.push_str("; ");
            }
            s.push_str(&format!("no self-test on {}", not.join(", ")));
        }
        s
    }

    fn md_scrub(&mut self, md: &str) -> StepResult<String> {
        let dir = self.roots.sys(&format!("block/{md}/md"));
        let action = dir.join("sync_action");
        let mismatch = |d: &Path| -> StepResult<u64> {
            read_attr(&d.join("mismatch_cnt"))
                .or_else(failed)?
                .parse()
                .or_else(|e| failed(format!("mismatch_cnt: {e}")))
        };
        let members = |d: &Path| -> StepResult<Vec<(String, u64, String)>> {
            let mut v = Vec::new();
            let list = std::fs::read_dir(d).or_else(|e| failed(format!("{}: {e}", d.display())))?;
            for e in list.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(dev) = name.strip_prefix("dev-") else {
                    continue;
                };
                let errors = read_attr(&e.path().join("errors"))
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let state = read_attr(&e.path().join("state")).unwrap_or_default();
                v.push((dev.to_string(), errors, state));
            }
            v.sort();
            Ok(v)
        };
        let before = members(&dir)?;
        let speed = read_attr(&dir.join("sync_speed_max")).unwrap_or_else(|_| "?".into());
        self.journal(Undo::SyncIdle { md: md.into() })?;
        let t0 = Instant::now();
        write_attr(&action, "check").or_else(failed)?;
        loop {
            self.check()?;
            std::thread::sleep(Duration::from_millis(250));
            if read_attr(&action).or_else(failed)? == "idle" {
                break;
            }
            if t0.elapsed() > self.opts.scrub_timeout {
                return failed(format!(
                    "the check did not end within {}",
                    humantime::format_duration(self.opts.scrub_timeout)
                ));
            }
        }
        self.journal.undo.pop();
        self.store
            .update_journal(&self.journal)
            .or_else(|e| failed(format!("cannot write the drill journal: {e}")))?;
        let took = t0.elapsed().as_secs_f64();
        let last = read_attr(&dir.join("last_sync_action")).unwrap_or_default();
        if !last.is_empty() && last != "check" {
            return failed(format!("the array ran {last:?}, not a check"));
        }
        let mm = mismatch(&dir)?;
        let after = members(&dir)?;
        let mut findings = Vec::new();
        if mm > 0 {
            findings.push(format!("mismatch_cnt {mm}"));
        }
        for (dev, errs, state) in &after {
            let was = before.iter().find(|b| &b.0 == dev).map_or(0, |b| b.1);
            if *errs > was {
                findings.push(format!("{dev}: {} read errors", errs - was));
            }
            if state.contains("faulty") || state.contains("write_error") {
                findings.push(format!("{dev}: {state}"));
            }
        }
        let mut summary = format!("check of {md} took {took:.1} s at sync_speed_max {speed}");
        // A check reads only the in-sync members: hot spares hold no data and are not read,
        // and a write-mostly half is the one that idles. Their disks get a SMART short
        // self-test, which the drive runs on its own; the smart collector reads the result
        // back from the self-test log on a later pass.
        let idle: Vec<&str> = after
            .iter()
            .filter(|(_, _, state)| {
                state
                    .split(',')
                    .any(|s| s == "spare" || s == "write_mostly")
            })
            .map(|(dev, _, _)| dev.as_str())
            .collect();
        if !idle.is_empty() {
            summary.push_str(&format!("; {}", self.selftests(&idle)));
        }
        if findings.is_empty() {
            Ok(format!("{summary}: mismatch_cnt 0, no read errors"))
        } else {
            failed(format!("{summary}: {}", findings.join("; ")))
        }
    }
}
