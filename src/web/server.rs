//! The hardened HTTP(S) server around [`crate::http::app`]: optional TLS and basic auth from
//! `--web.config.file`, and limits that keep `/metrics` served under hostile clients:
//!
//! - a cap on concurrent connections (`--web.max-connections`): past it, new connections
//!   wait in the kernel's accept queue instead of costing memory or file descriptors;
//! - a deadline for a client to send its request head, and for the TLS handshake
//!   (`--web.header-timeout`): slow-loris connections are closed, and so are idle
//!   keep-alive connections;
//! - a deadline for each request (`--web.request-timeout`), and for writing the response:
//!   a client that stops reading is dropped;
//! - request heads of at most 64 headers and 16 KiB; no request bodies; only GET and HEAD
//!   (axum answers 405 with `Allow` for anything else).
//!
//! - at most `--web.max-connections-per-client` connections from one client address: a few
//!   bad clients cannot hold every slot.
//!
//! bcrypt is slow on purpose, so verified credentials are cached (SHA-256 of user, password
//! and hash; never the password itself). Verifications run on a small pool of worker threads
//! off the connection path, with a bounded queue: a verification finishes (and its result is
//! cached) even when the client that asked has gone or timed out, so a slow hash works after
//! its first check. One client address has at most one verification under way, and its
//! failures are rate-limited, so a flood of wrong passwords cannot starve a new valid client.
//!
//! The TLS certificate, the users and the headers can be reloaded ([`Security::reload`],
//! on SIGHUP) without dropping connections.
//!
//! Size: about 900 lines of code: the flags and TLS/auth setup (`Security`, ~250), the
//! bcrypt verification pool and cache (~120), the per-client limiter (~60), the middleware
//! and `serve` loop (~200) and the write deadline (~80). Every part is one of the limits
//! listed below and they are tested together against hostile clients (`tests/it/hardening.rs`,
//! `benches/attack.rs`); the auth pool is the next to move to a module of its own.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::web_config::{LoadedTls, WebConfig};

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    sparewatch_collectors::parse_duration(s)
}

/// The web flags that are not about where to listen.
#[derive(Clone, Debug, clap::Args)]
pub struct WebFlags {
    /// TLS and basic auth config in the Prometheus exporter-toolkit format (YAML).
    #[arg(
        id = "web.config.file",
        long = "web.config.file",
        value_name = "FILE",
        global = true
    )]
    pub config_file: Option<PathBuf>,
    /// At most this many client connections at once; more wait in the accept queue.
    #[arg(id = "web.max-connections", long = "web.max-connections", value_name = "N", default_value_t = 256, global = true,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_connections: u32,
    /// A client must send its request head (and finish the TLS handshake) within this time;
    /// idle keep-alive connections are closed after it too.
    #[arg(id = "web.header-timeout", long = "web.header-timeout", value_name = "DURATION", default_value = "5s", global = true,
          value_parser = parse_duration_arg)]
    pub header_timeout: Duration,
    /// Upper bound for answering one request, including writing the response.
    #[arg(id = "web.request-timeout", long = "web.request-timeout", value_name = "DURATION", default_value = "10s", global = true,
          value_parser = parse_duration_arg)]
    pub request_timeout: Duration,
    /// At most this many connections from one client address; more are closed at once.
    #[arg(id = "web.max-connections-per-client", long = "web.max-connections-per-client", value_name = "N", default_value_t = 16, global = true,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_connections_per_client: u32,
    /// Warn (in the log) when the TLS certificate expires within this time, or has expired.
    #[arg(id = "web.tls-expiry-warning", long = "web.tls-expiry-warning", value_name = "DURATION", default_value = "14d", global = true,
          value_parser = parse_duration_arg)]
    pub tls_expiry_warning: Duration,
}

impl Default for WebFlags {
    fn default() -> Self {
        WebFlags {
            config_file: None,
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections_per_client: 16,
            tls_expiry_warning: Duration::from_secs(14 * 86400),
        }
    }
}

/// Largest request head accepted (request line plus headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bounded cache of verified credentials.
const AUTH_CACHE_MAX: usize = 64;
/// bcrypt worker threads (verifications running at once).
const AUTH_PARALLEL: usize = 2;
/// Verifications waiting for a worker; past it, requests get 503 at once.
const AUTH_QUEUE: usize = 32;
/// Failed logins one client address may make in a burst, and refills per second.
const AUTH_FAIL_BURST: f64 = 5.0;
const AUTH_FAIL_PER_SEC: f64 = 1.0;
/// Client addresses whose failures are remembered.
const AUTH_CLIENTS_MAX: usize = 4096;

