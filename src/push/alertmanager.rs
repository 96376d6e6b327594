//! Direct push of group alerts to Alertmanager's v2 API (`--alertmanager.url`).
//!
//! The rule path (agent → scrape → rule evaluation → `for:` → Alertmanager) needs Prometheus
//! and costs a scrape and an evaluation interval at least. With `--alertmanager.url` the agent
//! posts the same alerts itself the moment a group's state changes, so a page also arrives
//! when Prometheus is down. The alerts carry exactly the label set of the shipped rules
//! (`alertname`, `severity`, `hostname`, `group`, `kind`): Alertmanager fingerprints alerts by
//! their labels, so an alert arriving on both paths is one alert and one notification.
//!
//! Lifecycle, as Alertmanager expects it from any client (Prometheus does the same):
//! - a new alert is posted once the group has held the state for the page / ticket delay
//!   (the push's `for:`), `startsAt` = when the group entered its state;
//! - every active alert is posted again every `resend_interval` with `endsAt` four resend
//!   intervals ahead, so Alertmanager keeps it active while the agent lives and resolves it
//!   by itself when the agent dies without saying so;
//! - an alert whose condition is gone is posted with `endsAt` = now (resolved), and kept in
//!   the posts for four resend intervals, so a lost post loses nothing;
//! - every post is the whole state, sent by one worker per Alertmanager that always posts
//!   the latest state: a hung Alertmanager delays only itself.
//!
//! The decisions ([`Tracker`]) are pure and tested apart from the HTTP client ([`post`]).
//!
//! Size: about 670 lines of code (plus tests): the config, the alert lifecycle ([`Tracker`]),
//! the wire format and the posting loop with its statistics; lifecycle and wire format are
//! tested together, so they stay together.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clap::{Arg, ArgAction, ArgMatches};
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use serde::Serialize;
use sparewatch_collectors::{GroupState, Role};

use crate::snapshot::Snapshot;

/// Where the runbooks of the shipped rules live; the pushed alerts link the same pages.
pub const RUNBOOK_BASE: &str = "https://example.invalid/sparewatch/blob/main/docs/runbooks/";

/// `--alertmanager.*` flags.
pub fn args() -> Vec<Arg> {
    vec![
        Arg::new("alertmanager.url")
            .long("alertmanager.url")
            .value_name("URL")
            .action(ArgAction::Append)
            .help("Alertmanager to post group alerts to directly (http://host:9093, repeatable for an HA cluster: post to every member); off when not given"),
        Arg::new("alertmanager.resend-interval")
            .long("alertmanager.resend-interval")
            .value_name("DURATION")
            .default_value("1m")
            .help("Re-post active alerts this often (they expire in Alertmanager after 4 intervals without a re-post)"),
        Arg::new("alertmanager.page-delay")
            .long("alertmanager.page-delay")
            .value_name("DURATION")
            .default_value("0s")
            .help("Post a page alert (group failed) only once the group has been in that state this long"),
        Arg::new("alertmanager.ticket-delay")
            .long("alertmanager.ticket-delay")
            .value_name("DURATION")
            .default_value("10m")
            .help("Post a ticket alert (no_redundancy, degraded, unknown) only once the group has been in that state this long, like the rules' for:, so a switch reload does not open tickets fleet-wide"),
        Arg::new("alertmanager.timeout")
            .long("alertmanager.timeout")
            .value_name("DURATION")
            .default_value("10s")
            .help("Timeout of one post to one Alertmanager"),
    ]
}

/// How the pusher is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct PushConfig {
    /// `…/api/v2/alerts` endpoints, one per Alertmanager.
    pub endpoints: Vec<Uri>,
    pub resend_interval: Duration,
    pub timeout: Duration,
    /// How long a group must be in a state before its page / ticket alert is posted.
    pub page_delay: Duration,
    pub ticket_delay: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--alertmanager.url {url:?}: {detail}")]
    Url { url: String, detail: String },
    #[error("--alertmanager.{flag}: {detail}")]
    Duration { flag: &'static str, detail: String },
}

