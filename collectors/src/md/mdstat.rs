//! Parser for `/proc/mdstat` (pure: takes the text, never a path).
//!
//! The format is written by `md_seq_show` in the kernel's drivers/md/md.c:
//!
//! ```text
//! Personalities : [raid1] [raid6] [raid5] [raid4]
//! md1 : active raid5 sdd1[3] sdc1[1] sdb1[0](F)
//!       2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [_UU]
//!       [=>...................]  recovery =  8.5% (89344/1046528) finish=0.8min speed=19856K/sec
//!
//! md127 : inactive sde[0](S)
//!       1048576 blocks super 1.2
//!
//! unused devices: <none>
//! ```
//!
//! The number in `sdb1[0]` is the superblock descriptor index, *not* the slot in the array:
//! the `[_UU]` string is per slot. Member health therefore comes from sysfs when it exists;
//! this parser is the array list, the fallback, and the second opinion.
//!
//! The first word after `name : ` is `active`, `inactive` or (kernels since 6.13, an array
//! md marked `MD_BROKEN`) `broken`. One paragraph this parser cannot read costs only that
//! array: it is kept with [`MdstatArray::error`] set, and the other paragraphs are read
//! as usual. An unknown keyword is never an error for the file.

use crate::CollectError;

/// Everything `/proc/mdstat` says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mdstat {
    pub personalities: Vec<String>,
    pub arrays: Vec<MdstatArray>,
}

/// One array paragraph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MdstatArray {
    /// Kernel name: `md0`, `md127`, `md_home`.
    pub name: String,
    /// `active` or `broken` (true: a personality runs) or `inactive` (false).
    pub active: bool,
    /// `broken`: md gave the array up (too many members failed, or a raid0/linear member
    /// vanished); it still has its personality.
    pub broken: bool,
    /// `(read-only)` or `(auto-read-only)`.
    pub read_only: bool,
    /// Personality: `raid1`, `raid5`, `linear`...; `None` for an inactive array.
    pub level: Option<String>,
    pub devices: Vec<MdstatDevice>,
    /// `[n/m]`: slots in the array and slots with a working device.
    pub raid_disks: Option<u32>,
    pub working_disks: Option<u32>,
    /// `[UU_]`: one character per slot, `U` up, `_` missing or not in sync.
    pub slot_status: Option<String>,
    pub sync: Option<MdstatSync>,
    /// `super 1.2`, `super external:imsm` (an IMSM/DDF container), `super
    /// external:/md127/0` (an array inside such a container); `None` for 0.90 arrays, which
    /// print no `super`.
    pub metadata: Option<String>,
    /// Why this paragraph could not be read (first problem found); the array is then
    /// known by name only, and its members are unknown.
    pub error: Option<String>,
}

impl MdstatArray {
    /// An IMSM/DDF container (`inactive ... super external:imsm`): it holds metadata only,
    /// its member arrays (`super external:/md127/0`) are the arrays.
    pub fn is_container(&self) -> bool {
        match self
            .metadata
            .as_deref()
            .and_then(|m| m.strip_prefix("external:"))
        {
            Some(rest) => !rest.starts_with('/') && !rest.starts_with('-'),
            None => false,
        }
    }
}

/// One member device as listed on the array line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MdstatDevice {
    pub name: String,
    /// Superblock descriptor number (not the slot).
    pub desc_nr: u32,
    pub faulty: bool,
    pub spare: bool,
    pub write_mostly: bool,
    pub replacement: bool,
    pub journal: bool,
}

/// A running or waiting sync operation.
#[derive(Clone, Debug, PartialEq)]
pub struct MdstatSync {
    /// `resync`, `recovery`, `reshape`, `check`, `repair`.
    pub action: String,
    /// `(done/total)` in 1 KiB blocks while it runs; `None` when delayed or pending.
    pub done_total: Option<(u64, u64)>,
    /// `DELAYED`, `PENDING`, `REMOTE` when it waits; `None` while it runs.
    pub waiting: Option<String>,
}

