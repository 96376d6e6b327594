//! Wiring: flags + config → collectors → scheduler → engine → snapshots. Used by `run`,
//! `demo`, `status` and `check` alike, so all of them see the same groups.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sparewatch_collectors::{BuildContext, CollectorMemory, Roots, Wake, COLLECTORS};
use tokio::sync::watch;

use crate::cli::Parsed;
use crate::clock::Stamp;
use crate::config::Config;
use crate::engine::{CollectorInfo, Engine, EngineConfig};
use crate::host::HostInfo;
use crate::render::{render_body, render_tail, RenderInput};
use crate::scheduler::{self, Event, Job};
use crate::snapshot::Snapshot;

/// Everything needed to start collecting.
pub struct Setup {
    pub engine_config: EngineConfig,
    pub jobs: Vec<(Job, CollectorInfo)>,
    pub state_dir: Option<PathBuf>,
    /// The collectors' sections of the store (when there is a state directory).
    pub sections: Option<crate::store::Sections>,
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
    let read_only = !matches!(
        parsed.cli.command,
        None | Some(crate::cli::Command::Run) | Some(crate::cli::Command::Demo { .. })
    );
    // Read without the lock: collectors load their memory now; a one-shot run never writes.
    let sections = common
        .state_dir
        .as_deref()
        .map(|d| crate::store::Sections::new(crate::store::load(d).collectors));
    let mut jobs = Vec::new();
    for spec in COLLECTORS {
        if !parsed.collector_enabled(spec.name, spec.enabled_by_default) {
            continue;
        }
        let ctx = BuildContext {
            roots,
            flags: parsed.collector_flags(),
            config: config.collectors.get(spec.name),
            read_only,
            memory: sections.as_ref().map_or_else(CollectorMemory::none, |s| {
                s.memory_for(spec.name, read_only)
            }),
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
        sections,
        push: push_config(parsed)?,
    })
}

