//! md arrays as redundancy groups: pure functions from what sysfs (or `/proc/mdstat`) says
//! about an array to the group `md:<kernel name>`.
//!
//! Size: about 630 lines of code (plus about 520 of tests): the sysfs attribute parsers and the
//! per-level policy, then the decision from an array's state to its group for every md level
//! and sync action, which is easier to check whole than split.

use super::mdstat::MdstatArray;
use crate::{GroupReading, MemberHealth, MemberReading, Role, StatedRedundancy};

/// What the kernel says about one array (`/sys/block/<md>/md/*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArrayInfo {
    /// Kernel name (`md0`, `md127`, `md_home`).
    pub name: String,
    /// Running (`/proc/mdstat` "active"; sysfs `array_state` not `inactive`/`clear`).
    pub active: bool,
    /// `level`: `raid1`, `raid5`, `linear`, `container`; `None` or empty when inactive.
    pub level: Option<String>,
    /// `raid_disks`: slots in the array (the new count while a reshape runs).
    pub raid_disks: Option<u32>,
    /// `layout` (raid10: near copies in bits 0-7, far copies in bits 8-15).
    pub layout: Option<u32>,
    /// `degraded`: slots without an in-sync device.
    pub degraded: Option<u32>,
    pub array_state: Option<String>,
    /// `sync_action`: idle, resync, recover, check, repair, reshape, frozen.
    pub sync_action: Option<String>,
    /// `sync_completed` as (done, total) in 512-byte sectors while a sync runs.
    pub sync_completed: Option<(u64, u64)>,
    /// `sync_speed` in KiB/s (meaningful while a sync runs).
    pub sync_speed_kib: Option<u64>,
    /// `mismatch_cnt`: sectors found inconsistent by the last check/repair.
    pub mismatch_sectors: Option<u64>,
    pub metadata_version: Option<String>,
    pub members: Vec<MemberInfo>,
    /// Members are per-slot placeholders from `/proc/mdstat` (no sysfs): names are slots.
    pub from_mdstat_only: bool,
    /// Why the array's sysfs directory could not be read (a malformed attribute, an I/O
    /// error): every member is then unknown with this reason.
    pub unreadable: Option<String>,
    /// What `/proc/mdstat` says of the same array when the members come from sysfs: a
    /// second opinion, merged as stated evidence (the worse wins, a disagreement is
    /// exported).
    pub mdstat_count: Option<MdstatCount>,
}

/// The counts `/proc/mdstat` prints for an array: `[raid_disks/working]` and the devices
/// still attached with `(F)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MdstatCount {
    pub raid_disks: u32,
    pub working: u32,
    pub faulty_attached: u32,
}

impl MdstatCount {
    /// From an array paragraph that printed `[n/m]`.
    pub fn of(m: &MdstatArray) -> Option<MdstatCount> {
        if m.error.is_some() || !m.active {
            return None;
        }
        Some(MdstatCount {
            raid_disks: m.raid_disks?,
            working: m.working_disks?,
            faulty_attached: m.devices.iter().filter(|d| d.faulty).count() as u32,
        })
    }

    /// The redundancy these counts state for an array needing `required` slots: all
    /// working and nothing faulty attached is fully redundant; a faulty device still
    /// attached or a slot down with a spare left is degraded; no slot to spare is lost;
    /// fewer than required is insufficient.
    pub fn stated(&self, required: u32) -> StatedRedundancy {
        let spare = i64::from(self.working) - i64::from(required);
        if spare < 0 {
            StatedRedundancy::Insufficient
        } else if spare == 0 {
            StatedRedundancy::Lost
        } else if self.working >= self.raid_disks && self.faulty_attached == 0 {
            StatedRedundancy::FullyRedundant
        } else {
            StatedRedundancy::Degraded
        }
    }
}

/// One member device (`/sys/block/<md>/md/dev-<name>/`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberInfo {
    /// Kernel name of the member block device (`sdb1`, `nvme0n1p2`).
    pub name: String,
    /// Whole-disk name behind it (`sdb`, `nvme0n1`), for SMART risks.
    pub device: Option<String>,
    /// `slot`: the role in the array; `None` ("none") for spares and unassigned devices.
    pub slot: Option<u32>,
    /// `state` flags: faulty, in_sync, write_mostly, blocked, spare, write_error,
    /// want_replacement, replacement, journal, ...
    pub state: Vec<String>,
    /// `errors`: read errors corrected on this device.
    pub errors: Option<u64>,
    /// Neither `slot` nor an `md/rdN` link says which slot it holds (the attribute is
    /// absent): the member is not taken for a hot spare, and when in sync it fills a slot.
    pub slot_unknown: bool,
}

impl MemberInfo {
    pub fn has(&self, flag: &str) -> bool {
        self.state.iter().any(|s| s == flag)
    }

    /// Flags the kernel's `state_show` prints (it always prints one of faulty, in_sync,
    /// journal, spare); `missing` is this crate's own mark for an empty slot. Without any
    /// of them the state was not read.
    fn state_is_known(&self) -> bool {
        [
            "faulty",
            "in_sync",
            "journal",
            "spare",
            "write_mostly",
            "blocked",
            "write_error",
            "want_replacement",
            "replacement",
            "external_bbl",
            "failfast",
            "missing",
        ]
        .iter()
        .any(|f| self.has(f))
    }
}

