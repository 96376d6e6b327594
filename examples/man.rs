//! Writes the man page sparewatch(1) to stdout (or to the file named as the first argument).
//! Options, subcommands and collectors come from the real command line definition; the prose
//! sections are written here.
//!
//! The packages ship the generated page committed as `packaging/sparewatch.1`, so a plain
//! `cargo deb` works on a fresh clone; `tests/it/man.rs` fails when that file differs from
//! what this generates. After changing a flag: `cargo run --example man -- packaging/sparewatch.1`.

use std::io::Write;

use clap_mangen::Man;
use sparewatch_collectors::COLLECTORS;

/// Escapes text for roff: backslashes, and a leading dot or quote that would start a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn section(out: &mut Vec<u8>, title: &str, paragraphs: &[&str]) -> std::io::Result<()> {
    writeln!(out, ".SH {title}")?;
    for p in paragraphs {
        writeln!(out, ".PP\n{}", roff(p))?;
    }
    Ok(())
}

/// `.TP` entries: a bold term and its text.
fn tagged(out: &mut Vec<u8>, items: &[(&str, &str)]) -> std::io::Result<()> {
    for (term, text) in items {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(term), roff(text))?;
    }
    Ok(())
}

/// The options of a subcommand that are its own (the global ones are listed once above).
fn own_options(sub: &clap::Command) -> Option<clap::Command> {
    let own: Vec<clap::Arg> = sub
        .get_arguments()
        .filter(|a| !a.is_global_set() && a.get_long().is_some_and(|l| l != "help"))
        .cloned()
        .collect();
    if own.is_empty() {
        return None;
    }
    Some(
        clap::Command::new(sub.get_name().to_string())
            .disable_help_flag(true)
            .args(own),
    )
}

pub fn page() -> std::io::Result<Vec<u8>> {
    let cmd = sparewatch::cli::command();
    let man = Man::new(cmd.clone())
        .section("1")
        .manual("System Administration")
        .source(format!("sparewatch {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    writeln!(out, ".SH SYNOPSIS")?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        writeln!(
            out,
            ".PP\n\\fBsparewatch\\fR [\\fIOPTIONS\\fR] \\fB{}\\fR{}",
            sub.get_name(),
            if own_options(sub).is_some() {
                " [\\fIOPTIONS\\fR]"
            } else {
                ""
            }
        )?;
    }
    section(
        &mut out,
        "DESCRIPTION",
        &[
            "sparewatch watches hardware redundancy, not just health. It reads power supplies, \
             fans, NIC links and bonds, multipath paths and RAID arrays, groups them into \
             redundancy groups, and says for every group whether the server still has a spare \
             (redundant), has lost some of it (degraded), runs on its last member \
             (no_redundancy), has lost the function (failed), or cannot tell (unknown).",
            "Collectors run in the background, each on its own interval, and are woken at once \
             by kernel events (rtnetlink, uevents). A scrape of /metrics never touches hardware: \
             it serves the last evaluation. A collector that fails or hangs is reported down on \
             its own; the others keep reporting.",
            "Without a subcommand sparewatch runs the agent, like sparewatch run.",
        ],
    )?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string());
        tagged(
            &mut out,
            &[(sub.get_name(), about.as_deref().unwrap_or(""))],
        )?;
    }
    man.render_options_section(&mut out)?;
    for sub in cmd.get_subcommands() {
        if let Some(own) = own_options(sub) {
            let mut buf = Vec::new();
            Man::new(own).render_options_section(&mut buf)?;
            let text = String::from_utf8_lossy(&buf).replacen(
                ".SH OPTIONS",
                &format!(".SS \"Options of sparewatch {}\"", sub.get_name()),
                1,
            );
            out.extend_from_slice(text.as_bytes());
        }
    }
    writeln!(out, ".SH COLLECTORS")?;
    writeln!(
        out,
        ".PP\n{}",
        roff(
            "Each collector is switched with --collector.NAME and --no-collector.NAME \
             and configured under collectors.NAME in the config file (interval, timeout and its \
             own keys)."
        )
    )?;
    for c in COLLECTORS {
        let default = if c.enabled_by_default {
            "enabled by default"
        } else {
            "disabled by default"
        };
        tagged(&mut out, &[(c.name, &format!("{} ({default}).", c.help))])?;
    }
    writeln!(out, ".SH FILES")?;
    tagged(
        &mut out,
        &[
            (
                "/etc/sparewatch/sparewatch.yml",
                "The config file (--config.file): hold_down, collectors.NAME.{interval,timeout,...}, groups.\"NAME\".{required,by_design}.",
            ),
            (
                "/etc/sparewatch/sparewatch.env",
                "Environment of the systemd service (root only): SPAREWATCH_ARGS with extra flags, and secrets.",
            ),
            (
                "/etc/sparewatch/web.yml",
                "Optional --web.config.file: TLS and basic auth in the Prometheus exporter-toolkit format.",
            ),
            (
                "/var/lib/sparewatch/groups.json",
                "Persisted state of every group (--state.dir): when it entered its state survives restarts.",
            ),
            (
                "/usr/lib/udev/rules.d/60-sparewatch-ipmi.rules",
                "Gives /dev/ipmi* to group sparewatch, so the service needs no root for in-band IPMI.",
            ),
        ],
    )?;
    writeln!(out, ".SH ENVIRONMENT")?;
    tagged(
        &mut out,
        &[
            (
                "STATE_DIRECTORY",
                "Default of --state.dir (set by systemd from StateDirectory=).",
            ),
            (
                "RUST_LOG",
                "Overrides --log.level with a tracing filter, e.g. sparewatch=debug.",
            ),
        ],
    )?;
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    writeln!(
        out,
        ".PP\n{}",
        roff("sparewatch check uses Nagios/Icinga plugin codes:")
    )?;
    tagged(
        &mut out,
        &[
            ("0", "OK: every group redundant (or single by design)."),
            (
                "1",
                "WARNING: a group is degraded, without redundancy, or unknown.",
            ),
            ("2", "CRITICAL: a group has failed."),
            (
                "3",
                "UNKNOWN: sparewatch itself could not run (bad flags or config).",
            ),
        ],
    )?;
    section(
        &mut out,
        "SECURITY",
        &[
            "The packaged service runs as user sparewatch under a hardened systemd unit \
             (read-only file system, own state directory, a closed device policy). It keeps only \
             CAP_SYS_RAWIO and CAP_SYS_ADMIN, for smartctl, storcli and device-mapper ioctls; \
             /dev/ipmi0 comes through group membership. Secrets such as the BMC password are read \
             from files or the environment, never from the command line, and never logged. See \
             /usr/share/doc/sparewatch/security.md.",
        ],
    )?;
    section(
        &mut out,
        "EXAMPLES",
        &[
            "sparewatch status -v",
            "sparewatch explain bond:bond0",
            "sparewatch status --format json",
            "sparewatch check; echo $?",
            "sparewatch run --web.listen-address=127.0.0.1:9856 --web.config.file=/etc/sparewatch/web.yml",
        ],
    )?;
    section(
        &mut out,
        "SEE ALSO",
        &["prometheus(1), ipmitool(1), smartctl(8), mdadm(8), multipath(8), systemd.exec(5)"],
    )?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn main() -> std::io::Result<()> {
    let text = page()?;
    match std::env::args_os().nth(1) {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)
        }
        None => std::io::stdout().write_all(&text),
    }
}
