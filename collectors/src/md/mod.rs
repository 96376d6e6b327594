//! The `md` collector: Linux software RAID arrays.
//!
//! Lists arrays from `/proc/mdstat` (and `/sys/block/md*/md`), reads each array's
//! `/sys/block/<md>/md/*` attributes and `dev-*/{state,slot,errors}`, and reports one group
//! `md:<kernel name>` per array. `poll()` on `/proc/mdstat` and on the notified sysfs
//! attributes wakes it at once when a member fails or a rebuild starts or ends.
//!
//! The interval pass is the safety net for what those wakes missed. While the watcher runs,
//! an interval pass that no wake preceded re-reads only `/proc/mdstat` and the list of
//! `/sys/block/md*`: when both are identical to what the last full pass read, and that pass
//! is less than 200 × its own duration ago (at most 10 minutes; [`crate::safety_net`]), it
//! reports the last full pass's result without reading any array. Every health change md
//! makes (a member faulty, removed, added as spare or taken into a slot, a sync starting,
//! progressing or ending, an array started, stopped, broken or read-only) changes mdstat's
//! text, so it is read at the next interval at the latest, as before; what mdstat does not
//! show waits for the stretched period (see docs/collectors/md.md, "Safety net").

pub mod array;
pub mod mdstat;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::FlagSpec;
use serde::Deserialize;

use crate::one_hot::OneHot;
use crate::roots::{list_dir, read_optional, read_value};
use crate::safety_net::{watcher_alive, Clock, SafetyNet};
use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, GroupReading, Reading, Roots,
    Wake,
};
use array::{ArrayInfo, MdstatCount, MemberInfo};
use mdstat::{Mdstat, MdstatArray};

/// `collectors.md` in the config file: no keys of its own (interval and timeout are the
/// scheduler's). Group policies are overridden in the top-level `groups:` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdConfig {}

pub const FLAGS: &[FlagSpec] = &[];

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let _config: MdConfig = crate::parse_config("md", ctx.config)?;
    Ok(Box::new(MdCollector::new(ctx.roots.clone())))
}

/// Kernel `array_state` values (Documentation/admin-guide/md.rst).
pub const ARRAY_STATES: [&str; 10] = [
    "clear",
    "inactive",
    "suspended",
    "readonly",
    "read-auto",
    "clean",
    "active",
    "write-pending",
    "active-idle",
    "broken",
];

/// Kernel `sync_action` values.
pub const SYNC_ACTIONS: [&str; 7] = [
    "idle", "resync", "recover", "check", "repair", "reshape", "frozen",
];

/// The sysfs attributes the kernel notifies (sysfs_notify) on change.
const NOTIFIED_ATTRS: [&str; 3] = ["array_state", "degraded", "sync_action"];

/// At most this many files are watched, one open descriptor each. `/proc/mdstat` alone
/// wakes on every md event (`md_new_event`: a member failed, a spare taken, a sync started
/// or ended); the per-array attributes only make those wakes more precise. Watching all of
/// them costs 4–6 descriptors per array: 20,000 at 5,000 arrays, over the packaged unit's
/// `LimitNOFILE=4096`, so that the collector's own reads (and the web server's accepts)
/// failed with EMFILE.
pub const MAX_WATCHED_FILES: usize = 256;

/// How many files the watcher may hold open under an open-files limit of `soft_limit`: at
/// most [`MAX_WATCHED_FILES`] and an eighth of the limit, and never less than one
/// (`/proc/mdstat`). The rest of the descriptors stay for the collectors' reads, the web
/// server's connections and the store: a limit of 256 once went entirely to the watcher,
/// and the md pass, the store and `accept` all failed with EMFILE.
pub fn watch_budget(soft_limit: Option<u64>) -> usize {
    let share = soft_limit.map_or(MAX_WATCHED_FILES as u64, |l| l / 8);
    share.clamp(1, MAX_WATCHED_FILES as u64) as usize
}

pub struct MdCollector {
    roots: Roots,
    /// Full passes, skipped interval passes, and when the next safety-net pass is due.
    safety: SafetyNet,
    /// Set by the poll watcher before each wake, taken by the next pass; `None` before
    /// `watch`.
    woken: Option<Arc<AtomicBool>>,
    /// What the last full pass read and reported, while a skip may build on it.
    last: Option<LastFull>,
}

