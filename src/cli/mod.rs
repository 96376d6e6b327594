//! Command line: exporter conventions (node_exporter's flag names where they exist). The
//! `--collector.<name>` flags and each collector's own flags come from the collector table.

pub mod explain;
pub mod status;

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use sparewatch_collectors::{FlagKind, FlagSpec, FlagValue, Flags, COLLECTORS};

#[derive(Debug, Parser)]
#[command(
    name = "sparewatch",
    version,
    about = "Watches hardware redundancy (PSUs, fans, bonds, multipath, RAID) and tells you when a server runs on its last spare.",
    long_about = None,
    after_help = "Without a subcommand, `sparewatch` runs the agent (same as `sparewatch run`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: collect in the background, serve /metrics, / and /healthz.
    Run,
    /// Collect once and print every group as a table (or JSON).
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// List the members of each group under it (role, health, reason).
        #[arg(short = 'v', long = "verbose")]
        verbose: bool,
        /// Keep collecting and redraw the table whenever it changes (Ctrl-C to stop). The
        /// state dir is not read, so "since" counts from the start of the watch.
        #[arg(long = "watch", conflicts_with = "format")]
        watch: bool,
    },
    /// Collect once and say in words why GROUP (e.g. bond:bond0) has its state: policy,
    /// each member, evidence, hold-down, failure domains, and what to check.
    Explain {
        /// The group's name, as `status` shows it.
        group: String,
    },
    /// Collect once; Nagios/Icinga exit codes: 0 all redundant, 1 degraded/no_redundancy/
    /// unknown, 2 failed, 3 internal error.
    Check,
    /// Forget remembered groups (`GROUP`) or members (`GROUP/MEMBER`) in `--state.dir`:
    /// a decommissioned bond, a removed PSU. Works whether the agent runs or not.
    Forget {
        /// `GROUP` or `GROUP/MEMBER`, as `status` names them (for example `bond:bond0/eth2`).
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Validate a config file (and --web.config.file, if given) without starting: exit 0
    /// when valid, 1 with every error naming the key when not (for config management).
    CheckConfig {
        /// The YAML config file to check.
        file: PathBuf,
    },
    /// Failover drill of one group: prove its standby takes over, measure it, roll back.
    /// Prints the plan and asks; refuses (exit 1, nothing changed) unless every group is
    /// redundant and the kind has a safe drill. Exit 0 passed, 2 failed or interrupted
    /// (rolled back), 3 error. See docs/drills.md.
    Drill(DrillArgs),
    /// Run the agent against a built-in simulated server that plays a story of faults and
    /// repairs, so the whole product can be seen without redundant hardware.
    Demo {
        /// Seconds between two steps of the story.
        #[arg(long = "demo.step-interval", default_value = "20s", value_parser = parse_duration_arg)]
        step: std::time::Duration,
    },
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The group to drill, as `sparewatch status` names it (`bond:bond0`, `mpath:mpatha`, `md:md0`).
    pub group: String,
    /// Run without asking.
    #[arg(long)]
    pub yes: bool,
    /// Only print the plan (after the guardrails); change nothing.
    #[arg(long, conflicts_with = "yes")]
    pub plan: bool,
    /// Drill although other groups on the host are not redundant (the drilled group itself
    /// must still be redundant).
    #[arg(long)]
    pub force: bool,
    /// IPv4 address to probe by ARP through a bond (default: the bond's default gateway).
    #[arg(long = "drill.probe-target")]
    pub probe_target: Option<String>,
    /// How long the standby carries alone (bond, multipath), or a balance-mode slave stays down.
    #[arg(long = "drill.hold", default_value = "10s", value_parser = parse_duration_arg)]
    pub hold: std::time::Duration,
    /// Bound of every wait for the kernel (takeover, failback, link back up); then roll back.
    #[arg(long = "drill.step-timeout", default_value = "30s", value_parser = parse_duration_arg)]
    pub step_timeout: std::time::Duration,
    /// Bound of an md scrub (`check`); then it is stopped.
    #[arg(long = "drill.scrub-timeout", default_value = "24h", value_parser = parse_duration_arg)]
    pub scrub_timeout: std::time::Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    sparewatch_collectors::parse_duration(s)
}

#[derive(Debug, Args)]
pub struct Common {
    /// Address to serve /metrics on (host:port; ":port" means all addresses).
    #[arg(long = "web.listen-address", default_value = ":9856", global = true)]
    pub listen_address: String,
    /// TLS, basic auth and connection limits of the HTTP server.
    #[command(flatten)]
    pub web: crate::web_server::WebFlags,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics", global = true)]
    pub telemetry_path: String,
    /// sysfs mount point.
    #[arg(long = "path.sysfs", default_value = "/sys", global = true)]
    pub sysfs: PathBuf,
    /// procfs mount point.
    #[arg(long = "path.procfs", default_value = "/proc", global = true)]
    pub procfs: PathBuf,
    /// Root filesystem (for /dev, /etc and tool binaries).
    #[arg(long = "path.rootfs", default_value = "/", global = true)]
    pub rootfs: PathBuf,
    /// YAML config file (optional: everything is auto-discovered without one).
    #[arg(long = "config.file", global = true)]
    pub config_file: Option<PathBuf>,
    /// Directory for persisted state (group since-timestamps, fans and PSUs the hwmon collector has seen). Not written when unset.
    #[arg(long = "state.dir", global = true, env = "STATE_DIRECTORY")]
    pub state_dir: Option<PathBuf>,
    /// Recovery hold-down: a member must stay healthy this long before it counts again
    /// (overrides `hold_down` in the config file).
    #[arg(long = "engine.hold-down", global = true, value_parser = parse_duration_arg)]
    pub hold_down: Option<std::time::Duration>,
    /// Disable all collectors by default; enable them one by one with --collector.<name>.
    #[arg(long = "collector.disable-defaults", global = true)]
    pub disable_defaults: bool,
    /// Only log messages with this level or above.
    #[arg(long = "log.level", default_value = "info", global = true,
          value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    pub log_format: LogFormat,
}

