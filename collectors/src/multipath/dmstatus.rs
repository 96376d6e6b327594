//! Parser for the device-mapper multipath status line (`dmsetup status --target multipath`),
//! pure: takes the text, never a path.
//!
//! The params after `<start> <length> multipath` are what the kernel's `multipath_status`
//! (drivers/md/dm-mpath.c, STATUSTYPE_INFO) emits; every list is preceded by its count:
//!
//! ```text
//! <#features> <features...>            2 <queue_io> <pg_init_count>
//! <#hw handler args> <args...>         0
//! <#path groups> <next path group>     2 1
//! per group: <A|E|D> <#selector status args> <args...> <#paths> <#selector path args>
//!   per path: <major:minor> <A|F> <fail count> <selector path args...>
//! ```
//!
//! `A` group = currently used, `E` = enabled (standby), `D` = disabled (bypassed);
//! `A` path = usable, `F` = failed (by an I/O error or by multipathd's checker).

use crate::CollectError;

/// One multipath map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapStatus {
    pub name: String,
    /// Info "features": `[queue_io, pg_init_count]` on current kernels.
    pub features: Vec<String>,
    pub hw_handler: Vec<String>,
    /// 1-based number of the group the next I/O goes to; 0 when there is none.
    pub next_group: u32,
    pub groups: Vec<PathGroupStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// `A`: the group carrying I/O now.
    Active,
    /// `E`: usable, not in use.
    Enabled,
    /// `D`: bypassed until re-enabled.
    Disabled,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Active => "active",
            GroupState::Enabled => "enabled",
            GroupState::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathGroupStatus {
    pub state: GroupState,
    pub selector_status: Vec<String>,
    pub paths: Vec<PathStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathStatus {
    /// `major:minor` of the path's block device.
    pub dev: String,
    /// `A` (true) or `F` (false).
    pub active: bool,
    /// Times the kernel failed this path since the map was loaded.
    pub fail_count: u64,
    pub selector_info: Vec<String>,
}

impl MapStatus {
    /// The first info feature: the kernel's queue_io flag (current kernels; older ones
    /// printed the number of queued I/Os there). Set on a freshly loaded map until the
    /// first I/O picks a path, and while no usable path is left with queue_if_no_path:
    /// not by itself a failure.
    pub fn queue_io(&self) -> Option<bool> {
        self.features
            .first()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v > 0)
    }

    /// Index (0-based) of the group in use: the `A` group, else the next group, else the
    /// first one.
    pub fn active_group(&self) -> Option<usize> {
        if self.groups.is_empty() {
            return None;
        }
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| g.state == GroupState::Active)
        {
            return Some(i);
        }
        let next = self.next_group as usize;
        if next >= 1 && next <= self.groups.len() {
            return Some(next - 1);
        }
        Some(0)
    }
}

struct Tokens<'a> {
    toks: Vec<&'a str>,
    pos: usize,
    map: String,
}

impl<'a> Tokens<'a> {
    fn err(&self, detail: impl Into<String>) -> CollectError {
        CollectError::parse(
            format!("multipath status of {}", self.map),
            format!("{} (token {})", detail.into(), self.pos + 1),
        )
    }
    fn next(&mut self, what: &str) -> Result<&'a str, CollectError> {
        let t = self
            .toks
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err(format!("ends before {what}")))?;
        self.pos += 1;
        Ok(t)
    }
    fn num<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, CollectError> {
        let t = self.next(what)?;
        t.parse()
            .map_err(|_| self.err(format!("{what}: {t:?} is not a number")))
    }
    /// A count, at most the tokens left (so a corrupt count cannot allocate or loop).
    fn count(&mut self, what: &str) -> Result<usize, CollectError> {
        let n: usize = self.num(what)?;
        if n > self.toks.len() - self.pos {
            return Err(self.err(format!("{what} {n} exceeds the rest of the line")));
        }
        Ok(n)
    }
    fn take(&mut self, n: usize, what: &str) -> Result<Vec<String>, CollectError> {
        (0..n)
            .map(|_| self.next(what).map(str::to_string))
            .collect()
    }
    fn counted(&mut self, what: &str) -> Result<Vec<String>, CollectError> {
        let n = self.count(what)?;
        self.take(n, what)
    }
}

