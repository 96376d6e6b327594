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
//! this parser is the array list and the fallback.

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
    /// `active` (true) or `inactive` (false).
    pub active: bool,
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

/// Parses `/proc/mdstat`. Lines it does not know (bitmap, read_ahead, future additions) are
/// skipped; an array line or status line it cannot read is an error, so a changed format
/// never silently hides an array.
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
                out.arrays.push(parse_array_line(no, name.trim(), rest)?);
                continue;
            }
            // Unknown top-level line: ignore (forward compatible).
            continue;
        }
        let Some(array) = out.arrays.last_mut() else {
            continue;
        };
        let body = line.trim();
        if body.split_whitespace().nth(1) == Some("blocks") {
            parse_status_line(no, body, array)?;
        } else if let Some(sync) = parse_sync_line(no, body)? {
            array.sync = Some(sync);
        }
    }
    Ok(out)
}

fn parse_array_line(no: usize, name: &str, rest: &str) -> Result<MdstatArray, CollectError> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(err(no, format!("bad array name {name:?}")));
    }
    let mut toks = rest.split_whitespace().peekable();
    let active = match toks.next() {
        Some("active") => true,
        Some("inactive") => false,
        other => return Err(err(no, format!("array {name}: unknown state {other:?}"))),
    };
    let mut a = MdstatArray {
        name: name.to_string(),
        active,
        ..MdstatArray::default()
    };
    while let Some(t) = toks.peek() {
        if t.starts_with('(') && t.ends_with(')') {
            a.read_only = true;
            toks.next();
        } else {
            break;
        }
    }
    if active {
        match toks.peek() {
            Some(t) if !t.contains('[') => {
                a.level = Some(t.to_string());
                toks.next();
            }
            _ => {}
        }
    }
    for t in toks {
        a.devices.push(parse_device(no, t)?);
    }
    Ok(a)
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

    #[test]
    fn rejects_broken_array_lines() {
        assert!(parse("md0 : sleeping raid1 sda[0]\n").is_err());
        assert!(parse("md0 : active raid1 sda[x]\n").is_err());
        assert!(parse("md0 : active raid1 sda\n").is_err());
        assert!(parse("md0 : active raid1 sda[0]\n   100 blocks [2/x] [U_]\n").is_err());
        assert!(parse("md0 : active raid1 sda[0]\n   100 blocks [4294967295/1] [U_]\n").is_err());
        assert!(parse("md0 : active raid1 sda[0]\n [==>..]  resync = 3% (a/b)\n").is_err());
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