impl MdstatSync {
    /// Progress 0..=1 while it runs.
    pub fn ratio(&self) -> Option<f64> {
        match self.done_total {
            Some((d, t)) if t > 0 => Some((d as f64 / t as f64).clamp(0.0, 1.0)),
            _ => None,
        }
    }
}

fn err(line_no: usize, detail: impl Into<String>) -> CollectError {
    CollectError::parse(format!("/proc/mdstat line {}", line_no + 1), detail.into())
}

/// Parses `/proc/mdstat`. Lines it does not know (bitmap, read_ahead, `Event:`, future
/// additions) are skipped; an array line or status line it cannot read marks that array
/// (its `error`), so a changed format never silently hides an array and never hides the
/// others. Today every text parses; `Err` is kept for a file that is not mdstat at all.
pub fn parse(text: &str) -> Result<Mdstat, CollectError> {
    let mut out = Mdstat::default();
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if !indented {
            if let Some(rest) = line.strip_prefix("Personalities") {
                out.personalities = rest
                    .split_whitespace()
                    .filter_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
                    .map(str::to_string)
                    .collect();
                continue;
            }
            if line.starts_with("unused devices") || line.starts_with("read_ahead") {
                continue;
            }
            if let Some((name, rest)) = line.split_once(" : ") {
                let name = name.trim();
                if name.is_empty() || name.contains(char::is_whitespace) {
                    // Not an array line of any kernel: skipped like any unknown line.
                    continue;
                }
                out.arrays.push(parse_array_line(no, name, rest));
                continue;
            }
            // Unknown top-level line: ignore (forward compatible).
            continue;
        }
        let Some(array) = out.arrays.last_mut() else {
            continue;
        };
        if array.error.is_some() {
            // Nothing more of an unreadable paragraph is believed.
            continue;
        }
        let body = line.trim();
        let read = if body.split_whitespace().nth(1) == Some("blocks") {
            parse_status_line(no, body, array)
        } else {
            parse_sync_line(no, body).map(|sync| {
                if let Some(sync) = sync {
                    array.sync = Some(sync);
                }
            })
        };
        if let Err(e) = read {
            array.error = Some(e.to_string());
        }
    }
    Ok(out)
}

/// The array line; a problem is kept in the array's `error`.
fn parse_array_line(no: usize, name: &str, rest: &str) -> MdstatArray {
    let mut a = MdstatArray {
        name: name.to_string(),
        ..MdstatArray::default()
    };
    if let Err(e) = read_array_line(no, rest, &mut a) {
        a.error = Some(e.to_string());
    }
    a
}

fn read_array_line(no: usize, rest: &str, a: &mut MdstatArray) -> Result<(), CollectError> {
    let name = a.name.clone();
    let mut toks = rest.split_whitespace().peekable();
    match toks.next() {
        Some("active") => a.active = true,
        Some("broken") => {
            a.active = true;
            a.broken = true;
        }
        Some("inactive") => a.active = false,
        other => return Err(err(no, format!("array {name}: unknown state {other:?}"))),
    }
    while let Some(t) = toks.peek() {
        if t.starts_with('(') && t.ends_with(')') {
            a.read_only = true;
            toks.next();
        } else {
            break;
        }
    }
    // The personality follows an active array; some kernels and tools print the level of
    // an inactive one too (`md4 : inactive raid1 sda3[0](F) sdb3[1](S)`).
    match toks.peek() {
        Some(t) if !t.contains('[') => {
            a.level = Some(t.to_string());
            toks.next();
        }
        _ => {}
    }
    for t in toks {
        a.devices.push(parse_device(no, t)?);
    }
    Ok(())
}