/// Counters of the web server, appended to `/metrics` after the agent's own metrics.
#[derive(Default)]
pub struct WebStats {
    auth_failures: AtomicU64,
    throttled_rate: AtomicU64,
    throttled_busy: AtomicU64,
    throttled_queue: AtomicU64,
    refused_per_client: AtomicU64,
    /// notAfter of the served certificate (Unix seconds); `i64::MIN` without TLS.
    cert_not_after: AtomicI64,
}

impl WebStats {
    fn new() -> WebStats {
        WebStats {
            cert_not_after: AtomicI64::new(i64::MIN),
            ..WebStats::default()
        }
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(&format!(
            "# HELP sparewatch_web_auth_failures_total Requests refused with 401: missing or wrong credentials.\n\
             # TYPE sparewatch_web_auth_failures_total counter\n\
             sparewatch_web_auth_failures_total {}\n",
            get(&self.auth_failures)
        ));
        out.push_str(
            "# HELP sparewatch_web_requests_throttled_total Requests refused before any password check: auth_rate (429, the client's failed logins are rate-limited), auth_busy (429, a check for this client is under way), auth_queue (503, the verification queue is full).\n\
             # TYPE sparewatch_web_requests_throttled_total counter\n",
        );
        for (reason, c) in [
            ("auth_busy", &self.throttled_busy),
            ("auth_queue", &self.throttled_queue),
            ("auth_rate", &self.throttled_rate),
        ] {
            out.push_str(&format!(
                "sparewatch_web_requests_throttled_total{{reason=\"{reason}\"}} {}\n",
                get(c)
            ));
        }
        out.push_str(&format!(
            "# HELP sparewatch_web_connections_refused_total Connections closed at once because their client address already had --web.max-connections-per-client open.\n\
             # TYPE sparewatch_web_connections_refused_total counter\n\
             sparewatch_web_connections_refused_total{{reason=\"per_client_limit\"}} {}\n",
            get(&self.refused_per_client)
        ));
        let na = self.cert_not_after.load(Ordering::Relaxed);
        if na != i64::MIN {
            out.push_str(&format!(
                "# HELP sparewatch_web_tls_cert_not_after_timestamp_seconds When the served TLS certificate expires (notAfter).\n\
                 # TYPE sparewatch_web_tls_cert_not_after_timestamp_seconds gauge\n\
                 sparewatch_web_tls_cert_not_after_timestamp_seconds {na}\n"
            ));
        }
        out
    }
}

/// What can change on reload: the TLS certificate, the users, the headers.
struct Live {
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    headers: Arc<Vec<(header::HeaderName, HeaderValue)>>,
}

/// Everything the server needs, validated: what `--web.config.file` said plus the limits.
/// Clones share the same live settings, so a [`Security::reload`] reaches the server.
#[derive(Clone)]
pub struct Security {
    live: Arc<RwLock<Arc<Live>>>,
    pool: Arc<VerifyPool>,
    pub stats: Arc<WebStats>,
    pub limits: WebFlags,
}

impl Security {
    /// Loads `--web.config.file` (if any): every problem is an error here, at startup.
    pub fn from_flags(flags: &WebFlags) -> anyhow::Result<Security> {
        let (cfg, tls) = match &flags.config_file {
            Some(p) => crate::web_config::load(p)?,
            None => (WebConfig::default(), None),
        };
        Ok(Security::with_tls(cfg, tls, flags.clone()))
    }

    pub fn new(
        cfg: WebConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: WebFlags,
    ) -> Security {
        let tls = tls.map(|config| LoadedTls {
            config,
            not_after: None,
        });
        Security::with_tls(cfg, tls, limits)
    }

    fn with_tls(cfg: WebConfig, tls: Option<LoadedTls>, limits: WebFlags) -> Security {
        let pool = Arc::new(VerifyPool::new(AUTH_PARALLEL, AUTH_QUEUE));
        let stats = Arc::new(WebStats::new());
        let sec = Security {
            live: Arc::new(RwLock::new(Arc::new(Live {
                tls: None,
                auth: None,
                headers: Arc::new(Vec::new()),
            }))),
            pool,
            stats,
            limits,
        };
        sec.install(cfg, tls);
        sec
    }