/// Splits `name: <start> <len> <target> <params>`; `None` when no such split exists.
fn split_line(line: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in line.match_indices(": ") {
        let mut it = line[i + 2..].trim_start().splitn(4, ' ');
        let (Some(start), Some(len), Some(target)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if start.parse::<u64>().is_ok() && len.parse::<u64>().is_ok() {
            return Some((&line[..i], target, it.next().unwrap_or("")));
        }
    }
    None
}

/// Parses the params of one multipath target (everything after `multipath`).
pub fn parse_params(map: &str, params: &str) -> Result<MapStatus, CollectError> {
    let mut t = Tokens {
        toks: params.split_whitespace().collect(),
        pos: 0,
        map: map.to_string(),
    };
    let mut m = MapStatus {
        name: map.to_string(),
        ..MapStatus::default()
    };
    m.features = t.counted("features")?;
    m.hw_handler = t.counted("hardware handler args")?;
    let nr_groups = t.count("path group count")?;
    m.next_group = t.num("next path group")?;
    for _ in 0..nr_groups {
        let state = match t.next("path group state")? {
            "A" => GroupState::Active,
            "E" => GroupState::Enabled,
            "D" => GroupState::Disabled,
            other => return Err(t.err(format!("path group state {other:?}"))),
        };
        let selector_status = t.counted("selector status args")?;
        let nr_paths = t.count("path count")?;
        let info_args = t.count("selector path args")?;
        let mut paths = Vec::new();
        for _ in 0..nr_paths {
            let dev = t.next("path device")?.to_string();
            if !dev.contains(':') {
                return Err(t.err(format!("path device {dev:?} is not major:minor")));
            }
            let active = match t.next("path state")? {
                "A" => true,
                "F" => false,
                other => return Err(t.err(format!("path state {other:?}"))),
            };
            let fail_count = t.num("path fail count")?;
            let selector_info = t.take(info_args, "selector path args")?;
            paths.push(PathStatus {
                dev,
                active,
                fail_count,
                selector_info,
            });
        }
        m.groups.push(PathGroupStatus {
            state,
            selector_status,
            paths,
        });
    }
    Ok(m)
}

/// A line of the status output that did not parse.
#[derive(Debug)]
pub struct BadLine {
    /// The map the line is about, when its `name: ` prefix could be read.
    pub map: Option<String>,
    pub error: CollectError,
}

/// `dmsetup status --target multipath` output, line by line: the maps that parsed and the
/// lines that did not, so one bad line costs only its own map.
#[derive(Debug, Default)]
pub struct StatusLines {
    pub maps: Vec<MapStatus>,
    pub bad: Vec<BadLine>,
}

/// The map name of a line that `split_line` could not read: the text before the first
/// `: `, if it looks like a dm name (non-empty, no white space).
fn name_of_bad_line(line: &str) -> Option<String> {
    let (name, _) = line.split_once(": ")?;
    (!name.is_empty() && !name.contains(char::is_whitespace)).then(|| name.to_string())
}

/// Parses `dmsetup status --target multipath` output: one line per map. Lines of other
/// targets and "No devices found" are skipped; a multipath line that does not parse is
/// kept as a [`BadLine`] (the map would otherwise vanish from the metrics).
pub fn parse_lines(text: &str) -> StatusLines {
    let mut out = StatusLines::default();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.starts_with("No devices found") {
            continue;
        }
        let Some((name, target, params)) = split_line(line) else {
            out.bad.push(BadLine {
                map: name_of_bad_line(line),
                error: CollectError::parse(
                    "dmsetup status output",
                    format!("unexpected line {line:?}"),
                ),
            });
            continue;
        };
        if target != "multipath" {
            continue;
        }
        match parse_params(name, params) {
            Ok(m) => out.maps.push(m),
            Err(error) => out.bad.push(BadLine {
                map: Some(name.to_string()),
                error,
            }),
        }
    }
    out
}

