//! Failover drills: prove that a group's standby takes over, in a controlled and reversible
//! way, and remember the result (DESIGN.md §6 "Has the standby been proven?").
//!
//! - [`plan`]: what a drill of a group would do, from the same one-shot collection `status`
//!   uses, after the guardrails ([`guard`]) that refuse with nothing touched.
//! - [`steps`]: per kind (bond active-backup, bond balance/802.3ad, dm-multipath, md scrub),
//!   every change written to the journal *before* it is made, every step bounded by a
//!   timeout, everything undone at the end, on a failure, on SIGINT/SIGTERM, and — through
//!   the journal — at the next start after a SIGKILL, crash or reboot ([`recover`]).
//! - [`store`]: the journal (also the lock) and the result history in `--state.dir`.
//! - [`metrics`]: the results as Prometheus series, rendered from the history.
//!
//! Size: about 620 lines: the guardrails, the plan text, signals, recovery at start-up and
//! [`attempt`], the one sequence manual and scheduled drills share (journal, silence, steps,
//! undo, history). It is kept in one place on purpose: the order of its safety steps is read
//! in one go.

pub mod metrics;
pub mod probe;
pub mod schedule;
pub mod silence;
pub mod steps;
pub mod store;

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sparewatch_collectors::Roots;

use crate::snapshot::{unix, Snapshot};
use store::{DrillStore, FileStore, Journal, Record, Undo};

/// Exit codes of `sparewatch drill`.
pub const EXIT_PASSED: u8 = 0;
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_FAILED: u8 = 2;
pub const EXIT_ERROR: u8 = 3;

/// `sparewatch drill` options (flags of the subcommand).
#[derive(Clone, Debug)]
pub struct Options {
    pub group: String,
    pub yes: bool,
    pub plan_only: bool,
    pub force: bool,
    /// Probe target through a bond (IPv4); default: the bond's default gateway.
    pub probe_target: Option<String>,
    /// How long the standby carries alone (bond, multipath) or a slave stays down (balance).
    pub hold: Duration,
    /// Bound of every step that waits for the kernel (takeover, failback, link back up).
    pub step_timeout: Duration,
    /// Bound of an md scrub.
    pub scrub_timeout: Duration,
}

/// Why a drill does not run. Nothing was touched.
#[derive(Debug, PartialEq)]
pub struct Refusal(pub String);

/// A group's drill, decided from the collected data.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Active-backup bond: switch `active_slave` to `standby` and back.
    BondActiveBackup {
        bond: String,
        active: String,
        standby: String,
    },
    /// 802.3ad / balance-*: take `slave` administratively down for a while.
    BondSlaveDown {
        bond: String,
        mode: String,
        slave: String,
    },
    Multipath {
        map: String,
    },
    MdScrub {
        md: String,
    },
}

/// Kinds no software drill is safe for, with what to check by hand.
fn by_hand(kind: &str) -> Option<&'static str> {
    match kind {
        "psu" => Some(
            "no software drill can safely fail a power supply over. Check it by hand in a \
             maintenance window: pull the power cord of one PSU (never both), confirm the \
             server keeps running and `sparewatch status` shows the group no_redundancy, plug \
             it back and wait for redundant; repeat with the other PSU. Check that each PSU is \
             fed from a different circuit (A/B feed).",
        ),
        "fan" => Some(
            "no software drill can safely stop a fan. Check by hand: confirm in the BMC that \
             every fan reports a speed, that the fan zone ramps up when one fan is unplugged \
             for a short time (watch inlet and CPU temperatures), and that sparewatch reports \
             the zone degraded meanwhile.",
        ),
        _ => None,
    }
}