/// `sdb1[2](W)(F)` → device. Flags follow the descriptor number in any order.
fn parse_device(no: usize, tok: &str) -> Result<MdstatDevice, CollectError> {
    let mut d = MdstatDevice::default();
    let mut s = tok;
    while let Some(body) = s.strip_suffix(')') {
        let Some(open) = body.rfind('(') else {
            return Err(err(no, format!("bad device flag in {tok:?}")));
        };
        match &body[open + 1..] {
            "F" => d.faulty = true,
            "S" => d.spare = true,
            "W" => d.write_mostly = true,
            "R" => d.replacement = true,
            "J" => d.journal = true,
            // Unknown flags are kept out rather than rejected.
            _ => {}
        }
        s = &body[..open];
    }
    let Some(body) = s.strip_suffix(']') else {
        return Err(err(no, format!("device {tok:?} has no [number]")));
    };
    let Some(open) = body.rfind('[') else {
        return Err(err(no, format!("device {tok:?} has no [number]")));
    };
    d.desc_nr = body[open + 1..]
        .parse()
        .map_err(|_| err(no, format!("device {tok:?}: bad descriptor number")))?;
    d.name = body[..open].to_string();
    if d.name.is_empty() {
        return Err(err(no, format!("device {tok:?} has no name")));
    }
    Ok(d)
}

/// `2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [_UU]`
fn parse_status_line(no: usize, body: &str, a: &mut MdstatArray) -> Result<(), CollectError> {
    let mut words = body.split_whitespace();
    while let Some(w) = words.next() {
        if w == "super" {
            a.metadata = words.next().map(str::to_string);
        }
    }
    for tok in body.split_whitespace() {
        let Some(inner) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
            continue;
        };
        if let Some((n, m)) = inner.split_once('/') {
            let parse = |v: &str| match v.parse::<u32>() {
                Ok(n) if n <= super::array::MAX_RAID_DISKS => Ok(n),
                _ => Err(err(no, format!("array {}: bad disk count {tok:?}", a.name))),
            };
            a.raid_disks = Some(parse(n)?);
            a.working_disks = Some(parse(m)?);
        } else if !inner.is_empty() && inner.chars().all(|c| c == 'U' || c == '_') {
            a.slot_status = Some(inner.to_string());
        }
    }
    Ok(())
}

const SYNC_ACTIONS: [&str; 5] = ["resync", "recovery", "reshape", "check", "repair"];

