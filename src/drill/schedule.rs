//! Scheduled drills (`drills.schedule` in the config file; absent = off): the agent runs a
//! group's drill inside a weekly window when its last passing drill is older than `every`,
//! through the same code path as `sparewatch drill --yes` ([`super::attempt`]: the same
//! guardrails, journal, rollback, history and silence). One thread, so at most one drill at a
//! time; the journal (the lock) keeps it from running beside a manual drill. A drill that is
//! refused is logged and counted in `sparewatch_drill_schedule_refusals_total{group,reason}`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sparewatch_collectors::{parse_duration, Roots};

use super::store::{DrillStore, FileStore};
use super::{Attempt, Caller, Options};

/// How often the agent looks at the schedule, unless `drills.check_interval` says.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// `hold` of a scheduled drill unless its entry says (as `--drill.hold`).
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrills {
    check_interval: Option<String>,
    #[serde(default)]
    schedule: Vec<RawEntry>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    group: Option<String>,
    kind: Option<String>,
    window: Option<String>,
    every: Option<String>,
    hold: Option<String>,
    probe_target: Option<String>,
}

/// Which groups an entry drills.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Group(String),
    /// Every group of this kind on the host.
    Kind(String),
}

/// A weekly window in UTC: on `days` (0 = Sunday), from `start` to `end` minutes of the day.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub days: [bool; 7],
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub target: Target,
    pub window: Window,
    pub every: Duration,
    pub hold: Duration,
    pub probe_target: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drills {
    pub check_interval: Option<Duration>,
    pub entries: Vec<Entry>,
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl Window {
    /// `DAYS HH:MM-HH:MM`: DAYS is `*` (every day) or day names joined by `,`
    /// (`Sun`, `Sat,Sun`); the times are UTC, the end after the start (at most `24:00`).
    pub fn parse(s: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!("{why} in {s:?}; expected DAYS HH:MM-HH:MM in UTC, like \"Sun 02:00-04:00\" or \"* 01:00-05:00\"")
        };
        let (days_s, times) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("no time range"))?;
        let mut days = [false; 7];
        if days_s == "*" {
            days = [true; 7];
        } else {
            for d in days_s.split(',') {
                let i = DAYS
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(d.trim()))
                    .ok_or_else(|| bad(&format!("unknown day {d:?}")))?;
                days[i] = true;
            }
        }
        let (a, b) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("no `-` between the times"))?;
        let start = minutes(a.trim()).ok_or_else(|| bad(&format!("bad time {a:?}")))?;
        let end = minutes(b.trim()).ok_or_else(|| bad(&format!("bad time {b:?}")))?;
        if end <= start || start >= 24 * 60 {
            return Err(bad("the end is not after the start (a window does not cross midnight: use two entries)"));
        }
        Ok(Window { days, start, end })
    }

    /// Whether Unix time `t` (seconds) lies in the window.
    pub fn contains(&self, t: u64) -> bool {
        // 1970-01-01 was a Thursday.
        let weekday = ((t / 86_400 + 4) % 7) as usize;
        let minute = ((t % 86_400) / 60) as u32;
        self.days[weekday] && minute >= self.start && minute < self.end
    }

    fn length(&self) -> Duration {
        Duration::from_secs(u64::from(self.end - self.start) * 60)
    }
}

/// Validates `drills` of the config file; errors name the key's path.
pub fn parse(raw: RawDrills) -> Result<Drills, String> {
    let dur = |v: &Option<String>, key: &str| -> Result<Option<Duration>, String> {
        match v {
            None => Ok(None),
            Some(s) => match parse_duration(s) {
                Ok(d) if d.is_zero() => Err(format!("{key}: must be above zero")),
                Ok(d) => Ok(Some(d)),
                Err(e) => Err(format!("{key}: {e}")),
            },
        }
    };
    let check_interval = dur(&raw.check_interval, "drills.check_interval")?;
    let mut entries = Vec::new();
    for (i, e) in raw.schedule.into_iter().enumerate() {
        let at = format!("drills.schedule[{i}]");
        let target = match (e.group, e.kind) {
            (Some(g), None) if g.contains(':') => Target::Group(g),
            (Some(g), None) => {
                return Err(format!(
                    "{at}.group: {g:?} is not a group name like \"bond:bond0\" (KIND:NAME)"
                ))
            }
            (None, Some(k)) if matches!(k.as_str(), "bond" | "mpath" | "md") => Target::Kind(k),
            (None, Some(k)) => {
                return Err(format!(
                    "{at}.kind: {k:?} has no drill (drills exist for bond, mpath, md)"
                ))
            }
            _ => return Err(format!("{at}: needs exactly one of `group` and `kind`")),
        };
        let window = Window::parse(
            e.window
                .as_deref()
                .ok_or_else(|| format!("{at}.window: missing"))?,
        )
        .map_err(|w| format!("{at}.window: {w}"))?;
        let every = dur(&e.every, &format!("{at}.every"))?
            .ok_or_else(|| format!("{at}.every: missing (like \"7d\")"))?;
        let hold = dur(&e.hold, &format!("{at}.hold"))?.unwrap_or(DEFAULT_HOLD);
        if let Some(t) = &e.probe_target {
            if t.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(format!("{at}.probe_target: {t:?} is not an IPv4 address"));
            }
        }
        entries.push(Entry {
            target,
            window,
            every,
            hold,
            probe_target: e.probe_target,
        });
    }
    Ok(Drills {
        check_interval,
        entries,
    })
}