/// Checks every guardrail against one collection; returns the drill to run.
pub fn guard(snap: &Snapshot, roots: &Roots, opts: &Options) -> Result<Kind, Refusal> {
    let Some(g) = snap.groups.iter().find(|g| g.name == opts.group) else {
        let known: Vec<&str> = snap.groups.iter().map(|g| g.name.as_str()).collect();
        return Err(Refusal(format!(
            "no group {:?} on this host (groups: {})",
            opts.group,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if let Some(why) = by_hand(&g.kind) {
        return Err(Refusal(format!("{} ({}): {why}", g.name, g.kind)));
    }
    if g.kind == "nvme" {
        return Err(Refusal(format!(
            "{} is NVMe native multipath: its paths cannot be failed over by software here \
             (drills exist for bond, mpath, md)",
            g.name
        )));
    }
    if !matches!(g.kind.as_str(), "bond" | "mpath" | "md") {
        return Err(Refusal(format!(
            "{} is of kind {}, which has no safe drill (drills exist for bond, mpath, md)",
            g.name, g.kind
        )));
    }
    let stale: Vec<String> = snap
        .collectors
        .iter()
        .filter(|c| !c.up)
        .map(|c| {
            format!(
                "{} ({})",
                c.name,
                c.last_error.as_deref().unwrap_or("no fresh data")
            )
        })
        .collect();
    if !stale.is_empty() {
        return Err(Refusal(format!(
            "the agent's data is stale or broken, so no drill can be judged safe: collector {} down",
            stale.join(", collector ")
        )));
    }
    if g.state != "redundant" {
        let reasons = g.reasons();
        return Err(Refusal(format!(
            "{} is {}, not redundant: a drill would take away its last working member{}",
            g.name,
            g.state,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        )));
    }
    let others: Vec<String> = snap
        .groups
        .iter()
        .filter(|o| o.name != g.name && o.state != "redundant" && !o.by_design)
        .map(|o| format!("{} is {}", o.name, o.state))
        .collect();
    if !others.is_empty() && !opts.force {
        return Err(Refusal(format!(
            "other groups on this host are not redundant ({}); a drill now could coincide with \
             a second failure. Repair them first, or pass --force to drill anyway",
            others.join(", ")
        )));
    }
    kind_of(g, roots)
}

fn read(path: &Path) -> Result<String, Refusal> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Refusal(format!("cannot read {}: {e}", path.display())))
}

fn kind_of(g: &crate::snapshot::GroupView, roots: &Roots) -> Result<Kind, Refusal> {
    let name = g
        .name
        .split_once(':')
        .map(|(_, n)| n.to_string())
        .unwrap_or_default();
    match g.kind.as_str() {
        "bond" => {
            let dir = roots.sys(&format!("class/net/{name}/bonding"));
            let mode = read(&dir.join("mode"))?;
            let mode = mode.split_whitespace().next().unwrap_or("").to_string();
            let slaves: Vec<String> = read(&dir.join("slaves"))?
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if slaves.len() < 2 {
                return Err(Refusal(format!("{name} has fewer than two slaves")));
            }
            if mode == "active-backup" {
                let active = read(&dir.join("active_slave"))?;
                let standby = slaves
                    .iter()
                    .find(|s| **s != active)
                    .cloned()
                    .ok_or_else(|| Refusal(format!("{name} has no standby slave")))?;
                if active.is_empty() {
                    return Err(Refusal(format!("{name} has no active slave")));
                }
                Ok(Kind::BondActiveBackup {
                    bond: name,
                    active,
                    standby,
                })
            } else {
                let slave = slaves.last().cloned().unwrap_or_default();
                Ok(Kind::BondSlaveDown {
                    bond: name,
                    mode,
                    slave,
                })
            }
        }
        "mpath" => Ok(Kind::Multipath { map: name }),
        "md" => {
            let action = read(&roots.sys(&format!("block/{name}/md/sync_action")))?;
            if action != "idle" {
                return Err(Refusal(format!(
                    "{name} is busy ({action}): a scrub starts only on an idle array"
                )));
            }
            Ok(Kind::MdScrub { md: name })
        }
        other => Err(Refusal(format!("kind {other} has no drill"))),
    }
}

/// The plan as printed: numbered steps, each with its undo.
pub fn plan_text(kind: &Kind, opts: &Options, probe_target: Option<&str>) -> String {
    let hold = humantime::format_duration(opts.hold);
    let to = humantime::format_duration(opts.step_timeout);
    let target = probe_target.unwrap_or("(no target found: pass --drill.probe-target)");
    let steps: Vec<String> = match kind {
        Kind::BondActiveBackup {
            bond,
            active,
            standby,
        } => vec![
            format!("probe {target} by ARP through {bond}; no answer → stop, nothing changed"),
            format!("make {standby} the active slave of {bond} (undo: {active} back)"),
            format!("probe through {standby} for {hold}: takeover time, probes lost"),
            format!("make {active} the active slave again: failback time"),
            format!("probe {target} through {bond} once more"),
        ],
        Kind::BondSlaveDown { bond, mode, slave } => vec![
            format!("probe {target} by ARP through {bond} ({mode}); no answer → stop"),
            format!("set {slave} administratively down (undo: set it up)"),
            format!("probe through {bond} for {hold}: probes lost while {slave} is down"),
            format!("set {slave} up, wait until its link is up again"),
        ],
        Kind::Multipath { map } => vec![
            format!("read 4 KiB directly (O_DIRECT) through /dev/mapper/{map}; failure → stop"),
            format!("fail the paths of {map}'s active path group (dmsetup message fail_path; undo: reinstate_path, switch_group back)"),
            format!("read through {map} for {hold}: takeover time, reads lost"),
            "reinstate the paths, switch back to the original path group: failback time"
                .to_string(),
            format!("check every path of {map} is active again"),
        ],
        Kind::MdScrub { md } => vec![
            format!("write `check` to {md}/md/sync_action (reads every member, idle halves and spares too, at no more than sync_speed_max; undo: `idle`)"),
            format!("wait until the check ends (at most {})", humantime::format_duration(opts.scrub_timeout)),
            "report mismatch_cnt and members' read errors: any → failed (the standby is not healthy)".to_string(),
            "start a SMART short self-test (smartctl -t short) on the disks of hot spares and write-mostly members, which a check does not read or rarely does; the smart collector reads the result on a later pass".to_string(),
        ],
    };
    let mut s = format!("drill {} — plan:\n", opts.group);
    for (i, st) in steps.iter().enumerate() {
        s.push_str(&format!("  {}. {st}\n", i + 1));
    }
    s.push_str(&format!(
        "Every wait is bounded ({to}); on a timeout, an error or Ctrl-C everything is undone. \
         A journal in --state.dir undoes it at the next start after a crash.\n"
    ));
    s
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes a running drill stop at its next probe and roll back (the agent's shutdown).
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once SIGINT or SIGTERM arrived during a drill.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// SIGINT/SIGTERM set a flag that every step checks, instead of killing the process
/// half-way: the drill then rolls back at once.
/// Once per process: the agent's scheduled drills call it for every drill.
fn catch_signals() -> anyhow::Result<()> {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("drill-signals".into())
        .spawn(move || {
            rt.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    eprintln!("sparewatch drill: interrupted; rolling back");
                }
            });
        })?;
    Ok(())
}

/// Start time of a process (field 22 of /proc/PID/stat), `None` when it does not exist.
/// Always the real /proc: this is about our own processes, not the watched host's tree.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that wrote the journal still runs.
fn journal_owner_alive(j: &Journal) -> bool {
    process_start(j.pid) == Some(j.pid_start)
}

/// Undoes `undo` last-first; returns what could not be undone.
fn undo_all(roots: &Roots, undo: &[Undo]) -> Vec<String> {
    undo.iter()
        .rev()
        .filter_map(|u| steps::undo(roots, u).err().map(|e| format!("{u:?}: {e}")))
        .collect()
}

/// Called when the agent or the CLI starts: a journal left by a drill whose process is gone
/// (SIGKILL, crash, reboot) is rolled back, and the drill recorded as aborted.
pub fn recover(state_dir: Option<&Path>, roots: &Roots) {
    let Some(dir) = state_dir else {
        return;
    };
    let store = FileStore::new(dir);
    let j = match store.load_journal() {
        Ok(Some(j)) => j,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "drill journal unreadable: an interrupted drill may not be rolled back; inspect drill-journal.json in the state dir");
            return;
        }
    };
    if journal_owner_alive(&j) {
        tracing::info!(
            pid = j.pid,
            group = %j.group,
            "a drill is running in another process"
        );
        return;
    }
    tracing::warn!(group = %j.group, pid = j.pid, changes = j.undo.len(), "a drill was interrupted (its process is gone): rolling it back");
    let failed = undo_all(roots, &j.undo);
    let detail = if failed.is_empty() {
        format!(
            "interrupted (process {} gone); rolled back at the next start",
            j.pid
        )
    } else {
        format!("interrupted; rollback incomplete: {}", failed.join("; "))
    };
    if let Err(e) = store.append_history(Record {
        group: j.group.clone(),
        kind: j.kind.clone(),
        result: "aborted".into(),
        finished: unix(SystemTime::now()),
        failover_seconds: None,
        failback_seconds: None,
        probes_lost: None,
        detail: detail.clone(),
    }) {
        tracing::error!(error = %e, "cannot record the aborted drill");
    }
    if failed.is_empty() {
        if let Err(e) = store.remove_journal() {
            tracing::error!(error = %e, "cannot remove the drill journal");
        }
        tracing::warn!(group = %j.group, "interrupted drill rolled back");
    } else {
        // The journal stays: the next start tries again, and no new drill starts meanwhile.
        tracing::error!(group = %j.group, %detail, "interrupted drill NOT fully rolled back");
    }
}