/// More slots than any md array can have: a v1 superblock describes at most
/// (4096 − 256) / 2 = 1920 devices (the kernel's `super_1_load` refuses more). A larger
/// count is corruption; refusing it keeps [`ArrayInfo::group`] from building a member per
/// slot for billions of slots.
pub const MAX_RAID_DISKS: u32 = 65_536;

/// `raid_disks`: "4", or "4 (3)" while a reshape from 3 to 4 runs. The first is the count
/// the array is moving to.
pub fn parse_raid_disks(s: &str) -> Result<u32, String> {
    let first = s.split_whitespace().next().unwrap_or("");
    match first.parse::<u32>() {
        Ok(n) if n <= MAX_RAID_DISKS => Ok(n),
        Ok(_) => Err(format!("raid_disks: implausibly large: {s:?}")),
        Err(_) => Err(format!("raid_disks: not a number: {s:?}")),
    }
}

/// `sync_completed`: "none" or "delayed" (no sync running) or "<done> / <total>" sectors.
pub fn parse_sync_completed(s: &str) -> Result<Option<(u64, u64)>, String> {
    let s = s.trim();
    if s == "none" || s == "delayed" || s.is_empty() {
        return Ok(None);
    }
    let (d, t) = s
        .split_once('/')
        .ok_or_else(|| format!("sync_completed: unexpected {s:?}"))?;
    let d = d.trim().parse::<u64>();
    let t = t.trim().parse::<u64>();
    match (d, t) {
        (Ok(d), Ok(t)) => Ok(Some((d, t))),
        _ => Err(format!("sync_completed: unexpected {s:?}")),
    }
}

/// `dev-*/slot`: a number, or "none".
pub fn parse_slot(s: &str) -> Result<Option<u32>, String> {
    let s = s.trim();
    if s == "none" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("slot: unexpected {s:?}"))
}

/// `dev-*/state`: comma-separated flags ("in_sync,write_mostly").
pub fn parse_member_state(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

/// The whole disk a partition's kernel name belongs to, by naming convention
/// (`sdb1` → `sdb`, `nvme0n1p2` → `nvme0n1`, `mmcblk0p1` → `mmcblk0`, `dm-3` → `dm-3`).
/// Used when sysfs does not show the parent.
pub fn whole_disk_name(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() == name.len() || trimmed.is_empty() {
        return name.to_string();
    }
    // Names that end in a digit themselves take a "p" before the partition number.
    let numbered_disk = ["nvme", "mmcblk", "loop", "nbd", "md", "zram", "rbd"];
    if numbered_disk.iter().any(|p| name.starts_with(p)) {
        if let Some(base) = trimmed.strip_suffix('p') {
            if base.ends_with(|c: char| c.is_ascii_digit()) {
                return base.to_string();
            }
        }
        return name.to_string();
    }
    if name.starts_with("dm-") {
        return name.to_string();
    }
    if ["sd", "vd", "hd", "xvd"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return trimmed.to_string();
    }
    name.to_string()
}

/// How a level tolerates failures, for `required = raid_disks − tolerance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub required: u32,
    /// raid0/linear: no redundancy by design.
    pub by_design: bool,
}

/// Copies of each block in a raid10 layout: near × far (offset layouts use the far field).
/// Unknown layout: the mdadm default, near=2.
pub fn raid10_copies(layout: Option<u32>) -> u32 {
    match layout {
        Some(l) => {
            let near = l & 0xff;
            let far = (l >> 8) & 0xff;
            (near.max(1) * far.max(1)).max(1)
        }
        None => 2,
    }
}

/// `required` by level. raid1: any one mirror half carries the data (n-way tolerates
/// n−1). raid4/5: one. raid6: two. raid10: copies − 1, the number of failures it survives
/// whichever devices fail (a near=2 array of 4 may survive 2, but not any 2).
/// raid0, linear and unknown levels tolerate none; raid0/linear are single by design.
pub fn policy(level: Option<&str>, raid_disks: u32, layout: Option<u32>) -> Policy {
    let n = raid_disks;
    let tol = |t: u32| Policy {
        required: n.saturating_sub(t).max(1),
        by_design: false,
    };
    match level.unwrap_or("") {
        "raid1" | "multipath" => tol(n.saturating_sub(1)),
        "raid4" | "raid5" => tol(1),
        "raid6" => tol(2),
        "raid10" => tol(raid10_copies(layout).saturating_sub(1)),
        "raid0" | "linear" | "faulty" => Policy {
            required: n.max(1),
            by_design: true,
        },
        _ => tol(0),
    }
}