impl PushConfig {
    /// `None` when no `--alertmanager.url` was given (the push is off).
    pub fn from_matches(m: &ArgMatches) -> Result<Option<PushConfig>, ConfigError> {
        let urls: Vec<&String> = match m.try_get_many::<String>("alertmanager.url") {
            Ok(Some(v)) => v.collect(),
            _ => return Ok(None),
        };
        if urls.is_empty() {
            return Ok(None);
        }
        let endpoints = urls
            .into_iter()
            .map(|u| endpoint(u))
            .collect::<Result<Vec<_>, _>>()?;
        let duration = |flag: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match m.try_get_one::<String>(&format!("alertmanager.{flag}")) {
                Ok(Some(s)) => sparewatch_collectors::parse_duration(s)
                    .map_err(|detail| ConfigError::Duration { flag, detail }),
                _ => Ok(default),
            }
        };
        let resend_interval = duration("resend-interval", Duration::from_secs(60))?;
        if resend_interval < Duration::from_secs(1) {
            return Err(ConfigError::Duration {
                flag: "resend-interval",
                detail: "must be at least 1s".into(),
            });
        }
        Ok(Some(PushConfig {
            endpoints,
            resend_interval,
            timeout: duration("timeout", Duration::from_secs(10))?,
            page_delay: duration("page-delay", Duration::ZERO)?,
            ticket_delay: duration("ticket-delay", Duration::from_secs(600))?,
        }))
    }
}

/// The v2 alerts endpoint under an Alertmanager base URL (which may carry a route prefix,
/// `http://am:9093/alertmanager`). Plain HTTP only: put a local TLS proxy in front of a TLS
/// Alertmanager.
pub fn endpoint(url: &str) -> Result<Uri, ConfigError> {
    let err = |detail: &str| ConfigError::Url {
        url: url.to_string(),
        detail: detail.to_string(),
    };
    let uri: Uri = url.parse().map_err(|e| err(&format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(err(
                "https is not supported; use http:// (e.g. through a local TLS proxy)",
            ))
        }
        _ => return Err(err("must start with http://")),
    }
    let authority = uri.authority().ok_or_else(|| err("no host"))?;
    if authority.as_str().contains('@') {
        return Err(err("credentials in the URL are not supported"));
    }
    if uri.query().is_some() {
        return Err(err("must not have a query"));
    }
    let prefix = uri.path().trim_end_matches('/');
    format!("http://{authority}{prefix}/api/v2/alerts")
        .parse()
        .map_err(|e| err(&format!("{e}")))
}

/// What the pusher needs to know about one group, taken from the engine's snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInput {
    pub name: String,
    pub kind: String,
    pub state: GroupState,
    pub by_design: bool,
    pub spare: i64,
    /// Members not counting as healthy, with their role.
    pub failed_members: Vec<(String, Role)>,
    /// Healthy members a predictor says will fail.
    pub at_risk_members: Vec<(String, Role)>,
    /// When the group entered `state`.
    pub since: SystemTime,
}

/// The groups of an engine snapshot as the pusher sees them.
pub fn groups_from_snapshot(s: &Snapshot) -> Vec<GroupInput> {
    s.groups
        .iter()
        .map(|g| GroupInput {
            name: g.name.clone(),
            kind: g.kind.clone(),
            state: g.state,
            by_design: g.by_design,
            spare: g.spare,
            failed_members: g
                .members
                .iter()
                .filter(|m| !m.healthy)
                .map(|m| (m.name.clone(), m.role))
                .collect(),
            at_risk_members: g
                .members
                .iter()
                .filter(|m| m.at_risk)
                .map(|m| (m.name.clone(), m.role))
                .collect(),
            since: unix_time(g.since),
        })
        .collect()
}

/// A since-timestamp; now when the engine has none (0) or it is out of range.
fn unix_time(secs: f64) -> SystemTime {
    crate::snapshot::from_unix(secs)
        .filter(|t| *t > SystemTime::UNIX_EPOCH)
        .unwrap_or_else(SystemTime::now)
}

/// Which alert of the shipped rules a group state raises, with its severity. The same
/// conditions as `dashboards/prometheus/sparewatch-alerts.yml`.
pub fn alert_for(state: GroupState, by_design: bool) -> Option<(&'static str, &'static str)> {
    match state {
        GroupState::Failed => Some(("SparewatchGroupFailed", "page")),
        GroupState::NoRedundancy if !by_design => Some(("SparewatchRedundancyLost", "ticket")),
        GroupState::Degraded => Some(("SparewatchGroupDegraded", "ticket")),
        GroupState::Unknown => Some(("SparewatchGroupUnknown", "ticket")),
        GroupState::NoRedundancy | GroupState::Redundant => None,
    }
}

