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
//! bcrypt is slow on purpose, so verified credentials are cached (SHA-256 of user, password
//! and hash; never the password itself) and at most two verifications run at a time: a
//! flood of wrong passwords queues behind them and cannot take the CPU from the collectors.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

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

use crate::web_config::WebConfig;

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
}

impl Default for WebFlags {
    fn default() -> Self {
        WebFlags {
            config_file: None,
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
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
/// bcrypt verifications allowed at once.
const AUTH_PARALLEL: usize = 2;

/// Everything the server needs, validated: what `--web.config.file` said plus the limits.
#[derive(Clone)]
pub struct Security {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    pub limits: WebFlags,
}

impl Security {
    /// Loads `--web.config.file` (if any): every problem is an error here, at startup.
    pub fn from_flags(flags: &WebFlags) -> anyhow::Result<Security> {
        let (cfg, tls) = match &flags.config_file {
            Some(p) => crate::web_config::load(p)?,
            None => (WebConfig::default(), None),
        };
        Ok(Security::new(cfg, tls, flags.clone()))
    }

    pub fn new(
        cfg: WebConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: WebFlags,
    ) -> Security {
        let auth = (!cfg.basic_auth_users.is_empty())
            .then(|| Arc::new(BasicAuth::new(cfg.basic_auth_users.into_iter().collect())));
        Security {
            tls,
            auth,
            headers: cfg.headers,
            limits,
        }
    }
}

/// HTTP basic auth against bcrypt hashes.
pub struct BasicAuth {
    users: std::collections::HashMap<String, String>,
    verified: Mutex<std::collections::HashSet<[u8; 32]>>,
    slots: Semaphore,
    /// Hash checked for unknown users, so a wrong user name costs as much as a wrong
    /// password and names cannot be probed by timing.
    dummy: String,
}

impl BasicAuth {
    pub fn new(users: std::collections::HashMap<String, String>) -> Self {
        // Same cost as the first configured hash.
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .next()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = bcrypt::hash("sparewatch-no-such-user", cost).unwrap_or_else(|_| {
            String::from("$2b$04$invalidinvalidinvalidinvalidinvalidinvalidinvalidinva")
        });
        BasicAuth {
            users,
            verified: Mutex::new(Default::default()),
            slots: Semaphore::new(AUTH_PARALLEL),
            dummy,
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

    /// Whether an `Authorization` header carries valid credentials.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let key = Self::cache_key(&user, &password, &hash);
        if known
            && self
                .verified
                .lock()
                .map(|c| c.contains(&key))
                .unwrap_or(false)
        {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known;
        if ok {
            if let Ok(mut c) = self.verified.lock() {
                if c.len() >= AUTH_CACHE_MAX {
                    c.clear();
                }
                c.insert(key);
            }
        }
        ok
    }
}

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

async fn require_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if auth.check(req.headers().get(header::AUTHORIZATION)).await {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"sparewatch\"")],
            "Unauthorized\n",
        )
            .into_response()
    }
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

async fn add_headers(
    State(headers): State<Arc<Vec<(header::HeaderName, HeaderValue)>>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    for (n, v) in headers.iter() {
        resp.headers_mut().insert(n.clone(), v.clone());
    }
    resp
}

/// The router with auth, limits and configured headers applied.
pub fn harden(router: Router, sec: &Security) -> Router {
    let mut r = router;
    if let Some(auth) = &sec.auth {
        r = r.layer(middleware::from_fn_with_state(auth.clone(), require_auth));
    }
    r = r.layer(middleware::from_fn_with_state(
        sec.limits.request_timeout,
        limits,
    ));
    if !sec.headers.is_empty() {
        r = r.layer(middleware::from_fn_with_state(
            Arc::new(sec.headers.clone()),
            add_headers,
        ));
    }
    r
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
    let tls = sec.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(sec.limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let http = Arc::new(http);
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
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let http = http.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let limits = sec.limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
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