impl ArrayInfo {
    /// The fallback when `/sys/block/<md>/md` cannot be read: members are the slots of the
    /// `[UU_]` string (named `slot0`, `slot1`, ...) plus the spares by name.
    pub fn from_mdstat(m: &MdstatArray) -> ArrayInfo {
        let mut members = Vec::new();
        let mut raid_disks = m.raid_disks;
        if let Some(status) = &m.slot_status {
            let mut empty = 0usize;
            for (i, c) in status.chars().enumerate() {
                empty += usize::from(c != 'U');
                members.push(MemberInfo {
                    name: format!("slot{i}"),
                    slot: Some(i as u32),
                    state: vec![if c == 'U' { "in_sync" } else { "missing" }.to_string()],
                    ..MemberInfo::default()
                });
            }
            // Faulty devices beyond the empty slots were replaced and are still attached
            // (`[4/4]` with `(F)` devices): dead spares, as sysfs shows them.
            for d in m.devices.iter().filter(|d| d.faulty).skip(empty) {
                members.push(MemberInfo {
                    name: d.name.clone(),
                    device: Some(whole_disk_name(&d.name)),
                    state: vec!["faulty".to_string()],
                    ..MemberInfo::default()
                });
            }
        } else if m.active {
            // raid0/linear print no `[n/m]`: each listed device holds one slot.
            let mut next = 0u32;
            for d in m.devices.iter().filter(|d| !d.spare) {
                let (slot, state) = if d.faulty {
                    (None, "faulty")
                } else {
                    next += 1;
                    (Some(next - 1), "in_sync")
                };
                members.push(MemberInfo {
                    name: d.name.clone(),
                    device: Some(whole_disk_name(&d.name)),
                    slot,
                    state: vec![state.to_string()],
                    ..MemberInfo::default()
                });
            }
            raid_disks = Some(members.len() as u32);
        }
        for d in &m.devices {
            if d.spare && !d.faulty && m.active {
                members.push(MemberInfo {
                    name: d.name.clone(),
                    device: Some(whole_disk_name(&d.name)),
                    slot: None,
                    state: vec!["spare".to_string()],
                    ..MemberInfo::default()
                });
            }
        }
        if !m.active {
            members = m
                .devices
                .iter()
                .map(|d| MemberInfo {
                    name: d.name.clone(),
                    device: Some(whole_disk_name(&d.name)),
                    ..MemberInfo::default()
                })
                .collect();
        }
        let level = if m.is_container() {
            Some("container".to_string())
        } else {
            m.level.clone()
        };
        let array_state = if m.broken {
            "broken"
        } else if m.active {
            "active"
        } else {
            "inactive"
        };
        ArrayInfo {
            name: m.name.clone(),
            active: m.active,
            level,
            raid_disks,
            degraded: match (m.raid_disks, m.working_disks) {
                (Some(n), Some(w)) => Some(n.saturating_sub(w)),
                _ => None,
            },
            array_state: Some(array_state.to_string()),
            sync_action: Some(
                match m.sync.as_ref() {
                    Some(s) if s.waiting.is_none() => match s.action.as_str() {
                        "recovery" => "recover",
                        other => other,
                    },
                    _ => "idle",
                }
                .to_string(),
            ),
            sync_completed: m
                .sync
                .as_ref()
                .and_then(|s| s.done_total)
                // 1 KiB blocks to 512-byte sectors; a corrupt count saturates instead of
                // overflowing (the ratio stays meaningful, nothing panics).
                .map(|(d, t)| (d.saturating_mul(2), t.saturating_mul(2))),
            metadata_version: m.metadata.clone(),
            members,
            from_mdstat_only: true,
            ..ArrayInfo::default()
        }
    }

    /// An array that could not be read: `members` are the device names known from
    /// elsewhere (sysfs `dev-*` entries or `/proc/mdstat`), possibly none.
    pub fn unreadable(
        name: &str,
        level: Option<String>,
        raid_disks: Option<u32>,
        members: Vec<String>,
        error: String,
    ) -> ArrayInfo {
        ArrayInfo {
            name: name.to_string(),
            active: true,
            level,
            raid_disks,
            members: members
                .into_iter()
                .map(|n| MemberInfo {
                    device: Some(whole_disk_name(&n)),
                    name: n,
                    ..MemberInfo::default()
                })
                .collect(),
            unreadable: Some(error),
            ..ArrayInfo::default()
        }
    }

    /// The group of an unreadable array: every member unknown with the error. Without a
    /// known member, one member named after the array stands for them all (then required
    /// is 1: a count of stand-ins says nothing about the real members).
    fn unreadable_group(&self, error: &str) -> GroupReading {
        let unknown = || MemberHealth::Unknown(error.to_string());
        if self.members.is_empty() {
            let mut g = GroupReading::new(format!("md:{}", self.name), "md", 1);
            g.members
                .push(MemberReading::new(&self.name, Role::Active, unknown()));
            return g;
        }
        let n = self.raid_disks.unwrap_or(self.members.len() as u32);
        let p = policy(self.level(), n, self.layout);
        let mut g = GroupReading::new(format!("md:{}", self.name), "md", p.required);
        g.by_design = p.by_design;
        for m in &self.members {
            let mut r = MemberReading::new(&m.name, Role::Active, unknown());
            r.device = m.device.clone();
            g.members.push(r);
        }
        g
    }

    /// Level as reported, `None` when empty (inactive arrays).
    pub fn level(&self) -> Option<&str> {
        self.level.as_deref().filter(|l| !l.is_empty())
    }

    /// IMSM/DDF containers hold metadata only; their member arrays are the groups.
    pub fn is_container(&self) -> bool {
        self.level() == Some("container")
    }