/// One alert in Alertmanager's v2 `postableAlert` shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
}

#[derive(Clone, Debug, PartialEq)]
struct Active {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: SystemTime,
}

#[derive(Clone, Debug, PartialEq)]
struct Resolving {
    active: Active,
    ended_at: SystemTime,
}

/// Keeps the alerts the agent has raised and decides what to post.
#[derive(Debug)]
pub struct Tracker {
    hostname: String,
    resend_interval: Duration,
    page_delay: Duration,
    ticket_delay: Duration,
    /// By (alertname, group).
    active: BTreeMap<(&'static str, String), Active>,
    /// Resolved alerts whose resolve has not been posted successfully yet.
    resolving: BTreeMap<(&'static str, String), Resolving>,
}

impl Tracker {
    pub fn new(hostname: impl Into<String>, resend_interval: Duration) -> Self {
        Tracker {
            hostname: hostname.into(),
            resend_interval,
            page_delay: Duration::ZERO,
            ticket_delay: Duration::ZERO,
            active: BTreeMap::new(),
            resolving: BTreeMap::new(),
        }
    }

    /// Alerts are posted only once their group has been in the state for this long, by
    /// severity (the push's `for:`).
    pub fn with_delays(mut self, page: Duration, ticket: Duration) -> Self {
        self.page_delay = page;
        self.ticket_delay = ticket;
        self
    }

    /// Alertmanager resolves an alert that was not re-posted within this time.
    fn lifetime(&self) -> Duration {
        self.resend_interval * 4
    }

    /// Takes the groups of a new snapshot; returns what changed: new alerts, alerts whose
    /// text changed, and resolved ones. Nothing when nothing changed (then nothing needs to
    /// be posted before the next resend).
    pub fn update(&mut self, groups: &[GroupInput], now: SystemTime) -> Vec<PostableAlert> {
        let mut wanted: BTreeMap<(&'static str, String), Active> = BTreeMap::new();
        for g in groups {
            if let Some((alertname, severity)) = alert_for(g.state, g.by_design) {
                let delay = if severity == "page" {
                    self.page_delay
                } else {
                    self.ticket_delay
                };
                let held = now.duration_since(g.since).unwrap_or(Duration::ZERO);
                let posted = self.active.contains_key(&(alertname, g.name.clone()));
                if held < delay && !posted {
                    continue; // pending, like a rule inside its for:
                }
                wanted.insert(
                    (alertname, g.name.clone()),
                    Active {
                        labels: self.labels(alertname, severity, g),
                        annotations: annotations(alertname, &self.hostname, g),
                        starts_at: g.since.min(now),
                    },
                );
            }
        }
        let mut out = Vec::new();
        let gone: Vec<_> = self
            .active
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(active) = self.active.remove(&key) {
                out.push(resolved(&active, now));
                self.resolving.insert(
                    key,
                    Resolving {
                        active,
                        ended_at: now,
                    },
                );
            }
        }
        for (key, alert) in wanted {
            self.resolving.remove(&key);
            let changed = match self.active.get(&key) {
                None => true,
                Some(old) => old.annotations != alert.annotations || old.labels != alert.labels,
            };
            if changed {
                let starts_at = self
                    .active
                    .get(&key)
                    .map_or(alert.starts_at, |old| old.starts_at);
                let alert = Active { starts_at, ..alert };
                out.push(firing(&alert, now, self.lifetime()));
                self.active.insert(key, alert);
            }
        }
        out
    }

    /// Everything to post now, a full state rather than a change: every active alert with
    /// `endsAt` pushed ahead, and every alert resolved within the last four resend intervals
    /// with its end time (a resolve that got lost is repeated, as Prometheus repeats its
    /// resolved alerts; after that Alertmanager has expired the alert anyway). Because each
    /// post is the whole state, a post that fails or is skipped loses nothing.
    pub fn state(&mut self, now: SystemTime) -> Vec<PostableAlert> {
        let lifetime = self.lifetime();
        self.resolving.retain(|_, r| {
            now.duration_since(r.ended_at)
                .map_or(true, |age| age <= lifetime)
        });
        let mut out: Vec<PostableAlert> = self
            .resolving
            .values()
            .map(|r| resolved(&r.active, r.ended_at))
            .collect();
        out.extend(self.active.values().map(|a| firing(a, now, lifetime)));
        out
    }

    /// Alerts currently firing (for tests and the status page).
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    fn labels(
        &self,
        alertname: &'static str,
        severity: &'static str,
        g: &GroupInput,
    ) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("alertname".to_string(), alertname.to_string()),
            ("severity".to_string(), severity.to_string()),
            ("hostname".to_string(), self.hostname.clone()),
            ("group".to_string(), g.name.clone()),
            ("kind".to_string(), g.kind.clone()),
        ])
    }
}