/// Strict form of [`parse_lines`]: the first bad line is the error.
pub fn parse(text: &str) -> Result<Vec<MapStatus>, CollectError> {
    let lines = parse_lines(text);
    match lines.bad.into_iter().next() {
        Some(b) => Err(b.error),
        None => Ok(lines.maps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// service-time selector (2 info args per path), two groups (ALUA active/passive).
    const TWO_GROUPS: &str =
        "mpatha: 0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 3 0 1\n";
    /// round-robin (no info args), one group of four, multibus.
    const FOUR_PATHS: &str =
        "data_lun: 0 4194304 multipath 2 1 0 0 1 1 A 0 4 0 8:16 A 0 8:32 F 1 8:48 A 0 65:0 A 2 \n";

    #[test]
    fn parses_two_groups() {
        let maps = parse(TWO_GROUPS).unwrap();
        assert_eq!(maps.len(), 1);
        let m = &maps[0];
        assert_eq!(m.name, "mpatha");
        assert_eq!(m.features, ["0", "0"]);
        assert_eq!(m.queue_io(), Some(false));
        assert_eq!(m.next_group, 1);
        assert_eq!(m.groups.len(), 2);
        assert_eq!(m.groups[0].state, GroupState::Active);
        assert_eq!(m.groups[1].state, GroupState::Enabled);
        assert_eq!(m.groups[0].paths[0].dev, "8:16");
        assert!(m.groups[0].paths[0].active);
        assert_eq!(m.groups[0].paths[0].selector_info, ["0", "1"]);
        assert!(!m.groups[1].paths[0].active);
        assert_eq!(m.groups[1].paths[0].fail_count, 3);
        assert_eq!(m.active_group(), Some(0));
    }

    #[test]
    fn parses_four_paths_round_robin() {
        let m = &parse(FOUR_PATHS).unwrap()[0];
        assert_eq!(m.name, "data_lun");
        assert_eq!(m.queue_io(), Some(true));
        assert_eq!(m.groups[0].paths.len(), 4);
        let active: Vec<bool> = m.groups[0].paths.iter().map(|p| p.active).collect();
        assert_eq!(active, [true, false, true, true]);
        assert_eq!(m.groups[0].paths[3].dev, "65:0");
    }

    #[test]
    fn no_current_group_uses_next() {
        let m =
            &parse("m: 0 8 multipath 2 0 0 0 2 2 E 0 1 0 8:16 A 0 E 0 1 0 8:32 A 0\n").unwrap()[0];
        assert_eq!(m.active_group(), Some(1));
    }

    #[test]
    fn map_without_paths() {
        // Every path removed from the table: no group, nothing to carry I/O.
        let m = &parse("mpathz: 0 8 multipath 2 1 0 0 0 0\n").unwrap()[0];
        assert!(m.groups.is_empty());
        assert_eq!(m.active_group(), None);
        assert_eq!(m.queue_io(), Some(true));
    }

    #[test]
    fn skips_other_lines() {
        assert!(parse("No devices found\n").unwrap().is_empty());
        assert!(parse("vg-root: 0 100 linear \n").unwrap().is_empty());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_are_clear() {
        let e = parse("mpatha: 0 8 multipath 2 0 0 0 1 1 A 0 1 0 8:16 X 0\n").unwrap_err();
        assert!(e.to_string().contains("path state"), "{e}");
        assert!(parse("mpatha: 0 8 multipath 2 0 0 0 99999999 1 A\n").is_err());
        assert!(parse("mpatha: 0 8 multipath 2 0\n").is_err());
        assert!(parse("garbage\n").is_err());
    }

    #[test]
    fn a_bad_line_costs_only_its_map() {
        let text = format!(
            "{TWO_GROUPS}mpathx: 0 8 multipath 2 0 0 0 1 1 A 0 1 0 8:16 X 0\nmpathy: 0 zz multipath 2\ngarbage\n{FOUR_PATHS}"
        );
        let l = parse_lines(&text);
        let names: Vec<&str> = l.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["mpatha", "data_lun"]);
        let bad: Vec<Option<&str>> = l.bad.iter().map(|b| b.map.as_deref()).collect();
        assert_eq!(bad, [Some("mpathx"), Some("mpathy"), None]);
        assert!(l.bad[0].error.to_string().contains("path state"));
        assert!(l.bad[2].error.to_string().contains("garbage"));
        // The strict form still refuses the whole text.
        assert!(parse(&text).is_err());
    }

    proptest! {
        #[test]
        fn parse_lines_never_panics_and_agrees_with_parse(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let l = parse_lines(&text);
            prop_assert_eq!(parse(&text).is_ok(), l.bad.is_empty());
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_status_like_lines(s in "[a-z]{1,5}: 0 [0-9]{1,4} multipath( [0-9AEDF:]{1,4}){0,40}\n") {
            let _ = parse(&s);
        }
    }
}