/// Held while a scheduled drill runs; [`finish`] waits for it.
static RUNNING: Mutex<()> = Mutex::new(());
/// Set by [`finish`]: no scheduled drill starts any more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The agent stops (SIGTERM, SIGINT, SIGQUIT): a scheduled drill under way stops at its next
/// probe and rolls back before the process exits, so the host is not left on its standby.
pub fn finish() {
    STOPPING.store(true, Ordering::SeqCst);
    super::interrupt();
    let _wait = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
}

static REFUSALS: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());

fn count_refusal(group: &str, reason: &'static str, why: &str) {
    tracing::warn!(%group, reason, why, "scheduled drill refused; nothing was changed");
    if let Ok(mut m) = REFUSALS.lock() {
        *m.entry((group.to_string(), reason)).or_insert(0) += 1;
    }
}

/// The hook in `drill::metrics::render`.
pub fn render(f: &mut crate::render::Families) {
    let Ok(m) = REFUSALS.lock() else {
        return;
    };
    for ((group, reason), n) in m.iter() {
        f.counter(
            "sparewatch_drill_schedule_refusals_total",
            "Scheduled drills refused (nothing changed), by reason: no_privileges, no_state_dir, drill_running, guardrail, error.",
            &[("group", group), ("reason", reason)],
            *n as f64,
        );
    }
}

/// Whether this process may make the drill's change: the file it writes is writable
/// (bond, md), or CAP_SYS_ADMIN for dmsetup (mpath). The packaged unit runs as a user
/// without these, so its scheduled drills are refused here, before anything is collected.
fn privileged(roots: &Roots, group: &str) -> bool {
    let Some((kind, name)) = group.split_once(':') else {
        return false;
    };
    let file = match kind {
        "bond" => roots.sys(&format!("class/net/{name}/bonding/active_slave")),
        "md" => roots.sys(&format!("block/{name}/md/sync_action")),
        "mpath" => return has_cap_sys_admin(),
        _ => return false,
    };
    writable(&file)
}

fn writable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that lives across the call; access(2) only
    // reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn has_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts the schedule thread when the config file has `drills.schedule` entries.
pub fn start(drills: Drills, roots: Roots) {
    if drills.entries.is_empty() {
        return;
    }
    let every = drills.check_interval.unwrap_or(DEFAULT_CHECK_INTERVAL);
    tracing::info!(entries = drills.entries.len(), check_interval = %humantime::format_duration(every), "scheduled drills on");
    let spawned = std::thread::Builder::new()
        .name("drill-schedule".into())
        .spawn(move || {
            // The agent's own command line, parsed again: a scheduled drill takes the same
            // path, collector and Alertmanager flags as `sparewatch drill` would.
            let parsed = match crate::cli::parse_from(std::env::args_os()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "scheduled drills off: cannot read the command line");
                    return;
                }
            };
            let mut seen = Seen::default();
            loop {
                std::thread::sleep(every);
                tick(&parsed, &roots, &drills, &mut seen, unix_now());
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "scheduled drills off: cannot start their thread");
    }
}

/// What the schedule thread remembers between looks.
#[derive(Default)]
struct Seen {
    /// When each group was last tried: a group is tried at most once per window.
    tried: BTreeMap<String, u64>,
    /// The groups of a `kind` entry (by its index) and when they were collected: once per
    /// window, not a whole collection at every look.
    kinds: BTreeMap<usize, (u64, Vec<String>)>,
}

