//! Wiring: flags + config → collectors → scheduler → engine → snapshots. Used by `run`,
//! `demo`, `status` and `check` alike, so all of them see the same groups.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sparewatch_collectors::{BuildContext, Roots, Wake, COLLECTORS};
use tokio::sync::watch;

use crate::cli::Parsed;
use crate::config::Config;
use crate::engine::{CollectorInfo, Engine, EngineConfig};
use crate::host::HostInfo;
use crate::render::{render, RenderInput};
use crate::scheduler::{self, Event, Job};
use crate::snapshot::Snapshot;
use crate::state_file::StateFile;

/// Everything needed to start collecting.
pub struct Setup {
    pub engine_config: EngineConfig,
    pub jobs: Vec<(Job, CollectorInfo)>,
    pub state_dir: Option<PathBuf>,
    /// `--alertmanager.url`: post group alerts to Alertmanager directly (off when `None`).
    pub push: Option<crate::alertmanager::PushConfig>,
}

/// Builds the enabled collectors from flags and the config file.
pub fn setup(parsed: &Parsed, roots: &Roots) -> anyhow::Result<Setup> {
    let common = &parsed.cli.common;
    let config = match &common.config_file {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut jobs = Vec::new();
    for spec in COLLECTORS {
        if !parsed.collector_enabled(spec.name, spec.enabled_by_default) {
            continue;
        }
        let ctx = BuildContext {
            roots,
            matches: parsed.collector_matches(),
            config: config.collectors.get(spec.name),
        };
        // A collector whose own settings are wrong (its config section, its flags) is
        // reported down with the reason; the other collectors run. A broken config file as a
        // whole is an error above, before anything runs.
        let collector = match (spec.build)(&ctx) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(collector = spec.name, error = %e, "collector cannot start; reported down, the others keep running");
                Box::new(Broken(e.to_string())) as Box<dyn sparewatch_collectors::Collector>
            }
        };
        let schedule = config.schedules.get(spec.name).cloned().unwrap_or_default();
        let info = CollectorInfo {
            name: spec.name,
            interval: schedule.interval.unwrap_or(spec.interval),
            timeout: schedule.timeout.unwrap_or(spec.timeout),
        };
        jobs.push((
            Job {
                name: spec.name,
                interval: info.interval,
                collector,
            },
            info,
        ));
    }
    Ok(Setup {
        engine_config: EngineConfig {
            hold_down: common
                .hold_down
                .or(config.hold_down)
                .unwrap_or(EngineConfig::default().hold_down),
            overrides: config.groups,
        },
        jobs,
        state_dir: common.state_dir.clone(),
        push: crate::alertmanager::PushConfig::from_parsed(parsed)?,
    })
}

/// Stands in for a collector that could not be built: every collection fails with why.
struct Broken(String);

impl sparewatch_collectors::Collector for Broken {
    fn collect(
        &mut self,
    ) -> Result<sparewatch_collectors::Collection, sparewatch_collectors::CollectError> {
        Err(sparewatch_collectors::CollectError::Other(self.0.clone()))
    }
}

pub fn roots(parsed: &Parsed) -> Roots {
    let c = &parsed.cli.common;
    Roots {
        sysfs: c.sysfs.clone(),
        procfs: c.procfs.clone(),
        rootfs: c.rootfs.clone(),
    }
}