    fn install(&self, cfg: WebConfig, tls: Option<LoadedTls>) {
        let not_after = tls.as_ref().and_then(|t| t.not_after);
        let auth = (!cfg.basic_auth_users.is_empty()).then(|| {
            Arc::new(BasicAuth::with_pool(
                cfg.basic_auth_users.into_iter().collect(),
                self.pool.clone(),
            ))
        });
        let live = Live {
            tls: tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config)),
            auth,
            headers: Arc::new(cfg.headers),
        };
        if let Ok(mut l) = self.live.write() {
            *l = Arc::new(live);
        }
        self.stats
            .cert_not_after
            .store(not_after.unwrap_or(i64::MIN), Ordering::Relaxed);
        if let Some(na) = not_after {
            warn_if_expiring(na, self.limits.tls_expiry_warning);
        }
    }

    fn live(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn tls_enabled(&self) -> bool {
        self.live().tls.is_some()
    }

    pub fn auth_enabled(&self) -> bool {
        self.live().auth.is_some()
    }

    /// Re-reads `--web.config.file`: new TLS handshakes use the new certificate, new requests
    /// the new users and headers; open connections are kept. On any error the old settings
    /// stay. Turning TLS on or off needs a restart (clients would see a different scheme).
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some(path) = &self.limits.config_file else {
            return Ok(());
        };
        let (cfg, tls) = crate::web_config::load(path)?;
        if tls.is_some() != self.tls_enabled() {
            anyhow::bail!(
                "{}: turning TLS on or off takes effect only at a restart; kept the old settings",
                path.display()
            );
        }
        self.install(cfg, tls);
        Ok(())
    }
}

/// Logs a warning when the certificate has expired or expires within `window`.
fn warn_if_expiring(not_after: i64, window: Duration) {
    let now = crate::snapshot::unix(std::time::SystemTime::now()) as i64;
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64),
    );
    if not_after <= now {
        tracing::warn!(not_after = %at, "the TLS certificate has expired; clients that verify it refuse to connect");
    } else if ((not_after - now) as u64) < window.as_secs() {
        tracing::warn!(not_after = %at, days_left = (not_after - now) / 86400, "the TLS certificate expires soon");
    }
}

/// Says when a repeating failure is worth a log line: the first one, then at most one per
/// `every`, each with the number of failures since the last line.
struct LogEvery {
    every: Duration,
    last: Option<std::time::Instant>,
    count: u64,
}

impl LogEvery {
    fn new(every: Duration) -> Self {
        LogEvery {
            every,
            last: None,
            count: 0,
        }
    }

    /// Counts one failure at `now`; `Some(failures since the last line)` when it is to be
    /// logged.
    fn record(&mut self, now: std::time::Instant) -> Option<u64> {
        self.count += 1;
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// A job for the bcrypt workers.
struct VerifyJob {
    password: Vec<u8>,
    hash: String,
    done: Box<dyn FnOnce(bool) + Send>,
}

/// A few threads that run bcrypt, fed by a bounded queue. Workers end when the pool is
/// dropped.
struct VerifyPool {
    tx: std::sync::mpsc::SyncSender<VerifyJob>,
}

impl VerifyPool {
    fn new(workers: usize, queue: usize) -> VerifyPool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<VerifyJob>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let VerifyJob {
                        password,
                        hash,
                        done,
                    } = job;
                    let ok = std::panic::catch_unwind(move || {
                        bcrypt::verify(&password, &hash).unwrap_or(false)
                    })
                    .unwrap_or(false);
                    done(ok);
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a bcrypt worker thread");
            }
        }
        VerifyPool { tx }
    }

    fn submit(&self, job: VerifyJob) -> Result<(), VerifyJob> {
        self.tx.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(j)
            | std::sync::mpsc::TrySendError::Disconnected(j) => j,
        })
    }
}

/// Per client address: whether a verification is under way, and a token bucket of failures.
struct ClientState {
    verifying: bool,
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Limiter {
    clients: Mutex<HashMap<IpAddr, ClientState>>,
}

impl Limiter {
    fn refill(c: &mut ClientState, now: Instant) {
        let dt = now.saturating_duration_since(c.at).as_secs_f64();
        c.tokens = (c.tokens + dt * AUTH_FAIL_PER_SEC).min(AUTH_FAIL_BURST);
        c.at = now;
    }

