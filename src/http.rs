//! The HTTP side: `/metrics` serves the last rendered snapshot (never touches hardware),
//! `/healthz` says whether the engine is alive, `/` is a small status page for humans.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
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
        .with_state(AppState { snapshots })
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(s): State<AppState>) -> Response {
    let body = s.snapshots.borrow().metrics_text.clone();
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response()
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn index(State(s): State<AppState>) -> Html<String> {
    let snap = s.snapshots.borrow().clone();
    let mut rows = String::new();
    for g in &snap.groups {
        let detail = g.reasons();
        rows.push_str(&format!(
            "<tr class=\"{st}\"><td>{name}</td><td>{kind}</td><td>{st}{bd}</td><td>{spare}</td><td>{h}/{t} (need {r})</td><td>{since}</td><td>{detail}</td></tr>\n",
            st = esc(g.state.as_str()),
            bd = if g.by_design { " (by design)" } else { "" },
            name = esc(&g.name),
            kind = esc(&g.kind),
            spare = g.spare,
            h = g.members_healthy,
            t = g.members_total,
            r = g.members_required,
            since = crate::status::format_since(g.since, snap.generated_at),
            detail = esc(&detail.join("; ")),
        ));
    }
    let mut collectors = String::new();
    for c in &snap.collectors {
        collectors.push_str(&format!(
            "<li>{} — {}{}</li>",
            esc(&c.name),
            if !c.up {
                "down"
            } else if c.present {
                "up"
            } else {
                "not present"
            },
            c.last_error
                .as_deref()
                .map(|e| format!(": {}", esc(e)))
                .unwrap_or_default()
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sparewatch</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}\
.redundant{{background:#e6f4ea}}.degraded{{background:#fff4cc}}.no_redundancy{{background:#ffe0b2}}\
.failed{{background:#f8d7da}}.unknown{{background:#e2e3e5}}</style></head><body>\
<h1>sparewatch</h1><p>Redundancy of this server. <a href=\"/metrics\">metrics</a></p>\
<table><tr><th>group</th><th>kind</th><th>state</th><th>spare</th><th>healthy</th><th>since</th><th>why</th></tr>\n{rows}</table>\
<h2>collectors</h2><ul>{collectors}</ul></body></html>"
    ))
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
        let resp = app(rx.clone(), "/metrics")
            .oneshot(
                Request::get("/metrics")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], TEXT_FORMAT);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"sparewatch_x 1\n");
        let resp = app(rx.clone(), "/metrics")
            .oneshot(
                Request::get("/healthz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app(rx, "/metrics")
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unhealthy_before_first_evaluation() {
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let resp = app(rx, "/metrics")
            .oneshot(
                Request::get("/healthz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
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