/// The last full pass: the mdstat text and sysfs array list it started from, the arrays it
/// read and their groups (with failure domains, which cost sysfs reads per member). The
/// readings are made anew from the arrays: kept, they took ~25 MB at 5,000 arrays.
struct LastFull {
    mdstat: String,
    sysfs: Vec<String>,
    arrays: Vec<ArrayInfo>,
    groups: Vec<GroupReading>,
}

impl LastFull {
    fn collection(&self) -> Collection {
        let mut c = Collection::present();
        for a in &self.arrays {
            readings(a, &mut c.readings);
        }
        c.groups = self.groups.clone();
        c
    }
}

fn md_dir(roots: &Roots, name: &str) -> PathBuf {
    roots.sys("block").join(name).join("md")
}

/// Names of arrays sysfs knows (`/sys/block/md*/md`).
fn sysfs_arrays(roots: &Roots) -> Result<Vec<String>, CollectError> {
    Ok(list_dir(&roots.sys("block"))?
        .into_iter()
        .filter(|n| n.starts_with("md") && md_dir(roots, n).is_dir())
        .collect())
}

/// `md/rdN -> dev-X` links: (entry `dev-X`, slot N). The kernel keeps one per occupied
/// slot, also on kernels and trees where `dev-X/slot` is absent.
fn rd_links(md: &Path, entries: &[String]) -> Vec<(String, u32)> {
    entries
        .iter()
        .filter_map(|e| {
            let n = e.strip_prefix("rd")?.parse::<u32>().ok()?;
            let target = std::fs::read_link(md.join(e)).ok()?;
            let dev = target.file_name()?.to_string_lossy().into_owned();
            dev.starts_with("dev-").then_some((dev, n))
        })
        .collect()
}

/// A numeric attribute: absent/empty/"none" is `None`, anything else must be a number.
fn number<T: std::str::FromStr>(path: &Path) -> Result<Option<T>, CollectError> {
    match read_value(path)? {
        None => Ok(None),
        Some(v) if v == "none" => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| CollectError::parse(path.display().to_string(), format!("{v:?}"))),
    }
}

fn parse_err(path: &Path, detail: String) -> CollectError {
    CollectError::parse(path.display().to_string(), detail)
}

/// The whole disk behind a member: `dev-X/block` links to the member's block device; a
/// partition (it has a `partition` attribute) sits inside its disk's directory.
fn member_disk(dev_dir: &Path, name: &str) -> String {
    let block = dev_dir.join("block");
    if let Ok(target) = std::fs::read_link(&block) {
        if block.join("partition").exists() {
            if let Some(parent) = target
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
            {
                return parent;
            }
        } else if block.join("dev").exists() {
            return name.to_string();
        }
    }
    array::whole_disk_name(name)
}

impl MdCollector {
    pub fn new(roots: Roots) -> Self {
        Self::with_clock(roots, Arc::new(std::time::Instant::now))
    }

    /// [`MdCollector::new`] timing its passes on `clock` (tests drive it by hand).
    pub fn with_clock(roots: Roots, clock: Clock) -> Self {
        MdCollector {
            roots,
            safety: SafetyNet::new(clock),
            woken: None,
            last: None,
        }
    }

    /// Full passes so far, and interval passes that read only `/proc/mdstat`.
    pub fn passes(&self) -> (u64, u64) {
        self.safety.passes()
    }

    /// The last full pass's result, when this pass may report it instead of reading every
    /// array: the watcher runs, no wake came since, the period has not run out, and
    /// `mdstat` and `sysfs` (read at the start of this pass) are what that pass read.
    fn unchanged(&self, woken: bool, mdstat: Option<&str>, sysfs: &[String]) -> Option<Collection> {
        if self.safety.due(watcher_alive(&self.woken), woken) {
            return None;
        }
        self.last
            .as_ref()
            .filter(|l| mdstat == Some(l.mdstat.as_str()) && sysfs == l.sysfs)
            .map(LastFull::collection)
    }