    fn rebuilding(&self) -> bool {
        matches!(
            self.sync_action.as_deref(),
            Some("recover") | Some("reshape")
        )
    }

    /// Progress 0..=1 of the running sync, if one runs.
    pub fn sync_ratio(&self) -> Option<f64> {
        match self.sync_completed {
            Some((d, t)) if t > 0 => Some((d as f64 / t as f64).clamp(0.0, 1.0)),
            _ => None,
        }
    }

    /// md gave the array up (`array_state` / mdstat `broken`).
    pub fn is_broken(&self) -> bool {
        self.array_state.as_deref() == Some("broken")
    }

    fn member_health(&self, m: &MemberInfo) -> (Role, MemberHealth) {
        if !self.active {
            return (
                Role::Active,
                MemberHealth::Unhealthy("array inactive".into()),
            );
        }
        if !m.state_is_known() {
            // An empty, absent or unrecognised `state` is missing data, not a failure.
            let why = if m.state.is_empty() {
                format!("dev-{}/state empty or absent", m.name)
            } else {
                format!("dev-{}/state unrecognised: {}", m.name, m.state.join(","))
            };
            return (Role::Active, MemberHealth::Unknown(why));
        }
        if m.has("faulty") {
            return (Role::Active, MemberHealth::Unhealthy("faulty".into()));
        }
        if m.has("missing") {
            return (Role::Active, MemberHealth::Unhealthy("missing".into()));
        }
        if m.has("replacement") {
            let h = if m.has("in_sync") {
                MemberHealth::Healthy
            } else {
                MemberHealth::Unhealthy("rebuilding (replacement)".into())
            };
            return (Role::Spare, h);
        }
        if m.slot.is_none() && (!m.slot_unknown || m.has("spare")) {
            // Hot spare: idle until a member fails, checked like the others.
            return (Role::Spare, MemberHealth::Healthy);
        }
        if m.has("blocked") {
            return (Role::Active, MemberHealth::Unhealthy("blocked".into()));
        }
        if !m.has("in_sync") {
            let why = if self.rebuilding() {
                "rebuilding"
            } else {
                "not in sync"
            };
            return (Role::Active, MemberHealth::Unhealthy(why.into()));
        }
        if m.has("want_replacement") {
            return (
                Role::Active,
                MemberHealth::AtRisk("marked for replacement".into()),
            );
        }
        if m.has("write_error") {
            return (Role::Active, MemberHealth::AtRisk("write errors".into()));
        }
        (Role::Active, MemberHealth::Healthy)
    }

    /// What the kernel states beside the member count: `broken` is a failed array
    /// whatever its members look like; `/proc/mdstat` reporting the array worse than the
    /// sysfs members do (fewer working slots, or faulty devices still attached while no
    /// member is unhealthy) is stated evidence, so the worse view wins and the engine
    /// exports the disagreement. When mdstat is as good or better, nothing is stated.
    fn stated(&self, g: &GroupReading) -> Option<StatedRedundancy> {
        if self.is_broken() {
            return Some(StatedRedundancy::Insufficient);
        }
        let c = self.mdstat_count?;
        if !self.active || g.by_design {
            return None;
        }
        let working = g
            .members
            .iter()
            .filter(|m| m.role != Role::Spare && m.health.counts_healthy())
            .count() as u32;
        let unhealthy = g
            .members
            .iter()
            .any(|m| matches!(m.health, MemberHealth::Unhealthy(_)));
        let worse = c.working < working || (c.faulty_attached > 0 && !unhealthy);
        worse.then(|| c.stated(g.required))
    }

    /// The group `md:<name>`, or `None` for a container.
    pub fn group(&self) -> Option<GroupReading> {
        if self.is_container() {
            return None;
        }
        if let Some(error) = &self.unreadable {
            return Some(self.unreadable_group(error));
        }
        let data_members: Vec<&MemberInfo> =
            self.members.iter().filter(|m| !m.has("journal")).collect();
        let raid_disks = self
            .raid_disks
            .filter(|n| *n > 0)
            .unwrap_or_else(|| {
                data_members
                    .iter()
                    .filter(|m| {
                        (m.slot.is_some() || (m.slot_unknown && !m.has("spare")))
                            && !m.has("replacement")
                    })
                    .count() as u32
            })
            .min(MAX_RAID_DISKS);
        let policy = if self.active {
            policy(self.level(), raid_disks, self.layout)
        } else {
            // An inactive array serves no I/O: its function is lost whatever its level.
            Policy {
                required: policy(self.level(), raid_disks, self.layout)
                    .required
                    .max(1),
                by_design: false,
            }
        };
        let mut g = GroupReading::new(format!("md:{}", self.name), "md", policy.required);
        g.by_design = policy.by_design;
        // Slots without a device are members too: an array of 4 with 3 devices has lost
        // one. md takes a failed device out of its slot at once (`slot` = none), so a
        // faulty device without a slot stands for one of those empty slots; once a spare
        // has taken that slot over, the faulty device is a dead spare left attached (until
        // `mdadm --remove`), which keeps the group degraded.
        let free_slots = (0..raid_disks)
            .filter(|slot| {
                !data_members
                    .iter()
                    .any(|m| m.slot == Some(*slot) && !m.has("replacement"))
            })
            .collect::<Vec<u32>>()
            .into_iter();
        // Members whose slot no source names (no `slot`, no `rdN`) and that are not
        // spares hold one of the free slots: a missing attribute never empties a slot.
        let unplaced = data_members
            .iter()
            .filter(|m| m.slot_unknown && !m.has("spare") && !m.has("faulty"))
            .count();
        let mut free_slots = free_slots.skip(unplaced);
        for m in &data_members {
            let (mut role, health) = self.member_health(m);
            if self.active && m.slot.is_none() && m.has("faulty") {
                role = match free_slots.next() {
                    Some(_) => Role::Active,
                    None => Role::Spare,
                };
            }
            let mut r = MemberReading::new(&m.name, role, health);
            r.device = m.device.clone();
            g.members.push(r);
        }
        if self.active {
            for slot in free_slots {
                g.members.push(MemberReading::new(
                    format!("slot{slot}"),
                    Role::Active,
                    MemberHealth::Unhealthy("missing".into()),
                ));
            }
        } else if g.members.is_empty() {
            g.members.push(MemberReading::new(
                "array",
                Role::Active,
                MemberHealth::Unhealthy("array inactive".into()),
            ));
        }
        g.stated = self.stated(&g);
        Some(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(name: &str, slot: Option<u32>, state: &str) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            device: Some(whole_disk_name(name)),
            slot,
            state: parse_member_state(state),
            errors: None,
            slot_unknown: false,
        }
    }