fn firing(a: &Active, now: SystemTime, lifetime: Duration) -> PostableAlert {
    PostableAlert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: rfc3339(a.starts_at),
        ends_at: rfc3339(now + lifetime),
    }
}

fn resolved(a: &Active, ended_at: SystemTime) -> PostableAlert {
    PostableAlert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: rfc3339(a.starts_at.min(ended_at)),
        ends_at: rfc3339(ended_at),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn member_list(members: &[(String, Role)], none: &str) -> String {
    if members.is_empty() {
        return none.to_string();
    }
    let mut sorted: Vec<&(String, Role)> = members.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(name, role)| format!("{name} ({})", role.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The same texts as the shipped rules (without the rules' template queries: the agent
/// knows the members itself).
fn annotations(alertname: &str, host: &str, g: &GroupInput) -> BTreeMap<String, String> {
    let (name, kind, spare) = (&g.name, &g.kind, g.spare);
    let failed = member_list(&g.failed_members, "none reported");
    let (summary, description) = match alertname {
        "SparewatchGroupFailed" => (
            format!("{name} ({kind}) on {host} has failed"),
            format!("Redundancy group {name} (kind {kind}) on host {host} has fewer healthy members than it needs: spare {spare}. Failed members: {failed}."),
        ),
        "SparewatchRedundancyLost" => (
            format!("{name} ({kind}) on {host} is running without redundancy"),
            format!("Redundancy group {name} (kind {kind}) on host {host} still works, but the next single failure is an outage: spare {spare}. Failed members: {failed}."),
        ),
        "SparewatchGroupDegraded" => (
            format!("{name} ({kind}) on {host} is degraded"),
            format!(
                "Redundancy group {name} (kind {kind}) on host {host} has lost some redundancy but survives one more failure: spare {spare}. Failed members: {}. At risk: {}.",
                member_list(&g.failed_members, "none"),
                member_list(&g.at_risk_members, "none")
            ),
        ),
        _ => (
            format!("{name} ({kind}) on {host} is in an unknown state"),
            format!("sparewatch on host {host} cannot tell whether redundancy group {name} (kind {kind}) is redundant: its data is missing or stale. Treat it as not redundant until it is known again."),
        ),
    };
    BTreeMap::from([
        ("summary".to_string(), summary),
        ("description".to_string(), description),
        (
            "runbook_url".to_string(),
            format!("{RUNBOOK_BASE}{alertname}.md"),
        ),
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}: {1}")]
    Http(String, hyper::Error),
    #[error("{0}: HTTP {1}: {2}")]
    Status(String, u16, String),
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{0}: {1}")]
    Request(String, String),
}

/// Posts `alerts` to one Alertmanager's v2 endpoint (one HTTP/1.1 connection per post: a
/// post happens on a state change or once a resend interval).
pub async fn post(
    endpoint: &Uri,
    alerts: &[PostableAlert],
    timeout: Duration,
) -> Result<(), PostError> {
    let body = serde_json::to_vec(alerts)
        .map_err(|e| PostError::Request(endpoint.to_string(), e.to_string()))?;
    post_body(endpoint, Bytes::from(body), timeout).await
}

/// Posts an already serialized alert list.
async fn post_body(endpoint: &Uri, body: Bytes, timeout: Duration) -> Result<(), PostError> {
    let target = endpoint.to_string();
    match tokio::time::timeout(timeout, post_inner(endpoint, &target, body)).await {
        Ok(r) => r,
        Err(_) => Err(PostError::Timeout(target)),
    }
}

async fn post_inner(endpoint: &Uri, target: &str, body: Bytes) -> Result<(), PostError> {
    let authority = endpoint
        .authority()
        .ok_or_else(|| PostError::Request(target.to_string(), "no host".into()))?;
    let port = authority.port_u16().unwrap_or(80);
    // `[::1]` in a URL, `::1` for the resolver
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| PostError::Connect(target.to_string(), e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| PostError::Http(target.to_string(), e))?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(endpoint.path())
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("sparewatch/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| PostError::Request(target.to_string(), e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| PostError::Http(target.to_string(), e))?;
    let status = resp.status();
    let text = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    conn.abort();
    if status.is_success() {
        Ok(())
    } else {
        let text: String = text.chars().take(200).collect();
        Err(PostError::Status(
            target.to_string(),
            status.as_u16(),
            text.trim().to_string(),
        ))
    }
}

/// What the push has done, per Alertmanager, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointStats {
    pub success: u64,
    pub error: u64,
    pub last_success: Option<SystemTime>,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Group alerts currently posted as firing.
    pub active: usize,
    pub endpoints: BTreeMap<String, EndpointStats>,
}

/// The push's counters. Process-wide because there is one agent (and one push) per process;
/// `None` while no push runs, so nothing is rendered for agents without `--alertmanager.url`.
static STATS: Mutex<Option<Stats>> = Mutex::new(None);

fn with_stats(f: impl FnOnce(&mut Stats)) {
    if let Ok(mut guard) = STATS.lock() {
        if let Some(stats) = guard.as_mut() {
            f(stats);
        }
    }
}

/// A copy of the push's counters for `/metrics` (`None` when the push is off). The
/// rendering lives in `render.rs`: this module does not depend on it.
pub fn stats() -> Option<Stats> {
    STATS.lock().ok().and_then(|g| g.clone())
}

/// Posts the latest state to one Alertmanager whenever it changes. One worker per
/// Alertmanager: a hung one only delays itself, and since every state is complete, a state
/// it skipped while busy is not missed.
async fn endpoint_worker(
    endpoint: Uri,
    timeout: Duration,
    mut states: tokio::sync::watch::Receiver<Bytes>,
) {
    let key = endpoint.to_string();
    while states.changed().await.is_ok() {
        let body = states.borrow_and_update().clone();
        let result = post_body(&endpoint, body, timeout).await;
        with_stats(|s| {
            let e = s.endpoints.entry(key.clone()).or_default();
            match result {
                Ok(()) => {
                    e.success += 1;
                    e.last_success = Some(SystemTime::now());
                }
                Err(_) => e.error += 1,
            }
        });
        match result {
            Ok(()) => tracing::debug!(endpoint = %endpoint, "alerts posted"),
            Err(e) => tracing::warn!(
                error = %e,
                "posting alerts to Alertmanager failed; retrying with the next change or resend"
            ),
        }
    }
}

/// The pusher task: posts on every new snapshot (when the alerts it implies changed) and
/// re-posts on the resend tick, until `snapshots` closes (the engine stopped). Active alerts are not resolved on exit: the
/// fault is still there; Alertmanager expires them after four resend intervals unless the
/// rule path keeps them.
pub async fn run<S, F>(
    cfg: PushConfig,
    hostname: String,
    mut snapshots: tokio::sync::watch::Receiver<S>,
    to_groups: F,
) where
    F: Fn(&S) -> Vec<GroupInput>,
{
    let mut tracker =
        Tracker::new(hostname, cfg.resend_interval).with_delays(cfg.page_delay, cfg.ticket_delay);
    if let Ok(mut guard) = STATS.lock() {
        *guard = Some(Stats {
            active: 0,
            endpoints: cfg
                .endpoints
                .iter()
                .map(|e| (e.to_string(), EndpointStats::default()))
                .collect(),
        });
    }
    let (states, _) = tokio::sync::watch::channel(Bytes::new());
    for ep in &cfg.endpoints {
        tokio::spawn(endpoint_worker(ep.clone(), cfg.timeout, states.subscribe()));
    }
    let mut tick = tokio::time::interval(cfg.resend_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        let post = tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return; // dropping `states` ends the workers
                }
                let current = to_groups(&snapshots.borrow_and_update());
                !tracker.update(&current, SystemTime::now()).is_empty()
            }
            _ = tick.tick() => true,
        };
        let active = tracker.active_count();
        with_stats(|s| s.active = active);
        if !post {
            continue;
        }
        let state = tracker.state(SystemTime::now());
        if state.is_empty() {
            continue;
        }
        match serde_json::to_vec(&state) {
            Ok(body) => {
                states.send_replace(Bytes::from(body));
            }
            Err(e) => tracing::error!(error = %e, "serializing alerts failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, state: GroupState, by_design: bool) -> GroupInput {
        GroupInput {
            name: name.into(),
            kind: "bond".into(),
            state,
            by_design,
            spare: 0,
            failed_members: vec![("eth0".into(), Role::Active)],
            at_risk_members: vec![],
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        }
    }

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn alert_choice_matches_the_rules() {
        assert_eq!(alert_for(GroupState::Redundant, false), None);
        assert_eq!(alert_for(GroupState::NoRedundancy, true), None);
        assert_eq!(
            alert_for(GroupState::NoRedundancy, false),
            Some(("SparewatchRedundancyLost", "ticket"))
        );
        assert_eq!(
            alert_for(GroupState::Failed, true),
            Some(("SparewatchGroupFailed", "page"))
        );
        assert_eq!(
            alert_for(GroupState::Degraded, false),
            Some(("SparewatchGroupDegraded", "ticket"))
        );
        assert_eq!(
            alert_for(GroupState::Unknown, false),
            Some(("SparewatchGroupUnknown", "ticket"))
        );
    }

    #[test]
    fn fires_once_resends_and_resolves() {
        let mut tr = Tracker::new("web1", Duration::from_secs(60));
        let g = group("bond:bond0", GroupState::NoRedundancy, false);
        let out = tr.update(std::slice::from_ref(&g), t(1010));
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!(a.labels["alertname"], "SparewatchRedundancyLost");
        assert_eq!(a.labels["severity"], "ticket");
        assert_eq!(a.labels["hostname"], "web1");
        assert_eq!(a.labels["group"], "bond:bond0");
        assert_eq!(a.labels["kind"], "bond");
        assert_eq!(a.labels.len(), 5, "same label set as the rules");
        assert_eq!(a.starts_at, "1970-01-01T00:16:40.000Z", "startsAt = since");
        assert_eq!(
            a.ends_at, "1970-01-01T00:20:50.000Z",
            "endsAt = now + 4 resends"
        );
        assert!(a.annotations["description"].contains("Failed members: eth0 (active)"));
        assert!(a.annotations["runbook_url"].ends_with("/SparewatchRedundancyLost.md"));

        // the same snapshot again: nothing new to post
        assert!(tr.update(std::slice::from_ref(&g), t(1011)).is_empty());
        // the resend tick re-posts with endsAt pushed ahead
        let re = tr.state(t(1070));
        assert_eq!(re.len(), 1);
        assert_eq!(re[0].ends_at, "1970-01-01T00:21:50.000Z");
        assert_eq!(re[0].starts_at, a.starts_at);

        // fixed: resolved with endsAt = now
        let out = tr.update(
            &[group("bond:bond0", GroupState::Redundant, false)],
            t(1100),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ends_at, "1970-01-01T00:18:20.000Z");
        assert_eq!(out[0].labels, a.labels);
        assert_eq!(tr.active_count(), 0);
        // the full state carries the resolve until Alertmanager would have expired it
        assert_eq!(tr.state(t(1160)), out);
        assert!(tr.state(t(1100 + 241)).is_empty());
    }

    #[test]
    fn state_is_complete_so_a_lost_post_loses_nothing() {
        let mut tr = Tracker::new("web1", Duration::from_secs(60));
        tr.update(&[group("md:md0", GroupState::Failed, false)], t(1000));
        tr.update(&[group("md:md1", GroupState::Degraded, false)], t(1010));
        // md0 resolved, md1 firing: both in every state posted after, whatever was lost
        let st = tr.state(t(1070));
        assert_eq!(st.len(), 2);
        let md0 = st
            .iter()
            .find(|a| a.labels["group"] == "md:md0")
            .expect("md0");
        assert_eq!(
            md0.ends_at, "1970-01-01T00:16:50.000Z",
            "ended at the resolve"
        );
        let md1 = st
            .iter()
            .find(|a| a.labels["group"] == "md:md1")
            .expect("md1");
        assert_eq!(
            md1.ends_at, "1970-01-01T00:21:50.000Z",
            "firing: 4 resends ahead"
        );
        // after 4 resend intervals Alertmanager has expired md0 on its own: dropped
        let st = tr.state(t(1010 + 241));
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].labels["group"], "md:md1");
    }

    #[test]
    fn state_change_resolves_one_alert_and_fires_the_next() {
        let mut tr = Tracker::new("web1", Duration::from_secs(60));
        tr.update(
            &[group("bond:bond0", GroupState::NoRedundancy, false)],
            t(1000),
        );
        let mut failed = group("bond:bond0", GroupState::Failed, false);
        failed.spare = -1;
        failed.failed_members.push(("eth1".into(), Role::Standby));
        let out = tr.update(&[failed], t(1005));
        assert_eq!(out.len(), 2);
        let lost = out
            .iter()
            .find(|a| a.labels["alertname"] == "SparewatchRedundancyLost");
        let page = out
            .iter()
            .find(|a| a.labels["alertname"] == "SparewatchGroupFailed");
        assert_eq!(
            lost.map(|a| a.ends_at.as_str()),
            Some("1970-01-01T00:16:45.000Z")
        );
        let page = page.expect("failed alert");
        assert_eq!(page.labels["severity"], "page");
        assert!(page.annotations["description"]
            .contains("spare -1. Failed members: eth0 (active), eth1 (standby)."));
    }

    #[test]
    fn changed_text_is_posted_but_keeps_its_start() {
        let mut tr = Tracker::new("web1", Duration::from_secs(60));
        let mut g = group("md:md0", GroupState::Degraded, false);
        g.spare = 1;
        let first = tr.update(&[g.clone()], t(1000));
        g.at_risk_members.push(("sdb1".into(), Role::Active));
        g.since = t(1004);
        let out = tr.update(&[g], t(1005));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].starts_at, first[0].starts_at);
        assert!(out[0].annotations["description"].ends_with("At risk: sdb1 (active)."));
    }

    #[test]
    fn delays_hold_alerts_back_like_for() {
        let mut tr = Tracker::new("web1", Duration::from_secs(60))
            .with_delays(Duration::from_secs(30), Duration::from_secs(600));
        // since = 1000 (group() default)
        let lost = group("bond:bond0", GroupState::NoRedundancy, false);
        assert!(tr.update(std::slice::from_ref(&lost), t(1100)).is_empty());
        assert!(
            tr.state(t(1100)).is_empty(),
            "a pending alert is not resent"
        );
        // back to redundant inside the delay: nothing was posted, nothing to resolve
        let ok = group("bond:bond0", GroupState::Redundant, false);
        assert!(tr.update(std::slice::from_ref(&ok), t(1200)).is_empty());
        // held for the full delay: posted
        let out = tr.update(std::slice::from_ref(&lost), t(1600));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels["alertname"], "SparewatchRedundancyLost");
        // a page has its own, shorter delay
        let mut failed = group("bond:bond1", GroupState::Failed, false);
        failed.since = t(1590);
        let out = tr.update(&[lost.clone(), failed.clone()], t(1610));
        assert!(out.is_empty(), "page pending for 20 of 30 s: {out:?}");
        let out = tr.update(&[lost, failed], t(1620));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels["severity"], "page");
    }

    #[test]
    fn by_design_single_group_is_never_pushed_until_it_fails() {
        let mut tr = Tracker::new("db7", Duration::from_secs(60));
        assert!(tr
            .update(
                &[group("link:uplink", GroupState::NoRedundancy, true)],
                t(1000)
            )
            .is_empty());
        let out = tr.update(&[group("link:uplink", GroupState::Failed, true)], t(1001));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels["alertname"], "SparewatchGroupFailed");
    }

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            endpoint("http://127.0.0.1:9093")
                .map(|u| u.to_string())
                .ok(),
            Some("http://127.0.0.1:9093/api/v2/alerts".to_string())
        );
        assert_eq!(
            endpoint("http://am.example:9093/alertmanager/")
                .map(|u| u.to_string())
                .ok(),
            Some("http://am.example:9093/alertmanager/api/v2/alerts".to_string())
        );
        assert_eq!(
            endpoint("http://[::1]:9093").map(|u| u.to_string()).ok(),
            Some("http://[::1]:9093/api/v2/alerts".to_string())
        );
        for bad in [
            "https://am:9093",
            "am:9093",
            "",
            "http://",
            "http://am:9093/?x=1",
            "http://user:pw@am:9093",
        ] {
            assert!(endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest::proptest! {
        /// `--alertmanager.url` comes from the command line: any string gives Ok or a clear
        /// error, never a panic, and an accepted one always ends in the v2 endpoint.
        #[test]
        fn endpoint_never_panics(s in proptest::prelude::any::<String>()) {
            if let Ok(u) = endpoint(&s) {
                proptest::prop_assert!(u.path().ends_with("/api/v2/alerts"));
            }
        }

        #[test]
        fn endpoint_never_panics_on_url_like_input(s in "http://[ -~]{0,40}") {
            let _ = endpoint(&s);
        }
    }

    #[test]
    fn snapshot_groups_convert_and_odd_since_is_now() {
        use crate::snapshot::{GroupView, MemberView, Snapshot};
        let member = |name: &str, role: Role, healthy: bool, at_risk: bool| MemberView {
            name: name.into(),
            role,
            healthy,
            at_risk,
            unknown: false,
            reason: None,
            transitions: 0,
        };
        let view = |state: GroupState, since: f64| GroupView {
            name: "md:md0".into(),
            kind: "md".into(),
            collector: "md".into(),
            state,
            by_design: false,
            members_total: 3,
            members_healthy: 2,
            members_required: 1,
            spare: 1,
            since,
            transitions: 0,
            stated_state: None,
            evidence_disagreement: false,
            members: vec![
                member("sda1", Role::Active, true, false),
                member("sdb1", Role::Active, true, true),
                member("sdc1", Role::Spare, false, false),
            ],
            domains: None,
        };
        let snap = Snapshot {
            groups: vec![
                view(GroupState::Degraded, 1000.0),
                view(GroupState::Unknown, f64::NAN),
            ],
            ..Snapshot::default()
        };
        let before = SystemTime::now();
        let g = groups_from_snapshot(&snap);
        assert_eq!(g[0].state, GroupState::Degraded);
        assert_eq!(g[0].since, t(1000));
        assert_eq!(g[0].failed_members, vec![("sdc1".to_string(), Role::Spare)]);
        assert_eq!(
            g[0].at_risk_members,
            vec![("sdb1".to_string(), Role::Active)]
        );
        assert_eq!(g[1].state, GroupState::Unknown);
        assert!(g[1].since >= before);
    }

    #[test]
    fn flags_before_or_after_the_subcommand_and_repeated() {
        let parse = |args: &[&str]| {
            let parsed = crate::cli::parse_from(args.iter().copied()).expect("parses");
            crate::app::push_config(&parsed)
        };
        assert_eq!(
            parse(&["sparewatch", "run"]).ok(),
            Some(None),
            "off by default"
        );
        let c = parse(&[
            "sparewatch",
            "run",
            "--alertmanager.url",
            "http://am1:9093",
            "--alertmanager.url=http://am2:9093/am",
            "--alertmanager.resend-interval",
            "30s",
        ])
        .expect("valid")
        .expect("on");
        let eps: Vec<String> = c.endpoints.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            eps,
            [
                "http://am1:9093/api/v2/alerts",
                "http://am2:9093/am/api/v2/alerts"
            ]
        );
        assert_eq!(c.resend_interval, Duration::from_secs(30));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.page_delay, Duration::ZERO);
        assert_eq!(c.ticket_delay, Duration::from_secs(600));
        let c = parse(&[
            "sparewatch",
            "--alertmanager.url",
            "http://am1:9093",
            "demo",
        ])
        .expect("valid")
        .expect("on before the subcommand too");
        assert_eq!(c.endpoints.len(), 1);
        for bad in [
            ["--alertmanager.url", "https://am1:9093", "", ""],
            [
                "--alertmanager.url",
                "http://am1",
                "--alertmanager.resend-interval",
                "0s",
            ],
            [
                "--alertmanager.url",
                "http://am1",
                "--alertmanager.timeout",
                "soon",
            ],
        ] {
            let mut args = vec!["sparewatch", "run"];
            args.extend(bad.iter().filter(|a| !a.is_empty()));
            assert!(parse(&args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn serialized_shape_is_alertmanagers() {
        let mut tr = Tracker::new("web1", Duration::from_secs(60));
        let out = tr.update(&[group("bond:bond0", GroupState::Failed, false)], t(1000));
        let v: serde_json::Value = serde_json::to_value(&out).expect("json");
        let a = &v[0];
        assert!(a["labels"]["alertname"].is_string());
        assert!(a["annotations"]["summary"].is_string());
        assert!(a["startsAt"].is_string());
        assert!(a["endsAt"].is_string());
    }
}