/// The full command: derived flags plus the ones generated from the collector table.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for spec in COLLECTORS {
        let default = if spec.enabled_by_default {
            "enabled"
        } else {
            "disabled"
        };
        cmd = cmd
            .arg(
                Arg::new(format!("collector.{}", spec.name))
                    .long(format!("collector.{}", spec.name))
                    .action(ArgAction::SetTrue)
                    .global(true)
                    .help(format!(
                        "Enable the {} collector: {} (default: {default})",
                        spec.name, spec.help
                    )),
            )
            .arg(
                Arg::new(format!("no-collector.{}", spec.name))
                    .long(format!("no-collector.{}", spec.name))
                    .action(ArgAction::SetTrue)
                    .global(true)
                    .help(format!("Disable the {} collector", spec.name)),
            );
        for f in spec.flags {
            cmd = cmd.arg(collector_arg(f));
        }
    }
    for a in crate::alertmanager::args() {
        cmd = cmd.arg(a.global(true));
    }
    cmd
}

/// A flag a collector declared, as an argument of the parser: its kind decides the action
/// and the check of its value (an unsigned flag out of its declared width is refused here).
fn collector_arg(f: &FlagSpec) -> Arg {
    let a = Arg::new(f.name).long(f.name).help(f.help).global(true);
    match f.kind {
        FlagKind::Text => a.value_name(f.value_name),
        FlagKind::Repeated => a.value_name(f.value_name).action(ArgAction::Append),
        FlagKind::Switch => a.action(ArgAction::SetTrue),
        FlagKind::Unsigned(bits) => {
            let max = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            a.value_name(f.value_name)
                .value_parser(clap::value_parser!(u64).range(0..=max))
        }
    }
}

/// The values of the collectors' declared flags in `m`, for [`sparewatch_collectors::BuildContext`].
fn collector_flags(m: &ArgMatches) -> Result<Flags, clap::Error> {
    let specs = || COLLECTORS.iter().flat_map(|c| c.flags.iter());
    let mut flags = Flags::new(specs());
    let internal = |name: &str, e: &dyn std::fmt::Display| {
        clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!("--{name}: {e}\n"),
        )
    };
    for f in specs() {
        let value = match f.kind {
            FlagKind::Text => m
                .try_get_one::<String>(f.name)
                .map_err(|e| internal(f.name, &e))?
                .map(|s| FlagValue::Text(s.clone())),
            FlagKind::Repeated => m
                .try_get_many::<String>(f.name)
                .map_err(|e| internal(f.name, &e))?
                .map(|v| FlagValue::Repeated(v.cloned().collect())),
            FlagKind::Switch => m
                .try_get_one::<bool>(f.name)
                .map_err(|e| internal(f.name, &e))?
                .filter(|on| **on)
                .map(|_| FlagValue::Switch),
            FlagKind::Unsigned(_) => m
                .try_get_one::<u64>(f.name)
                .map_err(|e| internal(f.name, &e))?
                .map(|n| FlagValue::Unsigned(*n)),
        };
        if let Some(v) = value {
            flags.set(f.name, v).map_err(|e| internal(f.name, &e))?;
        }
    }
    Ok(flags)
}

/// Parsed command line.
pub struct Parsed {
    pub cli: Cli,
    pub matches: ArgMatches,
    /// The collectors' flags, typed ([`collector_flags`]).
    flags: Flags,
}

pub fn parse_from<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    // Global args are propagated to the subcommand's matches.
    let flags = collector_flags(matches.subcommand().map_or(&matches, |(_, m)| m))?;
    Ok(Parsed {
        cli,
        matches,
        flags,
    })
}

impl Parsed {
    fn flag(&self, id: &str) -> bool {
        // Global args are propagated to the subcommand's matches too.
        let sub = self.matches.subcommand().map(|(_, m)| m);
        let get = |m: &ArgMatches| {
            m.try_get_one::<bool>(id)
                .ok()
                .flatten()
                .copied()
                .unwrap_or(false)
        };
        get(&self.matches) || sub.is_some_and(get)
    }

    /// The matches the agent's own generated flags (`--alertmanager.*`) are read from.
    pub fn collector_matches(&self) -> &ArgMatches {
        self.matches.subcommand().map_or(&self.matches, |(_, m)| m)
    }

    /// The values of the collectors' own flags.
    pub fn collector_flags(&self) -> &Flags {
        &self.flags
    }

    /// Whether a collector runs: its default, `--collector.disable-defaults`, then
    /// `--collector.<name>` / `--no-collector.<name>`.
    pub fn collector_enabled(&self, name: &str, enabled_by_default: bool) -> bool {
        if self.flag(&format!("no-collector.{name}")) {
            return false;
        }
        if self.flag(&format!("collector.{name}")) {
            return true;
        }
        enabled_by_default && !self.cli.common.disable_defaults
    }
}

impl DrillArgs {
    pub fn options(&self) -> crate::drill::Options {
        crate::drill::Options {
            group: self.group.clone(),
            yes: self.yes,
            plan_only: self.plan,
            force: self.force,
            probe_target: self.probe_target.clone(),
            hold: self.hold,
            step_timeout: self.step_timeout,
            scrub_timeout: self.scrub_timeout,
        }
    }
}