    /// The pass counters, in the running agent only (as net's).
    fn pass_readings(&self, c: &mut Collection) {
        if self.woken.is_none() {
            return;
        }
        self.safety.readings(
            (
                "sparewatch_md_full_passes_total",
                "Passes that read every array's sysfs attributes (start, wakes, a changed /proc/mdstat, the safety-net period over).",
            ),
            (
                "sparewatch_md_full_passes_skipped_total",
                "Interval passes that read only /proc/mdstat: it was unchanged since the last full pass, no wake came and the safety-net period had not run out, so that pass's result was reported.",
            ),
            (
                "sparewatch_md_safety_net_period_seconds",
                "Shortest time between two full interval passes while /proc/mdstat is unchanged and watched: 200 times the last full pass, at most 600 s; below the interval, every interval pass is a full one.",
            ),
            &mut c.pass_stats,
        );
    }

    /// `slots` maps `dev-*` entries to the slot their `md/rdN` link names: the source
    /// when `dev-*/slot` is absent.
    fn read_member(
        &self,
        md: &Path,
        entry: &str,
        slots: &[(String, u32)],
    ) -> Result<MemberInfo, CollectError> {
        let name = entry.trim_start_matches("dev-").to_string();
        let d = md.join(entry);
        let state = read_value(&d.join("state"))?
            .map(|s| array::parse_member_state(&s))
            .unwrap_or_default();
        let slot_path = d.join("slot");
        let linked = slots.iter().find(|(e, _)| e == entry).map(|(_, n)| *n);
        let (slot, slot_unknown) = match read_value(&slot_path)? {
            Some(s) => (
                array::parse_slot(&s).map_err(|e| parse_err(&slot_path, e))?,
                false,
            ),
            None => (linked, linked.is_none()),
        };
        Ok(MemberInfo {
            device: Some(member_disk(&d, &name)),
            name,
            slot,
            state,
            errors: number(&d.join("errors"))?,
            slot_unknown,
        })
    }