    fn array(level: &str, raid_disks: u32, members: Vec<MemberInfo>) -> ArrayInfo {
        ArrayInfo {
            name: "md0".into(),
            active: true,
            level: Some(level.into()),
            raid_disks: Some(raid_disks),
            sync_action: Some("idle".into()),
            members,
            ..ArrayInfo::default()
        }
    }

    fn healthy(g: &GroupReading) -> usize {
        g.members
            .iter()
            .filter(|m| m.role != Role::Spare && m.health.counts_healthy())
            .count()
    }

    #[test]
    fn required_by_level() {
        assert_eq!(policy(Some("raid1"), 2, None).required, 1);
        assert_eq!(policy(Some("raid1"), 3, None).required, 1);
        assert_eq!(policy(Some("raid5"), 3, None).required, 2);
        assert_eq!(policy(Some("raid4"), 5, None).required, 4);
        assert_eq!(policy(Some("raid6"), 4, None).required, 2);
        // near=2 (0x102), far=2 (0x201), near=3 (0x103), offset=2 (0x10201).
        assert_eq!(policy(Some("raid10"), 4, Some(0x102)).required, 3);
        assert_eq!(policy(Some("raid10"), 4, Some(0x201)).required, 3);
        assert_eq!(policy(Some("raid10"), 6, Some(0x103)).required, 4);
        assert_eq!(policy(Some("raid10"), 4, Some(0x10201)).required, 3);
        assert_eq!(policy(Some("raid10"), 4, None).required, 3);
        let r0 = policy(Some("raid0"), 2, None);
        assert_eq!((r0.required, r0.by_design), (2, true));
        assert!(policy(Some("linear"), 3, None).by_design);
        assert_eq!(policy(Some("weird"), 3, None).required, 3);
    }

    #[test]
    fn whole_disks() {
        assert_eq!(whole_disk_name("sdb1"), "sdb");
        assert_eq!(whole_disk_name("sdaa12"), "sdaa");
        assert_eq!(whole_disk_name("sdb"), "sdb");
        assert_eq!(whole_disk_name("vdc2"), "vdc");
        assert_eq!(whole_disk_name("nvme0n1p2"), "nvme0n1");
        assert_eq!(whole_disk_name("nvme0n1"), "nvme0n1");
        assert_eq!(whole_disk_name("mmcblk0p1"), "mmcblk0");
        assert_eq!(whole_disk_name("loop3"), "loop3");
        assert_eq!(whole_disk_name("dm-3"), "dm-3");
    }

    #[test]
    fn attribute_parsers() {
        assert_eq!(parse_raid_disks("4"), Ok(4));
        assert_eq!(parse_raid_disks("4 (3)"), Ok(4));
        assert!(parse_raid_disks("").is_err());
        assert_eq!(parse_raid_disks("1920"), Ok(1920));
        assert!(parse_raid_disks("4294967295").is_err());
        assert_eq!(parse_sync_completed("none"), Ok(None));
        assert_eq!(parse_sync_completed("delayed"), Ok(None));
        assert_eq!(parse_sync_completed("1024 / 4096"), Ok(Some((1024, 4096))));
        assert!(parse_sync_completed("12 of 40").is_err());
        assert_eq!(parse_slot("none"), Ok(None));
        assert_eq!(parse_slot("2"), Ok(Some(2)));
        assert!(parse_slot("-1").is_err());
        assert_eq!(
            parse_member_state("in_sync,write_mostly"),
            ["in_sync", "write_mostly"]
        );
    }

