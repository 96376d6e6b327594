//! The `sparewatch` binary: parses flags, then runs the chosen subcommand.

use std::process::ExitCode;
use std::time::SystemTime;

use sparewatch::cli::{self, Command, Format, LogFormat};
use sparewatch::{api, app, demo, explain, status};

fn main() -> ExitCode {
    let parsed = match cli::parse_from(std::env::args_os()) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 3 } else { 0 });
        }
    };
    init_logging(&parsed.cli.common.log_level, parsed.cli.common.log_format);
    match run(&parsed) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sparewatch: error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Logs at `level`, or as `RUST_LOG` says: `target=level` directives and a bare default
/// level (`sparewatch_collectors::md=debug,warn`). `tracing_subscriber`'s `EnvFilter` (span
/// and field filters) is not used: it brings the full regex engine, about 0.7 MB of the
/// binary's text and 0.3 MB of its tables, resident in every agent (docs/benchmarks.md,
/// "Memory"). A `RUST_LOG` that does not parse is ignored, with a line saying so.
fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let fallback: Targets = level
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let parsed = from_env.as_deref().map(str::parse::<Targets>);
    let filter = match &parsed {
        Some(Ok(t)) => t.clone(),
        _ => fallback,
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().with_filter(filter))
            .init(),
        LogFormat::Logfmt => tracing_subscriber::registry()
            .with(fmt.with_ansi(false).with_filter(filter))
            .init(),
    }
    if let Some(Err(e)) = parsed {
        tracing::warn!(error = %e, "RUST_LOG ignored: not target=level directives");
    }
}

fn run(parsed: &cli::Parsed) -> anyhow::Result<ExitCode> {
    let roots = app::roots(parsed);
    // The last drill per group (status API, page, status table, explain), read only.
    api::set_state_dir(parsed.cli.common.state_dir.as_deref());
    match &parsed.cli.command {
        None | Some(Command::Run) => {
            sparewatch::drill::recover(parsed.cli.common.state_dir.as_deref(), &roots);
            sparewatch::drill::metrics::set_state_dir(parsed.cli.common.state_dir.as_deref());
            let setup = app::setup(parsed, &roots)?;
            if let Some(file) = &parsed.cli.common.config_file {
                let drills = sparewatch::config::Config::load(file)?.drills;
                sparewatch::drill::schedule::start(drills, roots.clone());
            }
            let served = app::serve(&parsed.cli.common, setup);
            sparewatch::drill::schedule::finish();
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Demo { step }) => {
            demo::run(parsed, *step)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Status {
            format,
            verbose,
            watch,
        }) => {
            let setup = app::setup(parsed, &roots)?;
            let opts = status::TableOptions::for_stdout(*verbose);
            if *watch {
                status::watch(setup, opts)?;
                return Ok(ExitCode::SUCCESS);
            }
            let snap = app::collect_once(setup, SystemTime::now(), None);
            match format {
                Format::Table => print!("{}", status::table_with(&snap, opts)),
                Format::Json => println!("{}", api::to_json(&snap, &api::Host::detect(), true)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Forget { targets }) => {
            let dir = parsed.cli.common.state_dir.as_deref().ok_or_else(|| {
                anyhow::anyhow!("forget needs --state.dir (the agent's state directory)")
            })?;
            for line in sparewatch::store::forget_cli(dir, targets)? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::CheckConfig { file }) => Ok(check_config(parsed, &roots, file)),
        Some(Command::Drill(d)) => sparewatch::drill::run(parsed, &roots, &d.options()),
        Some(Command::Explain { group }) => {
            let setup = app::setup(parsed, &roots)?;
            let hold_down = setup.engine_config.hold_down;
            let snap = app::collect_once(setup, SystemTime::now(), None);
            match explain::explain(&snap, group, hold_down) {
                Ok(text) => {
                    print!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("sparewatch: {e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Some(Command::Check) => {
            let setup = app::setup(parsed, &roots)?;
            let snap = app::collect_once(setup, SystemTime::now(), None);
            let (code, line) = status::check(&snap);
            println!("{line}");
            Ok(ExitCode::from(code as u8))
        }
    }
}

/// `sparewatch check-config FILE`: the config file, every collector section in it (built as
/// the agent would build it) and `--web.config.file`, without starting anything.
fn check_config(
    parsed: &cli::Parsed,
    roots: &sparewatch_collectors::Roots,
    file: &std::path::Path,
) -> ExitCode {
    let mut errors = Vec::new();
    match sparewatch::config::Config::load(file) {
        Err(e) => errors.push(e.to_string()),
        Ok(config) => {
            for spec in sparewatch_collectors::COLLECTORS {
                let Some(section) = config.collectors.get(spec.name) else {
                    continue;
                };
                let ctx = sparewatch_collectors::BuildContext {
                    roots,
                    flags: parsed.collector_flags(),
                    config: Some(section),
                    // Validating only: a collector must not write its memory.
                    read_only: true,
                    memory: sparewatch_collectors::CollectorMemory::none(),
                };
                if let Err(e) = (spec.build)(&ctx) {
                    errors.push(format!("{}: {e}", file.display()));
                }
            }
        }
    }
    if let Some(web) = &parsed.cli.common.web.config_file {
        if let Err(e) = sparewatch::web_config::load(web) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        println!("{}: ok", file.display());
        ExitCode::SUCCESS
    } else {
        for e in errors {
            eprintln!("sparewatch: error: {e}");
        }
        ExitCode::from(1)
    }
}