    /// Marks a verification for `ip` as started, or says why not.
    fn begin(&self, ip: IpAddr) -> Result<(), &'static str> {
        let Ok(mut map) = self.clients.lock() else {
            return Err("auth_rate");
        };
        let now = Instant::now();
        if !map.contains_key(&ip) && map.len() >= AUTH_CLIENTS_MAX {
            map.retain(|_, c| {
                Self::refill(c, now);
                c.verifying || c.tokens < AUTH_FAIL_BURST
            });
            if map.len() >= AUTH_CLIENTS_MAX {
                return Err("auth_rate");
            }
        }
        let c = map.entry(ip).or_insert(ClientState {
            verifying: false,
            tokens: AUTH_FAIL_BURST,
            at: now,
        });
        Self::refill(c, now);
        if c.verifying {
            return Err("auth_busy");
        }
        if c.tokens < 1.0 {
            return Err("auth_rate");
        }
        c.verifying = true;
        Ok(())
    }

    fn finish(&self, ip: IpAddr, failed: bool) {
        if let Ok(mut map) = self.clients.lock() {
            if let Some(c) = map.get_mut(&ip) {
                c.verifying = false;
                if failed {
                    Self::refill(c, Instant::now());
                    c.tokens -= 1.0;
                }
            }
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 401.
    Denied,
    /// 429 (`auth_rate`, `auth_busy`) or 503 (`auth_queue`): refused before any check.
    Throttled(&'static str),
}

/// HTTP basic auth against bcrypt hashes.
pub struct BasicAuth {
    users: HashMap<String, String>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
    pool: Arc<VerifyPool>,
    limiter: Arc<Limiter>,
    /// Hash checked (and its result ignored) for unknown users, so a wrong user name costs
    /// as much as a wrong password and names cannot be probed by timing.
    decoy: String,
}

impl BasicAuth {
    pub fn new(users: HashMap<String, String>) -> Self {
        BasicAuth::with_pool(users, Arc::new(VerifyPool::new(AUTH_PARALLEL, AUTH_QUEUE)))
    }

    fn with_pool(users: HashMap<String, String>, pool: Arc<VerifyPool>) -> Self {
        // A configured hash: same cost as the real ones, and nothing to compute at startup.
        let decoy = users.values().min().cloned().unwrap_or_default();
        BasicAuth {
            users,
            verified: Arc::new(Mutex::new(HashSet::new())),
            pool,
            limiter: Arc::new(Limiter::default()),
            decoy,
        }
    }

    fn cache_key(user: &str, password: &[u8], hash: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [user.as_bytes(), password, hash.as_bytes()] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Whether an `Authorization` header carries valid credentials (any client address).
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        self.verdict(authorization, IpAddr::from([0u8; 4])).await == Verdict::Allowed
    }

    /// Checks the credentials of a request from `client`.
    pub async fn verdict(&self, authorization: Option<&HeaderValue>, client: IpAddr) -> Verdict {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let key = Self::cache_key(&user, &password, &hash);
        if known
            && self
                .verified
                .lock()
                .map(|c| c.contains(&key))
                .unwrap_or(false)
        {
            return Verdict::Allowed;
        }
        if let Err(reason) = self.limiter.begin(client) {
            return Verdict::Throttled(reason);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let verified = self.verified.clone();
        let limiter = self.limiter.clone();
        // Runs on the worker even when this request is gone: the result is cached.
        let done = Box::new(move |ok: bool| {
            let ok = ok && known;
            if ok {
                if let Ok(mut c) = verified.lock() {
                    if c.len() >= AUTH_CACHE_MAX {
                        c.clear();
                    }
                    c.insert(key);
                }
            }
            limiter.finish(client, !ok);
            let _ = tx.send(ok);
        });
        if let Err(job) = self.pool.submit(VerifyJob {
            password,
            hash,
            done,
        }) {
            drop(job);
            self.limiter.finish(client, false);
            return Verdict::Throttled("auth_queue");
        }
        match rx.await {
            Ok(true) => Verdict::Allowed,
            _ => Verdict::Denied,
        }
    }
}

/// The client address of a connection, put into each request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// Splits `Basic base64(user:password)`.
pub fn parse_basic(v: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let s = v.to_str().ok()?;
    let (scheme, rest) = s.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

async fn require_auth(State(sec): State<Security>, req: Request, next: Next) -> Response {
    let Some(auth) = sec.live().auth.clone() else {
        return next.run(req).await;
    };
    let client = req
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([0u8; 4]), |p| p.0);
    let stats = &sec.stats;
    match auth
        .verdict(req.headers().get(header::AUTHORIZATION), client)
        .await
    {
        Verdict::Allowed => next.run(req).await,
        Verdict::Denied => {
            stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"sparewatch\"")],
                "Unauthorized\n",
            )
                .into_response()
        }
        Verdict::Throttled(reason) => {
            let (status, counter) = match reason {
                "auth_queue" => (StatusCode::SERVICE_UNAVAILABLE, &stats.throttled_queue),
                "auth_busy" => (StatusCode::TOO_MANY_REQUESTS, &stats.throttled_busy),
                _ => (StatusCode::TOO_MANY_REQUESTS, &stats.throttled_rate),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            (
                status,
                [(header::RETRY_AFTER, "1")],
                "too many login attempts; retry later\n",
            )
                .into_response()
        }
    }
}

/// Appends the web server's own metrics to a `/metrics` answer.
async fn web_metrics(State(stats): State<Arc<WebStats>>, req: Request, next: Next) -> Response {
    let get = req.method() == axum::http::Method::GET;
    let resp = next.run(req).await;
    let is_metrics = get
        && resp.status() == StatusCode::OK
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4"));
    if !is_metrics {
        return resp;
    }
    // Appended as one more chunk: the (possibly megabytes of) text is not copied per scrape.
    let (mut parts, body) = resp.into_parts();
    let body = crate::http::Append::new(body, stats.render().into());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// No request bodies (every path is GET/HEAD), and a deadline for the handler.
async fn limits(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "request bodies are not accepted\n",
        )
            .into_response();
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    }
}

async fn add_headers(State(sec): State<Security>, req: Request, next: Next) -> Response {
    let headers = sec.live().headers.clone();
    let mut resp = next.run(req).await;
    for (n, v) in headers.iter() {
        resp.headers_mut().insert(n.clone(), v.clone());
    }
    resp
}

/// The router with auth, limits and configured headers applied.
pub fn harden(router: Router, sec: &Security) -> Router {
    router
        .layer(middleware::from_fn_with_state(
            sec.stats.clone(),
            web_metrics,
        ))
        .layer(middleware::from_fn_with_state(sec.clone(), require_auth))
        .layer(middleware::from_fn_with_state(
            sec.limits.request_timeout,
            limits,
        ))
        .layer(middleware::from_fn_with_state(sec.clone(), add_headers))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    sec: Security,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let router = harden(router, &sec);
    let slots = Arc::new(Semaphore::new(sec.limits.max_connections as usize));
    let per_client = Arc::new(Mutex::new(HashMap::<IpAddr, u32>::new()));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(sec.limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let http = Arc::new(http);
    let mut accept_failures = LogEvery::new(Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p?,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, and say so once a
                    // minute (with how many failed since), not ten times a second.
                    if let Some(failed) = accept_failures.record(std::time::Instant::now()) {
                        tracing::warn!(error = %e, failed, "accepting connections fails");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(client_slot) = ClientSlot::take(
            &per_client,
            peer.ip(),
            sec.limits.max_connections_per_client,
        ) else {
            sec.stats.refused_per_client.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "too many connections from this client; closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(Peer(peer.ip()))));
        let http = http.clone();
        let tls = sec.live().tls.clone();
        let watcher = graceful.watcher();
        let limits = sec.limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _client_slot = client_slot;
            let io = WriteDeadline::new(stream, limits.request_timeout);
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(io), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                Some(acceptor) => {
                    let Some(io) = plain_http_to_tls_port(io, limits.header_timeout).await else {
                        return;
                    };
                    let tls = match tokio::time::timeout(limits.header_timeout, acceptor.accept(io))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
    }
    Ok(())
}

/// One connection of a client address; counted until dropped.
struct ClientSlot {
    map: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(map: &Arc<Mutex<HashMap<IpAddr, u32>>>, ip: IpAddr, max: u32) -> Option<ClientSlot> {
        let mut m = map.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// On a TLS port, a client that speaks plain HTTP gets a readable 400 instead of a TLS
/// alert it cannot show (what Go's servers, and so the exporter-toolkit, do). `None` when
/// the connection was answered or is gone.
async fn plain_http_to_tls_port(
    mut io: WriteDeadline<tokio::net::TcpStream>,
    deadline: Duration,
) -> Option<WriteDeadline<tokio::net::TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, io.inner.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    // A TLS record starts with content type 22 (handshake); HTTP starts with a method.
    if first[0] == 0x16 {
        return Some(io);
    }
    if first[0].is_ascii_uppercase() {
        let _ = tokio::time::timeout(
            deadline,
            io.write_all(
                b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
                  Client sent an HTTP request to an HTTPS server.\n",
            ),
        )
        .await;
        let _ = io.shutdown().await;
    }
    None
}

/// A stream whose writes fail once one has been blocked (the peer not reading) for longer
/// than the deadline: a client that stops reading its response cannot hold a connection
/// slot forever.
pub struct WriteDeadline<S> {
    inner: S,
    deadline: Duration,
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, deadline: Duration) -> Self {
        WriteDeadline {
            inner,
            deadline,
            blocked: None,
        }
    }

    /// Passes a ready write through (and forgets the blocked time); a pending one fails once
    /// it has been pending for longer than the deadline.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Pending => match self.poll_blocked(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                self.blocked = None;
                ready
            }
        }
    }

    fn poll_blocked(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let deadline = self.deadline;
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, r)
    }

    /// Forwarded, with `is_write_vectored`: hyper copies ("flattens") every body chunk into
    /// its own buffer when the stream says it cannot write vectored, which made each scrape
    /// allocate and copy the whole `/metrics` text (600 KiB at 500 NICs, megabytes on large
    /// hosts).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let v = HeaderValue::from_static("Basic cHJvbWV0aGV1czpzM2NyM3Q6eA==");
        let (u, p) = parse_basic(&v).expect("parses");
        assert_eq!(u, "prometheus");
        assert_eq!(p, b"s3cr3t:x");
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic bm9jb2xvbg=="] {
            assert!(
                parse_basic(&HeaderValue::from_static(bad)).is_none(),
                "{bad}"
            );
        }
    }

    /// The first failure is logged, then one line a minute with the count in between.
    #[test]
    fn log_every_logs_the_first_then_once_per_period_with_the_count() {
        let t0 = std::time::Instant::now();
        let mut l = LogEvery::new(Duration::from_secs(60));
        assert_eq!(l.record(t0), Some(1));
        for i in 1..600 {
            assert_eq!(l.record(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(l.record(t0 + Duration::from_secs(60)), Some(600));
        assert_eq!(l.record(t0 + Duration::from_secs(61)), None);
    }

    /// Without this hyper flattens every body chunk into its write buffer: one copy of the
    /// whole `/metrics` text per scrape.
    #[tokio::test]
    async fn write_deadline_keeps_vectored_writes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        assert!(
            server.is_write_vectored(),
            "tokio's TcpStream writes vectored"
        );
        let mut io = WriteDeadline::new(server, Duration::from_secs(5));
        assert!(io.is_write_vectored());
        let bufs = [std::io::IoSlice::new(b"ab"), std::io::IoSlice::new(b"cd")];
        let n = tokio::io::AsyncWriteExt::write_vectored(&mut io, &bufs)
            .await
            .expect("write");
        assert_eq!(n, 4, "both slices in one write");
        drop(client);
    }

    #[tokio::test]
    async fn bcrypt_check_and_cache() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = BasicAuth::new([("prometheus".to_string(), hash)].into_iter().collect());
        let good = HeaderValue::from_static("Basic cHJvbWV0aGV1czpzM2NyZXQ=");
        let wrong = HeaderValue::from_static("Basic cHJvbWV0aGV1czp3cm9uZw==");
        let nouser = HeaderValue::from_static("Basic bWFsbG9yeTpzM2NyZXQ=");
        assert!(auth.check(Some(&good)).await);
        assert!(auth.check(Some(&good)).await, "cached");
        assert!(!auth.check(Some(&wrong)).await);
        assert!(!auth.check(Some(&nouser)).await);
        assert!(!auth.check(None).await);
    }

    proptest::proptest! {
        #[test]
        fn basic_parsing_never_panics(b in proptest::collection::vec(32u8..127, 0..200)) {
            if let Ok(v) = HeaderValue::from_bytes(&b) {
                let _ = parse_basic(&v);
            }
        }
    }
}