    #[test]
    fn raid5_of_three_with_one_failed() {
        let a = array(
            "raid5",
            3,
            vec![
                member("sda1", Some(0), "faulty"),
                member("sdb1", Some(1), "in_sync"),
                member("sdc1", Some(2), "in_sync"),
            ],
        );
        let g = a.group().unwrap();
        assert_eq!(g.name, "md:md0");
        assert_eq!(g.kind, "md");
        assert_eq!(g.required, 2);
        assert_eq!(g.members.len(), 3);
        assert_eq!(healthy(&g), 2);
        assert_eq!(
            g.members[0].health,
            MemberHealth::Unhealthy("faulty".into())
        );
        assert_eq!(g.members[0].device.as_deref(), Some("sda"));
    }

    #[test]
    fn faulty_without_slot_stands_for_its_slot_or_is_a_dead_spare() {
        // raid1 without a spare: md took the failed device out of slot 1.
        let g = array(
            "raid1",
            2,
            vec![
                member("vda", Some(0), "in_sync"),
                member("vdb", None, "faulty"),
            ],
        )
        .group()
        .unwrap();
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.members[1].role, Role::Active);
        assert_eq!(
            g.members[1].health,
            MemberHealth::Unhealthy("faulty".into())
        );
        // raid5 whose spare took slot 1 over: the faulty one is left over.
        let mut a = array(
            "raid5",
            3,
            vec![
                member("vdc", Some(0), "in_sync"),
                member("vdd", None, "faulty"),
                member("vde", Some(2), "in_sync"),
                member("vdf", Some(1), "spare"),
            ],
        );
        a.sync_action = Some("recover".into());
        let g = a.group().unwrap();
        assert_eq!(g.members.len(), 4);
        assert_eq!(g.members[1].role, Role::Spare);
        assert_eq!(healthy(&g), 2);
        assert_eq!(
            g.members[3].health,
            MemberHealth::Unhealthy("rebuilding".into())
        );
    }

    #[test]
    fn removed_member_leaves_a_missing_slot() {
        let a = array(
            "raid6",
            4,
            vec![
                member("sda", Some(0), "in_sync"),
                member("sdb", Some(1), "in_sync"),
                member("sdd", Some(3), "in_sync"),
            ],
        );
        let g = a.group().unwrap();
        assert_eq!(g.required, 2);
        assert_eq!(g.members.len(), 4);
        assert_eq!(g.members[3].name, "slot2");
        assert_eq!(
            g.members[3].health,
            MemberHealth::Unhealthy("missing".into())
        );
        assert_eq!(healthy(&g), 3);
    }

    #[test]
    fn rebuilding_member_and_spare() {
        let mut a = array(
            "raid1",
            2,
            vec![
                member("sda1", Some(0), "in_sync"),
                member("sdb1", Some(1), "spare"),
                member("sdc1", None, "spare"),
            ],
        );
        a.sync_action = Some("recover".into());
        let g = a.group().unwrap();
        assert_eq!(g.required, 1);
        assert_eq!(
            g.members[1].health,
            MemberHealth::Unhealthy("rebuilding".into())
        );
        assert_eq!(g.members[1].role, Role::Active);
        assert_eq!(g.members[2].role, Role::Spare);
        assert_eq!(g.members[2].health, MemberHealth::Healthy);
        assert_eq!(g.members.len(), 3);
    }

    #[test]
    fn risks_and_journal() {
        let a = array(
            "raid5",
            3,
            vec![
                member("sda", Some(0), "in_sync,want_replacement"),
                member("sdb", Some(1), "in_sync,write_error"),
                member("sdc", Some(2), "in_sync"),
                member("nvme0n1p1", None, "journal,in_sync"),
            ],
        );
        let g = a.group().unwrap();
        assert_eq!(g.members.len(), 3);
        assert!(matches!(g.members[0].health, MemberHealth::AtRisk(_)));
        assert!(matches!(g.members[1].health, MemberHealth::AtRisk(_)));
    }

    #[test]
    fn raid0_is_single_by_design() {
        let g = array(
            "raid0",
            2,
            vec![
                member("sda", Some(0), "in_sync"),
                member("sdb", Some(1), "in_sync"),
            ],
        )
        .group()
        .unwrap();
        assert!(g.by_design);
        assert_eq!(g.required, 2);
    }

    #[test]
    fn inactive_array_is_failed() {
        let a = ArrayInfo {
            name: "md127".into(),
            active: false,
            level: Some(String::new()),
            raid_disks: Some(0),
            members: vec![member("sdf", None, ""), member("sdg", None, "")],
            ..ArrayInfo::default()
        };
        let g = a.group().unwrap();
        assert_eq!(g.required, 1);
        assert_eq!(healthy(&g), 0);
        assert!(g
            .members
            .iter()
            .all(|m| m.health == MemberHealth::Unhealthy("array inactive".into())));
    }

    #[test]
    fn container_has_no_group() {
        let mut a = array("container", 0, vec![]);
        a.level = Some("container".into());
        assert_eq!(a.group(), None);
    }

    #[test]
    fn from_mdstat_uses_slots() {
        let m = super::super::mdstat::parse(
            "md1 : active raid5 sdd1[3] sdc1[1] sdb1[0](F) sde1[4](S)
      2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [_UU]
",
        )
        .unwrap();
        let a = ArrayInfo::from_mdstat(&m.arrays[0]);
        let g = a.group().unwrap();
        assert_eq!(g.required, 2);
        let names: Vec<&str> = g.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["slot0", "slot1", "slot2", "sde1"]);
        assert_eq!(healthy(&g), 2);
        assert_eq!(g.members[3].role, Role::Spare);
    }

    /// A corrupt slot count is bounded: the group gets at most MAX_RAID_DISKS members,
    /// not one per slot of u32::MAX (16 GiB of slot numbers).
    #[test]
    fn huge_raid_disks_is_bounded() {
        let mut a = array("raid1", 2, vec![member("sda", Some(0), "in_sync")]);
        a.raid_disks = Some(u32::MAX);
        let g = a.group().unwrap();
        assert_eq!(g.members.len(), MAX_RAID_DISKS as usize);
    }

    #[test]
    fn unreadable_array_has_unknown_members() {
        let a = ArrayInfo::unreadable(
            "md3",
            Some("raid5".into()),
            Some(3),
            vec!["sda1".into(), "sdb1".into(), "sdc1".into()],
            "parsing slot: banana".into(),
        );
        let g = a.group().unwrap();
        assert_eq!((g.name.as_str(), g.required), ("md:md3", 2));
        let names: Vec<&str> = g.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["sda1", "sdb1", "sdc1"]);
        assert!(g
            .members
            .iter()
            .all(|m| m.health == MemberHealth::Unknown("parsing slot: banana".into())));
        assert_eq!(g.members[0].device.as_deref(), Some("sda"));
    }

    #[test]
    fn unreadable_array_without_members_has_one_stand_in() {
        let g = ArrayInfo::unreadable("md9", Some("raid6".into()), Some(6), vec![], "EIO".into())
            .group()
            .unwrap();
        assert_eq!(g.required, 1);
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].name, "md9");
        assert_eq!(g.members[0].health, MemberHealth::Unknown("EIO".into()));
    }

    /// Block counts near u64::MAX in /proc/mdstat (a corrupt or hostile file) used to
    /// overflow the blocks-to-sectors conversion (a panic in debug builds).
    #[test]
    fn from_mdstat_huge_progress_does_not_overflow() {
        let m = super::super::mdstat::parse(
            "md1 : active raid1 sdb1[1] sda1[0]
      100 blocks super 1.2 [2/1] [U_]
      [>....]  recovery =  0.0% (18446744073709551615/18446744073709551614) finish=0.8min speed=1K/sec
",
        )
        .unwrap();
        let a = ArrayInfo::from_mdstat(&m.arrays[0]);
        assert_eq!(a.sync_completed, Some((u64::MAX, u64::MAX)));
        assert_eq!(a.sync_ratio(), Some(1.0));
    }

    fn mdstat_array(text: &str) -> ArrayInfo {
        let m = super::super::mdstat::parse(text).unwrap();
        ArrayInfo::from_mdstat(&m.arrays[0])
    }

    /// Unreadable member states are unknown, never the worst verdict.
    #[test]
    fn empty_or_garbage_state_is_unknown() {
        let g = array(
            "raid1",
            2,
            vec![member("sda", Some(0), ""), member("sdb", Some(1), "banana")],
        )
        .group()
        .unwrap();
        assert!(
            matches!(&g.members[0].health, MemberHealth::Unknown(w) if w.contains("dev-sda/state empty"))
        );
        assert!(matches!(&g.members[1].health, MemberHealth::Unknown(w) if w.contains("banana")));
        assert_eq!(g.members.len(), 2);
    }

    /// No `slot` attribute and no `rdN` link: an in-sync member still fills a slot (it is
    /// no hot spare, and its slot is not "missing").
    #[test]
    fn unknown_slot_never_empties_a_slot() {
        let mut a = member("sda", None, "in_sync");
        a.slot_unknown = true;
        let mut b = member("sdb", None, "in_sync");
        b.slot_unknown = true;
        let mut c = member("sdc", None, "spare");
        c.slot_unknown = true;
        let g = array("raid1", 2, vec![a, b, c]).group().unwrap();
        assert_eq!(g.members.len(), 3, "{g:?}");
        assert_eq!(healthy(&g), 2);
        assert_eq!(g.members[2].role, Role::Spare);
        // raid_disks unknown too: counted from the members that hold slots.
        let mut a = member("sda", None, "in_sync");
        a.slot_unknown = true;
        let mut arr = array("raid1", 0, vec![a]);
        arr.raid_disks = None;
        let g = arr.group().unwrap();
        assert_eq!((g.members.len(), healthy(&g)), (1, 1));
    }

    #[test]
    fn broken_raid5_from_mdstat_is_failed() {
        let a = mdstat_array(
            "md0 : broken raid5 sdd[4](F) sdc[2](F) sdb[1](F) sda[0](F)
      5860147200 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/0] [____]
",
        );
        assert!(a.is_broken());
        let g = a.group().unwrap();
        assert_eq!((g.required, healthy(&g)), (3, 0));
    }

    #[test]
    fn raid0_and_linear_from_mdstat_are_single_by_design() {
        for text in [
            "md2 : active raid0 md0[0] md1[1]\n      3906764288 blocks super 1.2 64k chunks\n",
            "md120 : active linear sda1[1] sdb1[0]\n        2095104 blocks super 1.2 0k rounding\n",
        ] {
            let g = mdstat_array(text).group().unwrap();
            assert!(g.by_design, "{text}");
            assert_eq!(
                (g.required, healthy(&g), g.members.len()),
                (2, 2, 2),
                "{text}"
            );
        }
        // A broken raid0 has lost its function: the kernel states it.
        let g = mdstat_array(
            "md1 : broken raid0 sdd[1] sdb[0]\n      100 blocks super 1.2 512k chunks\n",
        )
        .group()
        .unwrap();
        assert_eq!(g.stated, Some(StatedRedundancy::Insufficient));
    }

    /// `[4/4]` with two `(F)` devices still attached (procfs' md9 shape): dead spares.
    #[test]
    fn faulty_devices_attached_beside_full_slots_are_dead_spares() {
        let g = mdstat_array(
            "md9 : active raid1 sdc2[2] sdd2[3] sdb2[1] sda2[0] sde[4](F) sdf[5](F) sdg[6](S)
      523968 blocks super 1.2 [4/4] [UUUU]
",
        )
        .group()
        .unwrap();
        let names: Vec<&str> = g.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["slot0", "slot1", "slot2", "slot3", "sde", "sdf", "sdg"]
        );
        assert_eq!(g.members[4].role, Role::Spare);
        assert_eq!(
            g.members[4].health,
            MemberHealth::Unhealthy("faulty".into())
        );
        assert_eq!(healthy(&g), 4);
    }

    #[test]
    fn imsm_container_from_mdstat_has_no_group_but_its_member_array_has() {
        let c = mdstat_array(
            "md127 : inactive sdb[1](S) sdc[0](S)\n      7932 blocks super external:imsm\n",
        );
        assert!(c.is_container());
        assert_eq!(c.group(), None);
        let m = mdstat_array(
            "md126 : active raid1 sdb[1] sdc[0]\n      100 blocks super external:/md127/0 [2/2] [UU]\n",
        );
        let g = m.group().unwrap();
        assert_eq!((g.required, healthy(&g)), (1, 2));
    }

    #[test]
    fn mdstat_counts_as_stated_redundancy() {
        let c = |n, w, f| MdstatCount {
            raid_disks: n,
            working: w,
            faulty_attached: f,
        };
        assert_eq!(c(2, 2, 0).stated(1), StatedRedundancy::FullyRedundant);
        assert_eq!(c(4, 4, 1).stated(3), StatedRedundancy::Degraded);
        assert_eq!(c(3, 3, 0).stated(1), StatedRedundancy::FullyRedundant);
        assert_eq!(c(3, 2, 0).stated(1), StatedRedundancy::Degraded);
        assert_eq!(c(2, 1, 0).stated(1), StatedRedundancy::Lost);
        assert_eq!(c(4, 0, 4).stated(3), StatedRedundancy::Insufficient);
        // Stated evidence only where mdstat is worse than the sysfs members.
        let mut a = array(
            "raid1",
            2,
            vec![
                member("sda", Some(0), "in_sync"),
                member("sdb", Some(1), "in_sync"),
            ],
        );
        a.mdstat_count = Some(c(2, 1, 1));
        assert_eq!(a.group().unwrap().stated, Some(StatedRedundancy::Lost));
        a.mdstat_count = Some(c(2, 2, 0));
        assert_eq!(a.group().unwrap().stated, None);
        a.mdstat_count = Some(c(2, 2, 1));
        assert_eq!(a.group().unwrap().stated, Some(StatedRedundancy::Degraded));
        a.members[1].state = vec!["faulty".into()];
        a.mdstat_count = Some(c(2, 1, 1));
        assert_eq!(a.group().unwrap().stated, None);
        a.array_state = Some("broken".into());
        assert_eq!(
            a.group().unwrap().stated,
            Some(StatedRedundancy::Insufficient)
        );
    }

    proptest! {
        #[test]
        fn from_mdstat_never_panics_on_any_progress(d in any::<u64>(), t in any::<u64>()) {
            let text = format!(
                "md0 : active raid5 sda[0] sdb[1] sdc[2]\n      100 blocks super 1.2 [3/3] [UUU]\n      [=>...]  resync = 1.0% ({d}/{t}) finish=1.0min speed=1K/sec\n"
            );
            let m = super::super::mdstat::parse(&text).unwrap();
            let a = ArrayInfo::from_mdstat(&m.arrays[0]);
            prop_assert_eq!(a.sync_completed, Some((d.saturating_mul(2), t.saturating_mul(2))));
            if let Some(r) = a.sync_ratio() {
                prop_assert!((0.0..=1.0).contains(&r));
            }
            let _ = a.group();
        }

        #[test]
        fn attribute_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = parse_raid_disks(&s);
            let _ = parse_sync_completed(&s);
            let _ = parse_slot(&s);
            let _ = parse_member_state(&s);
            let _ = whole_disk_name(&s);
        }

        #[test]
        fn required_never_exceeds_slots_and_is_positive(
            level in "(raid0|raid1|raid4|raid5|raid6|raid10|linear|x)",
            n in 0u32..64,
            layout in proptest::option::of(any::<u32>()),
        ) {
            let p = policy(Some(&level), n, layout);
            prop_assert!(p.required >= 1);
            prop_assert!(p.required <= n.max(1));
        }
    }
}