/// A running agent: snapshots are published here after every evaluation.
pub struct Agent {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Wake handles of the collectors, by name (the demo pokes them after each step).
    pub wakes: Vec<(&'static str, Wake)>,
    /// The Alertmanager push, started by [`serve_agent`] with the hostname it labels with.
    pub push: Option<(crate::alertmanager::PushConfig, String)>,
}

/// How often the engine re-evaluates without new data (hold-down expiry, staleness).
const TICK: Duration = Duration::from_secs(1);

/// Starts the collector threads and the engine thread.
pub fn start(setup: Setup, host: Option<HostInfo>, process_metrics: bool) -> anyhow::Result<Agent> {
    let infos: Vec<CollectorInfo> = setup.jobs.iter().map(|(_, i)| i.clone()).collect();
    let jobs: Vec<Job> = setup.jobs.into_iter().map(|(j, _)| j).collect();
    let state_file = setup.state_dir.as_deref().map(StateFile::new);
    let push = setup.push.map(|p| {
        let hostname = host
            .as_ref()
            .map(|h| h.hostname.clone())
            .unwrap_or_default();
        (p, hostname)
    });
    let mut engine = Engine::new(setup.engine_config, infos, state_file);
    let (tx, rx) = mpsc::channel::<Event>();
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    thread::Builder::new()
        .name("engine".into())
        .spawn(move || loop {
            let wait = engine
                .next_deadline()
                .and_then(|d| d.duration_since(SystemTime::now()).ok())
                .map_or(TICK, |d| d.min(TICK) + Duration::from_millis(1));
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    apply(&mut engine, ev);
                    // Take whatever else is queued before rendering once.
                    while let Ok(ev) = rx.try_recv() {
                        apply(&mut engine, ev);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let now = SystemTime::now();
            let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                evaluate_and_render(&mut engine, now, host.as_ref(), process_metrics)
            }));
            match evaluated {
                Ok(snap) => {
                    snap_tx.send_replace(Arc::new(snap));
                }
                Err(_) => {
                    // An agent that keeps serving without evaluating would hide every
                    // failure; exiting lets systemd (Restart=on-failure) start it afresh.
                    tracing::error!("the engine panicked; exiting so the agent is restarted");
                    std::process::exit(70);
                }
            }
        })
        .context("starting the engine thread")?;
    let wakes = scheduler::spawn(jobs, tx).context("starting collector threads")?;
    Ok(Agent {
        snapshots: snap_rx,
        wakes,
        push,
    })
}

fn apply(engine: &mut Engine, ev: Event) {
    match ev {
        Event::Started(name, at) => engine.started(name, at),
        Event::Finished(name, result, took, at) => engine.finished(name, result, took, at),
    }
}

/// One evaluation plus its rendered text.
pub fn evaluate_and_render(
    engine: &mut Engine,
    now: SystemTime,
    host: Option<&HostInfo>,
    process: bool,
) -> Snapshot {
    let mut snap = engine.evaluate(now);
    let collections = engine.current_collections(now);
    let text = render(
        &snap,
        &RenderInput {
            collections: &collections,
            host,
            process,
        },
    );
    snap.metrics_text = text.into();
    snap
}

/// Collects every enabled collector once (in parallel, each bounded by its timeout) and
/// evaluates at `now`. What `status`, `check` and the golden-file tests use.
pub fn collect_once(setup: Setup, now: SystemTime, host: Option<&HostInfo>) -> Snapshot {
    let infos: Vec<CollectorInfo> = setup.jobs.iter().map(|(_, i)| i.clone()).collect();
    let jobs = setup
        .jobs
        .into_iter()
        .map(|(j, i)| (j, i.timeout))
        .collect();
    // A one-shot run reads persisted since-timestamps but must not move them.
    let state_file = setup.state_dir.as_deref().map(StateFile::new);
    let persisted = state_file.as_ref().map(StateFile::load);
    let mut engine = Engine::new(setup.engine_config, infos, None);
    if let Some(p) = persisted {
        engine.seed(p);
    }
    for (name, result, took) in scheduler::collect_once(jobs) {
        engine.finished(name, result, took, now);
    }
    evaluate_and_render(&mut engine, now, host, false)
}

/// Runs the agent and serves HTTP until SIGTERM/Ctrl-C.
pub fn serve(common: &crate::cli::Common, setup: Setup) -> anyhow::Result<()> {
    let agent = start(setup, Some(HostInfo::detect()), true)?;
    serve_agent(common, &agent)
}

/// Serves an already started agent until SIGTERM/Ctrl-C.
pub fn serve_agent(common: &crate::cli::Common, agent: &Agent) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let security = crate::web_server::Security::from_flags(&common.web)?;
    let served = rt.block_on(async {
        let listener = crate::http::bind(&common.listen_address).await?;
        tracing::info!(address = %listener.local_addr()?, tls = security.tls.is_some(),
            basic_auth = security.auth.is_some(), "serving metrics");
        if let Some((push, hostname)) = agent.push.clone() {
            tracing::info!(
                alertmanagers = push.endpoints.len(),
                "posting group alerts to Alertmanager"
            );
            tokio::spawn(crate::alertmanager::run(
                push,
                hostname,
                agent.snapshots.clone(),
                |s: &Arc<Snapshot>| crate::alertmanager::groups_from_snapshot(s),
            ));
        }
        let app = crate::http::app(agent.snapshots.clone(), &common.telemetry_path);
        crate::web_server::serve(listener, app, security, crate::http::shutdown_signal())
            .await
            .context("HTTP server")
    });
    // A Redfish session left open holds one of the BMC's few session slots until it times out.
    sparewatch_collectors::redfish::close_sessions();
    served
}