    /// Reads `/sys/block/<name>/md`; `None` when that directory does not exist.
    fn read_sysfs_array(
        &self,
        name: &str,
        listed: Option<&MdstatArray>,
    ) -> Result<Option<ArrayInfo>, CollectError> {
        let md = md_dir(&self.roots, name);
        if !md.is_dir() {
            return Ok(None);
        }
        let raid_disks_path = md.join("raid_disks");
        let raid_disks = match read_value(&raid_disks_path)? {
            Some(v) => {
                Some(array::parse_raid_disks(&v).map_err(|e| parse_err(&raid_disks_path, e))?)
            }
            None => None,
        };
        let sync_path = md.join("sync_completed");
        let sync_completed = match read_value(&sync_path)? {
            Some(v) => array::parse_sync_completed(&v).map_err(|e| parse_err(&sync_path, e))?,
            None => None,
        };
        let array_state = read_value(&md.join("array_state"))?;
        let level = read_value(&md.join("level"))?;
        let active = match listed {
            Some(l) => l.active,
            None => {
                !matches!(array_state.as_deref(), Some("inactive") | Some("clear"))
                    && level.is_some()
            }
        };
        let entries = list_dir(&md)?;
        let slots = rd_links(&md, &entries);
        let mut members = Vec::new();
        for entry in entries.iter().filter(|e| e.starts_with("dev-")) {
            members.push(self.read_member(&md, entry, &slots)?);
        }
        Ok(Some(ArrayInfo {
            name: name.to_string(),
            active,
            level,
            raid_disks,
            // "2", "-1" (raid0 without a layout), "2 (1)" while a reshape changes it: only
            // the current non-negative value is of use.
            layout: read_value(&md.join("layout"))?.and_then(|v| {
                v.split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<u32>().ok())
            }),
            degraded: number(&md.join("degraded"))?,
            array_state,
            sync_action: read_value(&md.join("sync_action"))?,
            sync_completed,
            // "none" while no sync runs.
            sync_speed_kib: read_value(&md.join("sync_speed"))?.and_then(|v| v.parse().ok()),
            mismatch_sectors: number(&md.join("mismatch_cnt"))?,
            metadata_version: read_value(&md.join("metadata_version"))?,
            members,
            from_mdstat_only: false,
            unreadable: None,
            mdstat_count: listed.and_then(MdstatCount::of),
        }))
    }

    /// Every array, from the mdstat text and sysfs array list read at the start of the
    /// pass; also whether any could not be read.
    fn arrays(
        &self,
        mdstat_text: Option<&str>,
        sysfs: &[String],
    ) -> Result<(Vec<ArrayInfo>, bool), CollectError> {
        let mdstat: Option<Mdstat> = mdstat_text.map(mdstat::parse).transpose()?;
        let listed: &[MdstatArray] = mdstat.as_ref().map(|m| &m.arrays[..]).unwrap_or(&[]);
        let mut names: Vec<String> = listed.iter().map(|a| a.name.clone()).collect();
        for n in sysfs {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for name in names {
            let entry = listed.iter().find(|a| a.name == name);
            let read = match self.read_sysfs_array(&name, entry) {
                Ok(read) => read,
                Err(e) => {
                    // One malformed array must not hide the others: it becomes a group
                    // whose members are unknown, with the error as the reason.
                    let e = e.to_string();
                    unreadable.push(format!("{name}: {e}"));
                    out.push(self.unreadable_array(&name, entry, e));
                    continue;
                }
            };
            match read {
                Some(a) => {
                    // An md device node that holds no array (array_state "clear", no
                    // members) is not an array.
                    let empty = a.members.is_empty()
                        && matches!(a.array_state.as_deref(), Some("clear") | None)
                        && entry.is_none();
                    if !empty {
                        out.push(a);
                    }
                }
                None => {
                    if let Some(e) = entry {
                        match &e.error {
                            // Neither source could read it: known by name only.
                            Some(why) => {
                                unreadable.push(format!("{name}: {why}"));
                                out.push(self.unreadable_array(&name, Some(e), why.clone()));
                            }
                            None => out.push(ArrayInfo::from_mdstat(e)),
                        }
                    }
                }
            }
        }
        if !unreadable.is_empty() {
            // Each array's own reason is on its members; the log line names the first few
            // (5,000 unreadable arrays once made one 350 KB line per pass).
            tracing::warn!(
                collector = "md",
                errors = %first_of(&unreadable, 5),
                "{} md array(s) could not be read; their members are reported unknown",
                unreadable.len()
            );
        }
        Ok((out, !unreadable.is_empty()))
    }

    /// An array whose sysfs directory could not be read: the members sysfs lists (else
    /// those `/proc/mdstat` lists, else none) with `error` as the reason they are unknown.
    fn unreadable_array(
        &self,
        name: &str,
        listed: Option<&MdstatArray>,
        error: String,
    ) -> ArrayInfo {
        let md = md_dir(&self.roots, name);
        let mut members: Vec<String> = list_dir(&md)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| e.strip_prefix("dev-").map(str::to_string))
            .collect();
        if members.is_empty() {
            members = listed
                .map(|l| l.devices.iter().map(|d| d.name.clone()).collect())
                .unwrap_or_default();
        }
        let level = listed
            .and_then(|l| l.level.clone())
            .or_else(|| read_value(&md.join("level")).ok().flatten());
        ArrayInfo::unreadable(
            name,
            level,
            listed.and_then(|l| l.raid_disks),
            members,
            error,
        )
    }
}

fn dev(a: &ArrayInfo) -> Vec<(&'static str, String)> {
    vec![("device", a.name.clone())]
}

const ARRAY_STATE: OneHot = OneHot {
    name: "sparewatch_md_array_state",
    help: "The array's state (md/array_state): one series per state, the current one is 1.",
    label: "state",
    known: &ARRAY_STATES,
};

const SYNC_ACTION: OneHot = OneHot {
    name: "sparewatch_md_sync_action",
    help:
        "The sync operation running (md/sync_action): one series per action, the current one is 1.",
    label: "action",
    known: &SYNC_ACTIONS,
};

/// A plain gauge of the array when the value is known.
fn array_gauge(
    out: &mut Vec<Reading>,
    a: &ArrayInfo,
    name: &'static str,
    help: &'static str,
    v: Option<f64>,
) {
    if let Some(v) = v {
        out.push(Reading::gauge(name, help, dev(a), v));
    }
}