/// `sparewatch drill`.
pub fn run(
    parsed: &crate::cli::Parsed,
    roots: &Roots,
    opts: &Options,
) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match attempt(parsed, roots, opts, Caller::Cli)? {
        Attempt::Refused(why) => {
            eprintln!("sparewatch drill: refused: {why}. Nothing was changed.");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
        Attempt::Ran(code) => Ok(ExitCode::from(code)),
    }
}

/// Who runs a drill: the `drill` subcommand (plan printed, confirmation asked) or the
/// agent's schedule ([`schedule`]; always confirmed, plan and result logged).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Caller {
    Cli,
    Schedule,
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
pub enum Attempt {
    /// Nothing was changed.
    Refused(String),
    /// The drill ran (or only its plan was printed); the `sparewatch drill` exit code.
    Ran(u8),
}

/// One drill, the guardrails first: the one code path of `sparewatch drill` and of the
/// agent's scheduled drills.
pub fn attempt(
    parsed: &crate::cli::Parsed,
    roots: &Roots,
    opts: &Options,
    caller: Caller,
) -> anyhow::Result<Attempt> {
    let state_dir = parsed.cli.common.state_dir.clone();
    recover(state_dir.as_deref(), roots);
    let refuse = |why: &str| Ok(Attempt::Refused(why.to_string()));

    // PSU and fan groups are named by kind (`psu:…`, `fan:…`): refused before anything is
    // collected, so not even a collector's memory file is written.
    if let Some(why) = opts
        .group
        .split_once(':')
        .and_then(|(kind, _)| by_hand(kind))
    {
        return refuse(&format!("{}: {why}", opts.group));
    }
    if let Some(dir) = &state_dir {
        match FileStore::new(dir).load_journal() {
            Ok(Some(j)) => {
                return refuse(&format!(
                    "another drill is running or was not rolled back (group {}, pid {}, journal in the state dir)",
                    j.group, j.pid
                ))
            }
            Ok(None) => {}
            Err(e) => return refuse(&format!("the drill journal is unreadable: {e}")),
        }
    }
    let setup = crate::app::setup(parsed, roots)?;
    let push = setup.push.clone();
    let snap = crate::app::collect_once(setup, SystemTime::now(), None);
    let kind = match guard(&snap, roots, opts) {
        Ok(k) => k,
        Err(Refusal(why)) => return refuse(&why),
    };
    let target = match &kind {
        Kind::BondActiveBackup { bond, .. } | Kind::BondSlaveDown { bond, .. } => opts
            .probe_target
            .clone()
            .or_else(|| probe::default_gateway(roots, bond)),
        _ => None,
    };
    let plan = plan_text(&kind, opts, target.as_deref());
    match caller {
        Caller::Cli => print!("{plan}"),
        Caller::Schedule => tracing::info!(group = %opts.group, %plan, "scheduled drill starts"),
    }
    if opts.plan_only {
        return Ok(Attempt::Ran(EXIT_PASSED));
    }
    let Some(dir) = state_dir else {
        return refuse("a drill needs --state.dir: its journal is what rolls a crashed drill back");
    };
    if matches!(
        kind,
        Kind::BondActiveBackup { .. } | Kind::BondSlaveDown { .. }
    ) && target.is_none()
    {
        return refuse(
            "no probe target: the bond has no default gateway; pass --drill.probe-target",
        );
    }
    if caller == Caller::Cli && !opts.yes && !confirm()? {
        return refuse("not confirmed (answer `yes`, or pass --yes)");
    }
    let store = FileStore::new(&dir);
    let journal = Journal {
        version: 1,
        pid: std::process::id(),
        pid_start: process_start(std::process::id()).unwrap_or(0),
        group: opts.group.clone(),
        kind: snap
            .groups
            .iter()
            .find(|g| g.name == opts.group)
            .map(|g| g.kind.clone())
            .unwrap_or_default(),
        started: unix(SystemTime::now()),
        undo: Vec::new(),
    };
    match store.create_journal(&journal) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return refuse("another drill started just now (its journal exists)")
        }
        Err(e) => anyhow::bail!("cannot write the drill journal in {}: {e}", dir.display()),
    }
    catch_signals()?;
    let silences = push.as_ref().map(|p| {
        let hostname = crate::host::HostInfo::detect().hostname;
        silence::start(p, &hostname, &opts.group, silence_length(&kind, opts))
    });
    let mut ctx = steps::Ctx::new(roots, &store, journal, opts, target);
    let outcome = ctx.run(&kind);
    // Whatever happened: undo what is still journaled (a step that finished undid its own).
    let left = ctx.journal.undo.clone();
    let failed_undo = undo_all(roots, &left);
    if let (Some(p), Some(ids)) = (push.as_ref(), silences) {
        silence::expire(p, &ids);
    }
    let (result, mut detail) = match &outcome {
        Ok(d) => ("passed", d.clone()),
        Err(steps::StepError::Failed(d)) => ("failed", d.clone()),
        Err(steps::StepError::Aborted(d)) => ("aborted", d.clone()),
    };
    if !failed_undo.is_empty() {
        detail = format!("{detail}; ROLLBACK INCOMPLETE: {}", failed_undo.join("; "));
    } else if !left.is_empty() {
        detail = format!("{detail}; rolled back");
    }
    let rec = Record {
        group: opts.group.clone(),
        kind: ctx.journal.kind.clone(),
        result: result.into(),
        finished: unix(SystemTime::now()),
        failover_seconds: ctx.m.failover,
        failback_seconds: ctx.m.failback,
        probes_lost: ctx.m.probes_sent.map(|_| ctx.m.probes_lost),
        detail: detail.clone(),
    };
    let line = result_line(&rec, &ctx.m);
    match caller {
        Caller::Cli => println!("{line}"),
        Caller::Schedule => tracing::info!(group = %opts.group, result = %rec.result, "{line}"),
    }
    if let Err(e) = store.append_history(rec) {
        eprintln!("sparewatch drill: cannot record the result: {e}");
    }
    if failed_undo.is_empty() {
        store.remove_journal()?;
        Ok(Attempt::Ran(if result == "passed" {
            EXIT_PASSED
        } else {
            EXIT_FAILED
        }))
    } else {
        eprintln!(
            "sparewatch drill: the journal is kept; the next start of sparewatch retries the rollback"
        );
        Ok(Attempt::Ran(EXIT_ERROR))
    }
}

/// Long enough to cover the whole drill; expired as soon as it ends, so a drill that dies
/// with SIGKILL leaves a silence that still ends on its own.
fn silence_length(kind: &Kind, opts: &Options) -> Duration {
    match kind {
        Kind::MdScrub { .. } => opts.scrub_timeout + opts.step_timeout,
        _ => opts.hold + opts.step_timeout * 4 + Duration::from_secs(60),
    }
}

fn result_line(r: &Record, m: &steps::Measured) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{:.3} s", v));
    format!(
        "drill {}: {} — failover {}, failback {}, probes {} sent / {} lost — {}",
        r.group,
        r.result,
        f(r.failover_seconds),
        f(r.failback_seconds),
        m.probes_sent.unwrap_or(0),
        m.probes_lost,
        r.detail
    )
}

fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("sparewatch drill: standard input is not a terminal; pass --yes to run");
        return Ok(false);
    }
    eprint!("Run this drill? Type yes: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "yes" | "y"))
}
