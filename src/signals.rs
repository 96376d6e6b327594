//! What the running agent does with signals. Every signal that ends the agent logs why, and
//! no signal ends it silently:
//!
//! | signal | what happens |
//! |---|---|
//! | `SIGTERM`, `SIGINT` | logs, stops serving (requests in flight finish), exits 0 |
//! | `SIGHUP` | reloads `--web.config.file` (certificate, users, headers) without dropping connections; re-validates `--config.file` and logs whether it is valid (its changes take effect at the next restart) |
//! | `SIGUSR1` | logs a state dump: every group with its state and spare, every collector up or down |
//! | `SIGQUIT` | logs a state dump, stops, exits 3 (a failure: systemd restarts the agent) |
//! | `SIGUSR2`, `SIGALRM` | logged and ignored |

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::snapshot::Snapshot;
use crate::web_server::Security;

/// Why the agent stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT: an operator stop.
    Requested(&'static str),
    /// SIGQUIT: stop and exit with a failure.
    Quit,
}

/// The installed handlers. Install them as early as possible: from then on no signal in
/// the table above ends the process without a log line.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    quit: Signal,
    alrm: Signal,
    stopped: Arc<OnceLock<Stop>>,
}

impl Signals {
    /// Registers the handlers; needs a Tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            quit: signal(SignalKind::quit())?,
            alrm: signal(SignalKind::alarm())?,
            stopped: Arc::new(OnceLock::new()),
        })
    }

    /// Where the reason to stop is stored once a stop signal came.
    pub fn outcome(&self) -> Arc<OnceLock<Stop>> {
        self.stopped.clone()
    }

    /// Handles signals until one says stop; resolves then (the shutdown future of the
    /// server).
    pub async fn run(
        mut self,
        security: Security,
        config_file: Option<PathBuf>,
        snapshots: watch::Receiver<Arc<Snapshot>>,
    ) {
        let stop = loop {
            tokio::select! {
                _ = self.term.recv() => break Stop::Requested("SIGTERM"),
                _ = self.int.recv() => break Stop::Requested("SIGINT"),
                _ = self.quit.recv() => {
                    dump(&snapshots.borrow(), "SIGQUIT");
                    break Stop::Quit;
                }
                _ = self.hup.recv() => reload(&security, config_file.as_deref()),
                _ = self.usr1.recv() => dump(&snapshots.borrow(), "SIGUSR1"),
                _ = self.usr2.recv() => tracing::info!(signal = "SIGUSR2", "signal has no meaning for sparewatch; ignored"),
                _ = self.alrm.recv() => tracing::info!(signal = "SIGALRM", "signal has no meaning for sparewatch; ignored"),
            }
        };
        match stop {
            Stop::Requested(sig) => {
                tracing::info!(signal = sig, "stopping on request")
            }
            Stop::Quit => tracing::error!(
                signal = "SIGQUIT",
                "stopping; exiting with status 3 so that a supervisor restarts the agent"
            ),
        }
        let _ = self.stopped.set(stop);
    }
}

fn reload(security: &Security, config_file: Option<&std::path::Path>) {
    tracing::info!(signal = "SIGHUP", "reloading");
    if security.limits.config_file.is_some() {
        match security.reload() {
            Ok(()) => tracing::info!(
                tls = security.tls_enabled(),
                basic_auth = security.auth_enabled(),
                "web config reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "web config not reloaded; the old one stays in force")
            }
        }
    }
    if let Some(p) = config_file {
        match crate::config::Config::load(p) {
            Ok(_) => tracing::warn!(
                file = %p.display(),
                "config file is valid; changes to it take effect at the next restart (systemctl restart sparewatch)"
            ),
            Err(e) => {
                tracing::error!(error = %e, "config file is invalid; the running agent keeps the config it started with")
            }
        }
    }
}

/// Logs the state of every group and collector.
fn dump(snap: &Snapshot, signal: &'static str) {
    tracing::info!(
        signal,
        groups = snap.groups.len(),
        collectors = snap.collectors.len(),
        generated_at = snap.generated_at,
        "state dump"
    );
    for g in &snap.groups {
        tracing::info!(
            group = %g.name,
            kind = %g.kind,
            state = %g.state,
            spare = g.spare,
            healthy = g.members_healthy,
            total = g.members_total,
            required = g.members_required,
            since = g.since,
            "state dump: group"
        );
    }
    for c in &snap.collectors {
        tracing::info!(
            collector = %c.name,
            up = c.up,
            present = c.present,
            error = c.last_error.as_deref().unwrap_or(""),
            "state dump: collector"
        );
    }
}