/// Raw readings of one array.
pub fn readings(a: &ArrayInfo, out: &mut Vec<Reading>) {
    let mut info = dev(a);
    info.push(("level", a.level().unwrap_or("").to_string()));
    info.push((
        "metadata_version",
        a.metadata_version.clone().unwrap_or_default(),
    ));
    out.push(Reading::gauge(
        "sparewatch_md_info",
        "An md array, its RAID level and metadata version.",
        info,
        1.0,
    ));
    if a.unreadable.is_some() {
        // Nothing else of it was read.
        return;
    }
    array_gauge(
        out,
        a,
        "sparewatch_md_raid_disks",
        "Member slots of the array (md/raid_disks).",
        a.raid_disks.map(f64::from),
    );
    array_gauge(
        out,
        a,
        "sparewatch_md_degraded_disks",
        "Slots without an in-sync device, as the kernel counts them (md/degraded).",
        a.degraded.map(f64::from),
    );
    ARRAY_STATE.push(out, &dev(a), a.array_state.as_deref());
    SYNC_ACTION.push(out, &dev(a), a.sync_action.as_deref());
    let ratio = a.sync_ratio();
    array_gauge(
        out,
        a,
        "sparewatch_md_sync_completed_ratio",
        "Progress of the running resync/recovery/check/reshape, 0 to 1 (md/sync_completed); absent when none runs.",
        ratio,
    );
    array_gauge(
        out,
        a,
        "sparewatch_md_sync_speed_bytes_per_second",
        "Current speed of the running sync operation (md/sync_speed); absent when none runs.",
        ratio.and(a.sync_speed_kib).map(|kib| kib as f64 * 1024.0),
    );
    array_gauge(
        out,
        a,
        "sparewatch_md_mismatch_sectors",
        "Sectors the last check or repair found inconsistent (md/mismatch_cnt).",
        a.mismatch_sectors.map(|n| n as f64),
    );
    for m in &a.members {
        if let Some(e) = m.errors {
            out.push(Reading::gauge(
                "sparewatch_md_member_corrected_errors",
                "Read errors md corrected on this member device (dev-*/errors).",
                vec![("device", a.name.clone()), ("member", m.name.clone())],
                e as f64,
            ));
        }
    }
}

impl Collector for MdCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let woken = self
            .woken
            .as_ref()
            .is_some_and(|w| w.swap(false, Ordering::SeqCst));
        // Read once: what a skip compares with the last full pass, and what a full pass
        // starts from.
        let mdstat_text = read_optional(&self.roots.proc("mdstat"))?;
        let sysfs = sysfs_arrays(&self.roots)?;
        if let Some(mut c) = self.unchanged(woken, mdstat_text.as_deref(), &sysfs) {
            self.safety.skip();
            self.pass_readings(&mut c);
            return Ok(c);
        }
        let started = self.safety.now();
        self.last = None;
        let (arrays, unreadable) = self.arrays(mdstat_text.as_deref(), &sysfs)?;
        if arrays.is_empty() {
            self.safety.reset();
            return Ok(Collection::not_present());
        }
        let mut c = Collection::present();
        for a in &arrays {
            readings(a, &mut c.readings);
            if let Some(mut g) = a.group() {
                crate::topology::annotate_block_group(
                    &self.roots,
                    crate::topology::BlockUse::RaidMember,
                    &mut g,
                );
                c.groups.push(g);
            }
        }
        self.safety.full_done(started);
        // A skip builds on this pass only when the watcher runs, mdstat was there to
        // compare, and every array was read (an unreadable one is read again next time).
        if let (Some(mdstat), false, true) = (mdstat_text, unreadable, self.woken.is_some()) {
            self.last = Some(LastFull {
                mdstat,
                sysfs,
                arrays,
                groups: c.groups.clone(),
            });
        }
        self.pass_readings(&mut c);
        Ok(c)
    }

    fn watch(&mut self, wake: Wake) -> Result<(), CollectError> {
        let roots = self.roots.clone();
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let woken = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&woken);
        // The flag before the wake: the pass the wake starts sees it and reads everything.
        let wake = Wake::new(move || {
            flag.store(true, Ordering::SeqCst);
            wake.wake();
        });
        watch::spawn_poll_watcher(
            "md",
            wake,
            Duration::from_secs(30),
            watch_budget(soft),
            move || watched_files(&roots),
        )
        .map_err(|e| CollectError::Other(format!("md poll watcher: {e}")))?;
        self.woken = Some(woken);
        Ok(())
    }
}

/// The first `n` of `items` joined with "; ", and how many more there are.
fn first_of(items: &[String], n: usize) -> String {
    let mut out = items.iter().take(n).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > n {
        out.push_str(&format!("; and {} more", items.len() - n));
    }
    out
}