/// `[=>....]  recovery =  8.5% (89344/1046528) finish=0.8min speed=19856K/sec`,
/// `resync=DELAYED`, `resync=PENDING`. `Ok(None)` for other lines (bitmap).
fn parse_sync_line(no: usize, body: &str) -> Result<Option<MdstatSync>, CollectError> {
    let body = match body.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((_, after)) => after.trim_start(),
            None => return Ok(None),
        },
        None => body,
    };
    let Some((word, rest)) = body.split_once('=') else {
        return Ok(None);
    };
    let action = word.trim();
    if !SYNC_ACTIONS.contains(&action) {
        return Ok(None);
    }
    let rest = rest.trim_start();
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.is_empty() && first.chars().all(|c| c.is_ascii_uppercase()) {
        return Ok(Some(MdstatSync {
            action: action.to_string(),
            done_total: None,
            waiting: Some(first.to_string()),
        }));
    }
    let done_total = rest
        .split_whitespace()
        .find_map(|t| t.strip_prefix('(').and_then(|t| t.strip_suffix(')')))
        .and_then(|t| t.split_once('/'))
        .map(|(d, t)| (d.parse::<u64>(), t.parse::<u64>()));
    match done_total {
        Some((Ok(d), Ok(t))) => Ok(Some(MdstatSync {
            action: action.to_string(),
            done_total: Some((d, t)),
            waiting: None,
        })),
        _ => Err(err(
            no,
            format!("{action}: cannot read progress in {body:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RECOVERING: &str = "Personalities : [raid1] [raid6] [raid5] [raid4]
md1 : active raid5 sdd1[3] sdc1[1] sdb1[0](F)
      2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [_UU]
      [=>...................]  recovery =  8.5% (89344/1046528) finish=0.8min speed=19856K/sec
      bitmap: 0/8 pages [0KB], 65536KB chunk

md0 : active (auto-read-only) raid1 nvme1n1p2[1] nvme0n1p2[0] sde[2](S)
      1046528 blocks super 1.2 [2/2] [UU]
      resync=PENDING

md127 : inactive sdf[0](S) sdg[1](S)
      2093056 blocks super 1.2

unused devices: <none>
";

    #[test]
    fn parses_arrays_devices_and_sync() {
        let m = parse(RECOVERING).unwrap();
        assert_eq!(m.personalities, ["raid1", "raid6", "raid5", "raid4"]);
        assert_eq!(m.arrays.len(), 3);
        let md1 = &m.arrays[0];
        assert_eq!(md1.name, "md1");
        assert!(md1.active && !md1.read_only);
        assert_eq!(md1.level.as_deref(), Some("raid5"));
        assert_eq!(md1.devices.len(), 3);
        assert_eq!(md1.devices[2].name, "sdb1");
        assert!(md1.devices[2].faulty);
        assert_eq!((md1.raid_disks, md1.working_disks), (Some(3), Some(2)));
        assert_eq!(md1.slot_status.as_deref(), Some("_UU"));
        let sync = md1.sync.as_ref().unwrap();
        assert_eq!(sync.action, "recovery");
        assert_eq!(sync.done_total, Some((89344, 1046528)));
        assert!((sync.ratio().unwrap() - 0.08537).abs() < 1e-4);

        let md0 = &m.arrays[1];
        assert!(md0.read_only);
        assert_eq!(md0.level.as_deref(), Some("raid1"));
        assert_eq!(md0.devices[0].name, "nvme1n1p2");
        assert!(md0.devices[2].spare);
        let s = md0.sync.as_ref().unwrap();
        assert_eq!(s.waiting.as_deref(), Some("PENDING"));
        assert_eq!(s.ratio(), None);

        let md127 = &m.arrays[2];
        assert!(!md127.active);
        assert_eq!(md127.level, None);
        assert_eq!(md127.raid_disks, None);
        assert!(md127.devices.iter().all(|d| d.spare));
    }

    #[test]
    fn flags_in_any_order() {
        let d = parse_device(0, "sdb1[4](W)(F)").unwrap();
        assert!(d.write_mostly && d.faulty && !d.spare);
        assert_eq!(d.desc_nr, 4);
        let d = parse_device(0, "dm-3[1](S)(R)").unwrap();
        assert_eq!(d.name, "dm-3");
        assert!(d.spare && d.replacement);
    }

    #[test]
    fn empty_and_no_arrays() {
        assert_eq!(parse("").unwrap(), Mdstat::default());
        let m = parse("Personalities : \nunused devices: <none>\n").unwrap();
        assert!(m.arrays.is_empty());
    }

    /// Each unreadable paragraph is kept by name with its reason; the array after it is
    /// read as usual.
    #[test]
    fn a_bad_paragraph_costs_only_its_array() {
        for bad in [
            "md0 : sleeping raid1 sda[0]\n",
            "md0 : active raid1 sda[x]\n",
            "md0 : active raid1 sda\n",
            "md0 : active raid1 sda[0]\n   100 blocks [2/x] [U_]\n",
            "md0 : active raid1 sda[0]\n   100 blocks [4294967295/1] [U_]\n",
            "md0 : active raid1 sda[0]\n [==>..]  resync = 3% (a/b)\n",
        ] {
            let text = format!(
                "{bad}md1 : active raid1 sdc[1] sdb[0]\n      100 blocks super 1.2 [2/2] [UU]\n"
            );
            let m = parse(&text).unwrap();
            assert_eq!(m.arrays.len(), 2, "{bad}");
            assert_eq!(m.arrays[0].name, "md0");
            assert!(
                m.arrays[0].error.as_deref().unwrap_or("").contains("line"),
                "{bad}"
            );
            let md1 = &m.arrays[1];
            assert_eq!(md1.error, None, "{bad}");
            assert_eq!(md1.slot_status.as_deref(), Some("UU"));
        }
        // Not an array line at all: skipped.
        assert!(parse("m d0 : whatever\n").unwrap().arrays.is_empty());
    }

    /// Kernels since 6.13 print an array md gave up as `broken` (shape from an incident
    /// report of a raid5 that lost all four members).
    #[test]
    fn broken_array() {
        let m = parse(
            "md0 : broken raid5 sdd[4](F) sdc[2](F) sdb[1](F) sda[0](F)
      5860147200 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/0] [____]
",
        )
        .unwrap();
        let a = &m.arrays[0];
        assert!(a.active && a.broken && a.error.is_none());
        assert_eq!(a.level.as_deref(), Some("raid5"));
        assert_eq!((a.raid_disks, a.working_disks), (Some(4), Some(0)));
        assert!(a.devices.iter().all(|d| d.faulty));
    }

    /// `inactive raid1 …` (shape of node_exporter's and procfs' mdstat fixtures), IMSM
    /// containers and their member arrays, 0.90 arrays without `super`, and the
    /// `read_ahead`/`Event:` lines of old kernels (monitoring-plugins issue 995).
    #[test]
    fn inactive_levels_containers_and_old_lines() {
        let m = parse(
            "Personalities : [raid1] [raid0]
read_ahead 1024 sectors
Event: 8
md4 : inactive raid1 sda3[0](F) sdb3[1](S)
      4883648 blocks [2/2] [UU]

md126 : active raid0 sdb[1] sdc[0]
      1855870976 blocks super external:/md127/0 128k chunks

md127 : inactive sdb[1](S) sdc[0](S)
      7932 blocks super external:imsm

md10 : active raid0 sda1[0] sdb1[1]
       314159265 blocks 64k chunks
unused devices: <none>
",
        )
        .unwrap();
        assert_eq!(m.arrays.len(), 4);
        assert!(m.arrays.iter().all(|a| a.error.is_none()), "{m:?}");
        let md4 = &m.arrays[0];
        assert!(!md4.active);
        assert_eq!(md4.level.as_deref(), Some("raid1"));
        assert_eq!(md4.devices.len(), 2);
        assert_eq!(md4.metadata, None);
        assert!(!md4.is_container());
        assert_eq!(m.arrays[1].metadata.as_deref(), Some("external:/md127/0"));
        assert!(!m.arrays[1].is_container());
        assert!(m.arrays[2].is_container());
        assert_eq!(m.arrays[3].raid_disks, None);
    }

    #[test]
    fn check_and_reshape_lines() {
        let text = "md2 : active raid6 sda[0] sdb[1] sdc[2] sdd[3]
      200 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/4] [UUUU]
      [===>.................]  check = 17.9% (100/558) finish=1.2min speed=1000K/sec
";
        let a = &parse(text).unwrap().arrays[0];
        assert_eq!(a.sync.as_ref().unwrap().action, "check");
        assert_eq!(a.sync.as_ref().unwrap().done_total, Some((100, 558)));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_mdstat_like_text(s in "(md[0-9] : (in)?active [a-z0-9]{0,6} ([a-z]{2,4}[0-9]?\\[[0-9x]\\](\\([FSWRJ]\\))?)*\n( +[0-9]+ blocks [\\[\\]0-9/U_ ]{0,12}\n)?( +\\[[=>.]{0,5}\\] +(resync|recovery|check) = [0-9.%]* \\([0-9/]*\\)\n)?){0,3}") {
            let _ = parse(&s);
        }
    }
}
