//! The HTTP side: `/metrics` serves the last rendered snapshot (never touches hardware),
//! `/healthz` says whether the engine is alive, `/` is the status page for humans (drawn from
//! `/api/v1/status`, the versioned JSON of the same data).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::watch;

use crate::snapshot::{unix, Snapshot};

#[derive(Clone)]
pub struct AppState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

/// The router, separate from serving so tests call it with `oneshot`.
pub fn app(snapshots: watch::Receiver<Arc<Snapshot>>, telemetry_path: &str) -> Router {
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(index))
        .route("/page.css", get(page_css))
        .route("/page.js", get(page_js))
        .route("/api/v1/status", get(api_status))
        .with_state(AppState { snapshots })
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(s): State<AppState>) -> Response {
    let (text, tail) = {
        let snap = s.snapshots.borrow();
        (snap.metrics_text.clone(), snap.metrics_tail.clone())
    };
    let body = Append::new(http_body_util::Full::new(text), tail);
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        axum::body::Body::new(body),
    )
        .into_response()
}

/// A body followed by more bytes, without copying either: `/metrics` serves the shared
/// rendered text and its tail (and the web server appends its own counters) as they are,
/// so a scrape costs no copy of a text that is megabytes on a large host. The length stays
/// exact (`Content-Length`) when the inner body's is.
pub struct Append<B> {
    inner: B,
    inner_done: bool,
    tail: Option<Bytes>,
}

impl<B> Append<B> {
    pub fn new(inner: B, tail: Bytes) -> Self {
        Append {
            inner,
            inner_done: false,
            tail: Some(tail).filter(|t| !t.is_empty()),
        }
    }
}

impl<B> HttpBody for Append<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if !this.inner_done {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(None) => this.inner_done = true,
                other => return other,
            }
        }
        Poll::Ready(this.tail.take().map(|t| Ok(Frame::data(t))))
    }

    fn is_end_stream(&self) -> bool {
        (self.inner_done || self.inner.is_end_stream()) && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self.tail.as_ref().map_or(0, |t| t.len() as u64);
        let inner = if self.inner_done {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        };
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + extra);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

/// Healthy while the engine keeps evaluating (it does at least once a second).
async fn healthz(State(s): State<AppState>) -> Response {
    let generated = s.snapshots.borrow().generated_at;
    let age = unix(std::time::SystemTime::now()) - generated;
    if generated > 0.0 && age < 30.0 {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("engine has not evaluated for {age:.0}s\n"),
        )
            .into_response()
    }
}

/// The host this agent runs on, detected once.
fn host() -> &'static crate::api::Host {
    static HOST: std::sync::OnceLock<crate::api::Host> = std::sync::OnceLock::new();
    HOST.get_or_init(crate::api::Host::detect)
}

/// `/api/v1/status`: the versioned status JSON (docs/api.md), never cached.
async fn api_status(State(s): State<AppState>) -> Response {
    let snap = s.snapshots.borrow().clone();
    let body = crate::api::to_json(&snap, host(), false);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// One embedded asset of the status page, with a policy that lets it load only our own parts.
fn page_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                crate::page::CONTENT_SECURITY_POLICY,
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    page_asset("text/html; charset=utf-8", crate::page::HTML)
}

async fn page_css() -> Response {
    page_asset("text/css; charset=utf-8", crate::page::CSS)
}

async fn page_js() -> Response {
    page_asset("text/javascript; charset=utf-8", crate::page::JS)
}

/// Turns `--web.listen-address` into socket addresses; `:port` means every address.
pub fn listen_addrs(spec: &str) -> anyhow::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid port in {spec:?}"))?;
        return Ok(vec![
            SocketAddr::from(([0u16; 8], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]);
    }
    Ok(spec
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("invalid --web.listen-address {spec:?}: {e}"))?
        .collect())
}

/// Binds the first address that works (`[::]` covers IPv4 too where IPv6 is on).
pub async fn bind(spec: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in listen_addrs(spec)? {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(anyhow::anyhow!("binding {addr}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to bind for {spec:?}")))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn snapshot() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            generated_at: unix(std::time::SystemTime::now()),
            metrics_text: "sparewatch_x 1\n".into(),
            ..Snapshot::default()
        })
    }

    #[tokio::test]
    async fn serves_the_snapshot() {
        let (_tx, rx) = watch::channel(snapshot());
        let (status, headers, body) = get(rx.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], TEXT_FORMAT);
        assert_eq!(body, "sparewatch_x 1\n");
        assert_eq!(get(rx.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(rx, "/").await.0, StatusCode::OK);
    }

    async fn get(
        rx: watch::Receiver<Arc<Snapshot>>,
        path: &str,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = app(rx, "/metrics")
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn status_api_and_page_assets() {
        let (_tx, rx) = watch::channel(snapshot());
        let (status, headers, body) = get(rx.clone(), "/api/v1/status").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["api_version"], 1);
        assert_eq!(
            v["verdict"]["summary"],
            "no redundancy groups found on this host"
        );
        for (path, ty) in [
            ("/", "text/html; charset=utf-8"),
            ("/page.js", "text/javascript; charset=utf-8"),
            ("/page.css", "text/css; charset=utf-8"),
        ] {
            let (status, headers, body) = get(rx.clone(), path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], ty, "{path}");
            assert!(headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .is_ok_and(|c| c.contains("script-src 'self'")));
            assert!(!body.is_empty());
        }
        // No external assets: nothing the page loads comes from another host.
        for asset in [crate::page::HTML, crate::page::CSS, crate::page::JS] {
            assert!(
                !asset.contains("http://")
                    && !asset.contains("https://")
                    && !asset.contains("//cdn")
            );
        }
        // The script never builds markup from data.
        assert!(
            !crate::page::JS.contains("innerHTML")
                && !crate::page::JS.contains("insertAdjacentHTML")
        );
    }

    /// Body and tail are served as one text with its exact length; a snapshot the engine
    /// has not confirmed for 40 s (no evaluation, no liveness tick) fails `/healthz`.
    #[tokio::test]
    async fn serves_body_then_tail_and_ages_out() {
        let snap = Snapshot {
            generated_at: unix(std::time::SystemTime::now()),
            metrics_text: "a 1\n".into(),
            metrics_tail: "b 2\n".into(),
            ..Default::default()
        };
        let (tx, rx) = watch::channel(Arc::new(snap.clone()));
        let (status, _, body) = get(rx.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "a 1\nb 2\n");
        let hint = Append::new(
            http_body_util::Full::new(snap.metrics_text.clone()),
            snap.metrics_tail.clone(),
        )
        .size_hint();
        assert_eq!(hint.exact(), Some(8));
        assert_eq!(get(rx.clone(), "/healthz").await.0, StatusCode::OK);
        tx.send_replace(Arc::new(Snapshot {
            generated_at: unix(std::time::SystemTime::now()) - 40.0,
            ..snap
        }));
        assert_eq!(get(rx, "/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn unhealthy_before_first_evaluation() {
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        assert_eq!(get(rx, "/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn listen_address_forms() {
        assert_eq!(listen_addrs(":9856").expect("ok").len(), 2);
        assert_eq!(
            listen_addrs("127.0.0.1:1234").expect("ok"),
            vec![SocketAddr::from(([127, 0, 0, 1], 1234))]
        );
        assert!(listen_addrs(":x").is_err());
    }
}