/// `/proc/mdstat` first (it alone hears every md event), then each array's notified
/// attributes, then each member's `state`: when the list is longer than the watcher's
/// budget ([`MAX_WATCHED_FILES`]), what is cut is the least telling.
pub fn watched_files(roots: &Roots) -> Vec<PathBuf> {
    let mut out = vec![roots.proc("mdstat")];
    let mut members = Vec::new();
    for name in sysfs_arrays(roots).unwrap_or_default() {
        let md = md_dir(roots, &name);
        out.extend(NOTIFIED_ATTRS.iter().map(|a| md.join(a)));
        for e in list_dir(&md).unwrap_or_default() {
            if e.starts_with("dev-") {
                members.push(md.join(e).join("state"));
            }
        }
    }
    out.extend(members);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The watch list puts /proc/mdstat first and the members' `state` files last, so the
    /// watcher's descriptor budget cuts the least telling files on a host of many arrays.
    #[test]
    fn watched_files_put_mdstat_first_and_member_states_last() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        for n in 0..100 {
            let md = dir.path().join(format!("sys/block/md{n}/md"));
            for d in ["dev-sda", "dev-sdb"] {
                std::fs::create_dir_all(md.join(d)).unwrap();
            }
        }
        let roots = Roots::under(dir.path());
        let files = watched_files(&roots);
        assert_eq!(files.len(), 1 + 100 * 3 + 100 * 2);
        assert_eq!(files[0], roots.proc("mdstat"));
        let kept = &files[..MAX_WATCHED_FILES];
        assert!(kept
            .iter()
            .all(|f| !f.ends_with("state") || f.ends_with("array_state")));
        assert!(files[1 + 300..].iter().all(|f| f.ends_with("state")));
    }

    #[test]
    fn first_of_names_a_few_and_counts_the_rest() {
        let items: Vec<String> = (0..8).map(|i| format!("md{i}: gone")).collect();
        assert_eq!(first_of(&items[..2], 5), "md0: gone; md1: gone");
        assert_eq!(first_of(&items, 2), "md0: gone; md1: gone; and 6 more");
    }

    /// The watcher takes an eighth of the open-files limit at most: 256 under the packaged
    /// unit's 4096, 32 under 256, one (mdstat) under a tiny limit or none known.
    #[test]
    fn watch_budget_leaves_most_descriptors_to_the_rest() {
        assert_eq!(watch_budget(Some(4096)), MAX_WATCHED_FILES);
        assert_eq!(watch_budget(Some(1 << 20)), MAX_WATCHED_FILES);
        assert_eq!(watch_budget(Some(256)), 32);
        assert_eq!(watch_budget(Some(4)), 1);
        assert_eq!(watch_budget(None), MAX_WATCHED_FILES);
    }

    proptest! {
        /// Done-means of issue 15: whatever a paragraph of /proc/mdstat looks like, the
        /// collector is not down; at most that array is unknown.
        #[test]
        fn no_mdstat_text_takes_the_collector_down(
            s in "(md[0-9]{1,3} : (active|inactive|broken|exploded|) ?(\\((auto-)?read-only\\) )?(raid[0-9]{1,2}|linear|[a-z]{0,5}) ([a-z]{2,4}[0-9]?\\[[0-9x]{0,2}\\](\\([FSWRJX]\\))? ?){0,4}\n( +[0-9]{1,6} blocks (super [a-z0-9.:/]{0,12} )?[\\[\\]0-9/U_ ]{0,12}\n)?( +(\\[[=>.]{0,5}\\] +)?(resync|recovery|check|reshape) ?= ?[0-9.%A-Z]* ?(\\([0-9/a-z]*\\))?\n)?\n?){0,4}",
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("sys/block")).unwrap();
            std::fs::create_dir_all(dir.path().join("proc")).unwrap();
            std::fs::write(dir.path().join("proc/mdstat"), &s).unwrap();
            let mut c = MdCollector::new(Roots::under(dir.path()));
            let got = c.collect();
            prop_assert!(got.is_ok(), "{s:?}: {got:?}");
            let got = got.unwrap();
            let listed = mdstat::parse(&s).unwrap().arrays;
            for a in &listed {
                // Every array line is reported (containers have no group by design).
                let has_group = got.groups.iter().any(|g| g.name == format!("md:{}", a.name));
                prop_assert!(has_group || a.is_container() || a.level.as_deref() == Some("container"),
                    "{s:?}: {} missing", a.name);
            }
        }
    }
}

#[cfg(test)]
mod stretch_tests;