/// The Alertmanager push from the command line (its flags are global: given before or
/// after the subcommand); `None` when it is off. Here, so alertmanager does not depend on cli.
pub fn push_config(
    parsed: &Parsed,
) -> Result<Option<crate::alertmanager::PushConfig>, crate::alertmanager::ConfigError> {
    use crate::alertmanager::PushConfig;
    match PushConfig::from_matches(parsed.collector_matches())? {
        Some(c) => Ok(Some(c)),
        None => PushConfig::from_matches(&parsed.matches),
    }
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

/// With no news and no deadline (hold-down, staleness, a pass's timeout) the engine still
/// ticks this often, so the served snapshot's timestamp and `/healthz` (which wants a
/// snapshot younger than 30 s) tell a live engine from a stuck one. The tick renders only
/// the text's small tail (timestamp, process and push counters) and keeps the body: with no
/// news and no deadline passed, an evaluation now would give the groups of the last one
/// (every time-driven change is a deadline). So an idle host costs no render (issue 14).
const LIVENESS_TICK: Duration = Duration::from_secs(20);

/// Starts the collector threads and the engine thread.
pub fn start(setup: Setup, host: Option<HostInfo>, process_metrics: bool) -> anyhow::Result<Agent> {
    let infos: Vec<CollectorInfo> = setup.jobs.iter().map(|(_, i)| i.clone()).collect();
    let jobs: Vec<Job> = setup.jobs.into_iter().map(|(j, _)| j).collect();
    // The store: locked for this agent's life, loaded once, written by its own thread.
    let store = match setup.state_dir.as_deref() {
        Some(dir) => Some(crate::store::Store::open(dir)?),
        None => None,
    };
    let (store, memory) = match store {
        Some((s, m)) => (Some(s), Some(m)),
        None => (None, None),
    };
    let push = setup.push.map(|p| {
        let hostname = host
            .as_ref()
            .map(|h| h.hostname.clone())
            .unwrap_or_default();
        (p, hostname)
    });
    let mut engine = Engine::new(setup.engine_config, infos, memory);
    let (tx, rx) = mpsc::channel::<Event>();
    let writer = match store {
        Some(s) => {
            let forget_tx = tx.clone();
            Some(
                s.spawn_writer(setup.sections.clone().unwrap_or_default(), move |targets| {
                    forget_tx.send(Event::Forget(targets)).is_ok()
                })
                .context("starting the store writer")?,
            )
        }
        None => None,
    };
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let mut last_publish = std::time::Instant::now();
    let mut last_eval = Stamp::now();
    thread::Builder::new()
        .name("engine".into())
        .spawn(move || loop {
            let deadline = engine.next_deadline(last_eval);
            let liveness = LIVENESS_TICK.saturating_sub(last_publish.elapsed());
            // 1 ms past a deadline: the checks it ends are strict (`age > stale_after`).
            let wait = deadline.map_or(liveness, |d| {
                (d.since(Stamp::now()) + Duration::from_millis(1)).min(liveness)
            });
            // `news`: an evaluation is due. `passes`: a collector finished, so its own
            // figures (duration, last success) moved even when nothing else did.
            let (news, passes) = match rx.recv_timeout(wait) {
                Ok(ev) => {
                    let mut news = false;
                    let mut passes = false;
                    // Take whatever else is queued before rendering once. But a collector's
                    // second result never replaces its first unseen: the first is evaluated
                    // before (a member down in one pass and up in the next is a failure and
                    // a recovery, not nothing: losing evidence must not make a group look
                    // better).
                    let mut unseen: Vec<&'static str> = Vec::new();
                    let mut ev = Some(ev);
                    while let Some(e) = ev.take().or_else(|| rx.try_recv().ok()) {
                        if let Event::Finished(name, ..) = &e {
                            if unseen.contains(name) {
                                let evaluated = std::panic::catch_unwind(
                                    std::panic::AssertUnwindSafe(|| {
                                        engine.evaluate(Stamp::now());
                                    }),
                                );
                                if evaluated.is_err() {
                                    tracing::error!("the engine panicked; exiting so the agent is restarted");
                                    std::process::exit(70);
                                }
                                unseen.clear();
                            }
                            unseen.push(name);
                            passes = true;
                        }
                        news |= apply(&mut engine, e);
                    }
                    (news, passes)
                }
                // Nothing arrived: a deadline passed or the liveness bound did.
                Err(mpsc::RecvTimeoutError::Timeout) => (false, false),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            last_publish = std::time::Instant::now();
            let now = Stamp::now();
            let due = deadline.is_some_and(|d| now.since(d) > Duration::ZERO || d == now);
            let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if news || due {
                    Some(evaluate_split(&mut engine, now, host.as_ref(), process_metrics))
                } else {
                    None
                }
            }));
            match evaluated {
                Ok(Some(snap)) => {
                    last_eval = now;
                    snap_tx.send_replace(Arc::new(snap));
                    if let (Some(w), Some(p)) = (&writer, engine.take_changes()) {
                        w.save(p);
                    }
                }
                Ok(None) => {
                    let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let collectors = passes.then(|| engine.collector_views(now));
                        liveness_tick(&snap_tx.borrow(), now, collectors, process_metrics)
                    }));
                    match ticked {
                        Ok(snap) => {
                            snap_tx.send_replace(Arc::new(snap));
                        }
                        Err(_) => {
                            tracing::error!("the engine's liveness tick panicked; exiting so the agent is restarted");
                            std::process::exit(70);
                        }
                    }
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

/// Hands one event to the engine; whether it calls for an evaluation (a pass starting
/// does not: a hanging one becomes a deadline).
fn apply(engine: &mut Engine, ev: Event) -> bool {
    match ev {
        Event::Started(name, at) => {
            engine.started(name, at);
            false
        }
        Event::Finished(name, result, took, at) => engine.finished(name, result, took, at),
        Event::Forget(targets) => {
            for t in targets {
                match engine.forget(&t) {
                    Ok(what) => tracing::info!(forgotten = %what, "forgotten on request"),
                    Err(why) => tracing::warn!(target = %t, error = %why, "forget request refused"),
                }
            }
            true
        }
    }
}

/// One evaluation plus its rendered text, whole in `metrics_text` (one-shot runs, tests).
pub fn evaluate_and_render(
    engine: &mut Engine,
    now: impl Into<Stamp>,
    host: Option<&HostInfo>,
    process: bool,
) -> Snapshot {
    let mut snap = evaluate_split(engine, now.into(), host, process);
    snap.metrics_text = snap.metrics().into();
    snap.metrics_tail = Default::default();
    snap
}

/// One evaluation plus its rendered text as body and tail (the running agent: its liveness
/// tick replaces the tail only).
fn evaluate_split(
    engine: &mut Engine,
    now: Stamp,
    host: Option<&HostInfo>,
    process: bool,
) -> Snapshot {
    let mut snap = engine.evaluate(now);
    let collections = engine.current_collections(now);
    let body = render_body(
        &snap,
        &RenderInput {
            collections: &collections,
            host,
            process,
        },
    );
    snap.metrics_text = body.into();
    snap.metrics_tail = render_tail(snap.generated_at, &snap.collectors, process).into();
    snap
}

/// The snapshot `previous` moved to `now` without an evaluation: the same groups and body,
/// a new timestamp and tail, and the collectors' figures when a pass brought nothing new.
fn liveness_tick(
    previous: &Snapshot,
    now: Stamp,
    collectors: Option<Vec<crate::snapshot::CollectorView>>,
    process: bool,
) -> Snapshot {
    let mut snap = previous.clone();
    snap.generated_at = crate::snapshot::unix(now.wall);
    if let Some(c) = collectors {
        snap.collectors = c;
    }
    snap.metrics_tail = render_tail(snap.generated_at, &snap.collectors, process).into();
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
    // A one-shot run reads the store (without its lock: strictly read-only) and never
    // writes it; its changes are dropped with the engine.
    let persisted = setup.state_dir.as_deref().map(crate::store::load);
    let mut engine = Engine::new(setup.engine_config, infos, persisted);
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
        // First, so that no signal ends the agent without a log line (src/signals.rs).
        let signals = crate::signals::Signals::install().context("installing signal handlers")?;
        let stopped = signals.outcome();
        let listener = crate::http::bind(&common.listen_address).await?;
        tracing::info!(address = %listener.local_addr()?, tls = security.tls_enabled(),
            basic_auth = security.auth_enabled(), "serving metrics");
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
        let shutdown = signals.run(
            security.clone(),
            common.config_file.clone(),
            agent.snapshots.clone(),
        );
        crate::web_server::serve(listener, app, security, shutdown)
            .await
            .context("HTTP server")?;
        if stopped.get() == Some(&crate::signals::Stop::Quit) {
            anyhow::bail!("stopped by SIGQUIT");
        }
        Ok(())
    });
    // A Redfish session left open holds one of the BMC's few session slots until it times out.
    sparewatch_collectors::redfish::close_sessions();
    served
}