/// One look at the schedule at Unix time `now`.
fn tick(parsed: &crate::cli::Parsed, roots: &Roots, drills: &Drills, seen: &mut Seen, now: u64) {
    let state_dir = parsed.cli.common.state_dir.clone();
    let tried = &mut seen.tried;
    for (i, e) in drills.entries.iter().enumerate() {
        if !e.window.contains(now) {
            continue;
        }
        let groups = match &e.target {
            Target::Group(g) => vec![g.clone()],
            Target::Kind(k) => match seen.kinds.get(&i) {
                Some((t, groups)) if now.saturating_sub(*t) < e.window.length().as_secs() => {
                    groups.clone()
                }
                _ => {
                    let groups = groups_of_kind(parsed, roots, k);
                    seen.kinds.insert(i, (now, groups.clone()));
                    groups
                }
            },
        };
        for group in groups {
            if tried
                .get(&group)
                .is_some_and(|t| now.saturating_sub(*t) < e.window.length().as_secs())
            {
                continue;
            }
            let Some(dir) = state_dir.as_deref() else {
                tried.insert(group.clone(), now);
                count_refusal(
                    &group,
                    "no_state_dir",
                    "a drill needs --state.dir (its journal rolls a crashed drill back)",
                );
                continue;
            };
            let store = FileStore::new(dir);
            let last_pass = store
                .load_history()
                .records
                .iter()
                .filter(|r| r.group == group && r.result == "passed")
                .map(|r| r.finished)
                .fold(None, |a: Option<f64>, f| Some(a.map_or(f, |a| a.max(f))));
            if last_pass.is_some_and(|t| (now as f64) - t < e.every.as_secs_f64()) {
                continue;
            }
            tried.insert(group.clone(), now);
            if !matches!(store.load_journal(), Ok(None)) {
                count_refusal(
                    &group,
                    "drill_running",
                    "another drill runs or was not rolled back (the journal exists)",
                );
                continue;
            }
            if !privileged(roots, &group) {
                count_refusal(
                    &group,
                    "no_privileges",
                    "this process may not make the drill's change (the packaged unit's user may not); run `sparewatch drill` as root, or give the unit the privileges",
                );
                continue;
            }
            let opts = Options {
                group: group.clone(),
                yes: true,
                plan_only: false,
                force: false,
                probe_target: e.probe_target.clone(),
                hold: e.hold,
                step_timeout: Duration::from_secs(30),
                scrub_timeout: Duration::from_secs(24 * 3600),
            };
            let _running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            if STOPPING.load(Ordering::SeqCst) {
                return;
            }
            match super::attempt(parsed, roots, &opts, Caller::Schedule) {
                Ok(Attempt::Refused(why)) => count_refusal(&group, "guardrail", &why),
                Ok(Attempt::Ran(code)) => {
                    tracing::info!(%group, exit_code = code, "scheduled drill ended")
                }
                Err(err) => count_refusal(&group, "error", &format!("{err:#}")),
            }
        }
    }
}

fn groups_of_kind(parsed: &crate::cli::Parsed, roots: &Roots, kind: &str) -> Vec<String> {
    let setup = match crate::app::setup(parsed, roots) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "scheduled drills: cannot collect the groups");
            return Vec::new();
        }
    };
    crate::app::collect_once(setup, SystemTime::now(), None)
        .groups
        .iter()
        .filter(|g| g.kind == kind)
        .map(|g| g.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29 (a Sunday) 03:00 UTC.
    const SUN3: u64 = 1_795_921_200;

    #[test]
    fn windows() {
        let w = Window::parse("Sun 02:00-04:00").expect("parses");
        // 2026-11-29 is a Sunday; 03:00 UTC.
        let sun3 = SUN3;
        assert!(w.contains(sun3));
        assert!(!w.contains(sun3 + 3600));
        assert!(!w.contains(sun3 + 86_400));
        assert!(Window::parse("* 00:00-24:00").expect("all").contains(sun3));
        for bad in [
            "Sun",
            "Xyz 01:00-02:00",
            "Sun 04:00-02:00",
            "Sun 1:0-2:00",
            "Sun 25:00-26:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entries_are_validated_with_their_path() {
        let raw = |y: &str| -> RawDrills { serde_norway::from_str(y).expect("yaml") };
        let err = |y: &str| parse(raw(y)).expect_err(y);
        assert!(
            err("schedule: [{group: bond0, window: '* 01:00-02:00', every: 7d}]")
                .starts_with("drills.schedule[0].group")
        );
        assert!(
            err("schedule: [{kind: psu, window: '* 01:00-02:00', every: 7d}]")
                .starts_with("drills.schedule[0].kind")
        );
        assert!(
            err("schedule: [{kind: md, group: 'md:md0', window: '* 01:00-02:00', every: 7d}]")
                .contains("exactly one")
        );
        assert!(err("schedule: [{kind: md, window: 'Sun', every: 7d}]")
            .starts_with("drills.schedule[0].window"));
        assert!(err("schedule: [{kind: md, window: '* 01:00-02:00'}]")
            .starts_with("drills.schedule[0].every"));
        assert!(
            err("schedule: [{kind: md, window: '* 01:00-02:00', every: 0s}]")
                .contains("above zero")
        );
        let ok = parse(raw(
            "check_interval: 5s\nschedule: [{group: 'bond:bond0', window: 'Sat,Sun 02:00-04:00', every: 7d, hold: 1s, probe_target: 192.0.2.1}]",
        ))
        .expect("valid");
        assert_eq!(ok.check_interval, Some(Duration::from_secs(5)));
        assert_eq!(ok.entries[0].target, Target::Group("bond:bond0".into()));
        assert_eq!(ok.entries[0].hold, Duration::from_secs(1));
    }
}
