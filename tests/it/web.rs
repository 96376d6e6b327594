//! The HTTP server under TLS, basic auth and hostile clients, on loopback. Every attack is
//! bounded in count and time and stops by itself.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sparewatch::snapshot::Snapshot;
use sparewatch::web_server::{self, Security, WebFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

const METRICS: &str = "# TYPE sparewatch_up gauge\nsparewatch_up 1\n";

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(sec: Security, metrics: &str) -> Server {
        let snap = Snapshot {
            generated_at: 1.0,
            metrics_text: metrics.to_string().into(),
            ..Snapshot::default()
        };
        let (tx, rx) = watch::channel(Arc::new(snap));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let app = sparewatch::http::app(rx, "/metrics");
        let task = tokio::spawn(async move {
            let _keep = tx;
            web_server::serve(listener, app, sec, async {
                let _ = stopped.await;
            })
            .await
        });
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within its grace time")
            .expect("join")
            .expect("serve returned an error");
    }
}

fn limits(max_connections: u32, header: Duration, request: Duration) -> WebFlags {
    WebFlags {
        config_file: None,
        max_connections,
        header_timeout: header,
        request_timeout: request,
        // These tests run every client from 127.0.0.1: the per-client limit is tested in
        // tests/it/hardening.rs with several loopback addresses.
        max_connections_per_client: max_connections,
        ..WebFlags::default()
    }
}

fn plain(flags: WebFlags) -> Security {
    Security::new(Default::default(), None, flags)
}

/// One request on a fresh connection; returns (status, whole response text).
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").as_bytes(),
    )
    .await
}

// ---------- TLS and basic auth ----------

struct Tls {
    dir: tempfile::TempDir,
    ca: rustls::pki_types::CertificateDer<'static>,
}

fn write_cert() -> Tls {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    std::fs::write(dir.path().join("server.crt"), ck.cert.pem()).expect("write");
    std::fs::write(
        dir.path().join("server.key"),
        ck.signing_key.serialize_pem(),
    )
    .expect("write");
    Tls {
        ca: ck.cert.der().clone(),
        dir,
    }
}

fn write_web_yml(dir: &Path, extra_tls: &str, users: &str) -> std::path::PathBuf {
    let p = dir.join("web.yml");
    std::fs::write(
        &p,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra_tls}{users}"
        ),
    )
    .expect("write web.yml");
    p
}

fn client_config(
    ca: &rustls::pki_types::CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

async fn tls_get(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    auth: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut s = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await?;
    let auth = auth
        .map(|a| {
            use base64::Engine;
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(a)
            )
        })
        .unwrap_or_default();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_basic_auth() {
    let tls = write_cert();
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let path = write_web_yml(
        tls.dir.path(),
        "",
        &format!("basic_auth_users:\n  prometheus: {hash}\n"),
    );
    let flags = WebFlags {
        config_file: Some(path),
        ..limits(16, Duration::from_secs(2), Duration::from_secs(5))
    };
    let srv = Server::start(Security::from_flags(&flags).expect("loads"), METRICS).await;
    let both = client_config(&tls.ca, &[&rustls::version::TLS13, &rustls::version::TLS12]);

    let (code, text) = tls_get(srv.addr, both.clone(), Some("prometheus:s3cret"))
        .await
        .expect("tls");
    assert_eq!(code, 200, "{text}");
    // The agent's metrics, then the web server's own (sparewatch_web_*).
    assert!(text.contains(METRICS), "{text}");
    assert!(
        text.contains("sparewatch_web_auth_failures_total 0"),
        "{text}"
    );

    let (code, text) = tls_get(srv.addr, both.clone(), Some("prometheus:wrong"))
        .await
        .expect("tls");
    assert_eq!(code, 401, "{text}");
    assert!(
        text.contains("WWW-Authenticate: Basic") || text.contains("www-authenticate: Basic"),
        "{text}"
    );
    assert!(!text.contains("sparewatch_up"), "{text}");

    let (code, _) = tls_get(srv.addr, both.clone(), Some("mallory:s3cret"))
        .await
        .expect("tls");
    assert_eq!(code, 401);
    let (code, _) = tls_get(srv.addr, both.clone(), None).await.expect("tls");
    assert_eq!(code, 401);

    // Plain HTTP to the TLS port: a readable 400, never the metrics.
    let (code, text) = get(srv.addr, "/metrics", "").await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("HTTP request to an HTTPS server"), "{text}");
    assert!(!text.contains("sparewatch_up"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_min_version_is_enforced() {
    let tls = write_cert();
    let path = write_web_yml(tls.dir.path(), "  min_version: TLS13\n", "");
    let flags = WebFlags {
        config_file: Some(path),
        ..limits(16, Duration::from_secs(2), Duration::from_secs(5))
    };
    let srv = Server::start(Security::from_flags(&flags).expect("loads"), METRICS).await;
    let tls12 = client_config(&tls.ca, &[&rustls::version::TLS12]);
    assert!(
        tls_get(srv.addr, tls12, None).await.is_err(),
        "a TLS 1.2 client must not get through min_version TLS13"
    );
    let tls13 = client_config(&tls.ca, &[&rustls::version::TLS13]);
    let (code, text) = tls_get(srv.addr, tls13, None).await.expect("tls13");
    assert_eq!(code, 200, "{text}");
    srv.stop().await;
}

#[test]
fn bad_tls_material_is_a_clear_startup_error() {
    let tls = write_cert();
    let dir = tls.dir.path();
    let load = |yml: &str| {
        let p = dir.join("bad.yml");
        std::fs::write(&p, yml).expect("write");
        let flags = WebFlags {
            config_file: Some(p),
            ..WebFlags::default()
        };
        match Security::from_flags(&flags) {
            Ok(_) => panic!("{yml}: loaded"),
            Err(e) => format!("{e:#}"),
        }
    };
    let e = load("tls_server_config: {cert_file: missing.crt, key_file: server.key}");
    assert!(
        e.contains("missing.crt") && e.contains("No such file"),
        "{e}"
    );
    std::fs::write(dir.join("garbage.crt"), "not a certificate\n").expect("write");
    let e = load("tls_server_config: {cert_file: garbage.crt, key_file: server.key}");
    assert!(
        e.contains("garbage.crt") && e.contains("no CERTIFICATE"),
        "{e}"
    );
    let e = load("tls_server_config: {cert_file: server.crt, key_file: server.crt}");
    assert!(e.contains("key_file") && e.contains("server.crt"), "{e}");
    // A key of another certificate.
    let other = rcgen::generate_simple_self_signed(vec!["other".into()]).expect("cert");
    std::fs::write(dir.join("other.key"), other.signing_key.serialize_pem()).expect("write");
    let e = load("tls_server_config: {cert_file: server.crt, key_file: other.key}");
    assert!(e.contains("other.key"), "{e}");
    let e = load("tls_server_config: [");
    assert!(e.contains("bad.yml"), "{e}");

    // The binary refuses to start, says why on stderr, and exits non-zero.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args([
            "run",
            "--collector.disable-defaults",
            "--web.listen-address=127.0.0.1:0",
            &format!("--web.config.file={}", dir.join("bad.yml").display()),
        ])
        .output()
        .expect("run sparewatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("bad.yml"), "{stderr}");
}

// ---------- request limits ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_and_small_requests() {
    let srv = Server::start(
        plain(limits(16, Duration::from_secs(2), Duration::from_secs(5))),
        METRICS,
    )
    .await;
    let (code, text) = get(srv.addr, "/metrics", "").await;
    assert_eq!(code, 200, "{text}");
    let (code, text) = raw(
        srv.addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(
        !text.contains("sparewatch_up"),
        "HEAD must not send a body: {text}"
    );
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for path in ["/metrics", "/", "/healthz"] {
            let (code, text) = raw(
                srv.addr,
                format!("{m} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await;
            assert_eq!(code, 405, "{m} {path}: {text}");
            assert!(
                text.to_ascii_lowercase().contains("allow: get,head"),
                "{m} {path}: {text}"
            );
        }
    }
    let (code, _) = get(srv.addr, "/nope", "").await;
    assert_eq!(code, 404);
    // A body on a GET.
    let (code, text) = raw(
        srv.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(code, 413, "{text}");
    // A 20 KiB header and 100 headers: refused before any handler runs.
    let (code, text) = get(
        srv.addr,
        "/metrics",
        &format!("X-Big: {}\r\n", "a".repeat(20 * 1024)),
    )
    .await;
    assert!(code == 431 || code == 400 || code == 0, "{code}: {text}");
    assert!(!text.contains("sparewatch_up"));
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (code, text) = get(srv.addr, "/metrics", &many).await;
    assert!(code == 431 || code == 400 || code == 0, "{code}: {text}");
    assert!(!text.contains("sparewatch_up"));
    // Still serving.
    let (code, _) = get(srv.addr, "/metrics", "").await;
    assert_eq!(code, 200);
    srv.stop().await;
}

/// Times one GET /metrics on a fresh connection.
async fn timed_get(addr: SocketAddr) -> (u16, Duration) {
    let t = Instant::now();
    let (code, _) = get(addr, "/metrics", "").await;
    (code, t.elapsed())
}

/// `n` slow clients for `attack_for`: each sends a byte of its request head every 200 ms and
/// reconnects when the server drops it. Returns how often the server dropped one.
fn slow_loris(
    addr: SocketAddr,
    n: usize,
    attack_for: Duration,
) -> Vec<tokio::task::JoinHandle<u32>> {
    let started = Instant::now();
    (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let mut dropped = 0u32;
                while started.elapsed() < attack_for {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
                    let mut i = 0u64;
                    loop {
                        if started.elapsed() >= attack_for {
                            return dropped;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        i += 1;
                        if s.write_all(format!("X-{i}: y\r\n").as_bytes())
                            .await
                            .is_err()
                        {
                            dropped += 1;
                            break;
                        }
                        let mut b = [0u8; 64];
                        if let Ok(Ok(0)) =
                            tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
                        {
                            dropped += 1;
                            break;
                        }
                    }
                }
                dropped
            })
        })
        .collect()
}

/// Starts a probe every `every` while `during` lasts, each on a fresh connection; returns
/// the latencies of all of them (each must get a 200).
async fn probe(addr: SocketAddr, every: Duration, during: Duration) -> Vec<Duration> {
    let until = Instant::now() + during;
    let mut probes = Vec::new();
    while Instant::now() < until {
        probes.push(tokio::spawn(async move {
            let (code, took) = tokio::time::timeout(Duration::from_secs(10), timed_get(addr))
                .await
                .expect("probe finished within 10 s");
            assert_eq!(code, 200, "probe failed");
            took
        }));
        tokio::time::sleep(every).await;
    }
    let mut out = Vec::new();
    for p in probes {
        out.push(p.await.expect("probe"));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_does_not_stop_metrics() {
    // Below the connection cap (40 slow clients, 64 slots): scrapes are not slowed at all.
    let header_timeout = Duration::from_millis(800);
    let srv = Server::start(
        plain(limits(64, header_timeout, Duration::from_secs(5))),
        METRICS,
    )
    .await;
    let attack = slow_loris(srv.addr, 40, Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lat = probe(
        srv.addr,
        Duration::from_millis(100),
        Duration::from_millis(2500),
    )
    .await;
    let mut dropped = 0;
    for a in attack {
        dropped += a.await.expect("attacker");
    }
    let worst = lat[lat.len() - 1];
    eprintln!(
        "slow-loris below the cap: 40 slow clients, {} probes, p50 {:?}, worst {worst:?}, {dropped} slow connections cut",
        lat.len(),
        lat[lat.len() / 2]
    );
    assert!(lat.len() >= 10);
    assert!(worst < Duration::from_millis(500), "worst {worst:?}");
    assert!(
        dropped >= 40,
        "slow clients must be cut at the header deadline ({dropped})"
    );
    srv.stop().await;

    // Above the cap (40 slow clients, 16 slots): every scrape is still answered, after at
    // most about two header deadlines in the accept queue.
    let srv = Server::start(
        plain(limits(16, header_timeout, Duration::from_secs(5))),
        METRICS,
    )
    .await;
    let attack = slow_loris(srv.addr, 40, Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lat = probe(srv.addr, Duration::from_millis(250), Duration::from_secs(3)).await;
    for a in attack {
        a.await.expect("attacker");
    }
    let worst = lat[lat.len() - 1];
    eprintln!(
        "slow-loris above the cap: 40 slow clients on 16 slots, {} probes, p50 {:?}, worst {worst:?}",
        lat.len(),
        lat[lat.len() / 2]
    );
    assert!(
        worst <= header_timeout * 2 + Duration::from_secs(1),
        "worst /metrics latency {worst:?} with the cap exhausted"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_non_reading_clients_are_cut() {
    // One slot only: whoever holds it blocks everybody, so it must be freed on time.
    let metrics = format!("{METRICS}{}", "# padding\n".repeat(800_000));
    let srv = Server::start(
        plain(limits(
            1,
            Duration::from_millis(500),
            Duration::from_secs(1),
        )),
        &metrics,
    )
    .await;
    // A connection that says nothing.
    let mut idle = TcpStream::connect(srv.addr).await.expect("connect");
    let t = Instant::now();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut b))
        .await
        .expect("server closes an idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "idle cut after {:?}",
        t.elapsed()
    );

    // A client that asks for 8 MB and never reads: its slot comes back after the deadline.
    let mut stuck = TcpStream::connect(srv.addr).await.expect("connect");
    stuck
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, took) = tokio::time::timeout(Duration::from_secs(10), async {
        let t = Instant::now();
        let (c, text) = get(srv.addr, "/metrics", "").await;
        assert!(text.len() > 8_000_000);
        (c, t.elapsed())
    })
    .await
    .expect("served after the stuck client was cut");
    assert_eq!(code, 200);
    eprintln!("non-reading client held the only slot; next client served after {took:?}");
    drop(stuck);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_does_not_stop_metrics() {
    // 32 keep-alive clients request as fast as they can for 3 s (at most 200,000 requests),
    // a probe measures /metrics latency on fresh connections meanwhile.
    let srv = Server::start(
        plain(limits(64, Duration::from_secs(2), Duration::from_secs(5))),
        METRICS,
    )
    .await;
    let addr = srv.addr;
    let until = Instant::now() + Duration::from_secs(3);
    let budget = Arc::new(std::sync::atomic::AtomicI64::new(200_000));
    let mut flooders = Vec::new();
    for _ in 0..32 {
        let budget = budget.clone();
        flooders.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let Ok(s) = TcpStream::connect(addr).await else {
                return 0;
            };
            let (mut r, mut w) = s.into_split();
            let mut buf = vec![0u8; 4096];
            while Instant::now() < until
                && budget.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) > 0
            {
                if w.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .is_err()
                {
                    break;
                }
                // Responses are small: one read holds a whole one.
                match r.read(&mut buf).await {
                    Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200") => ok += 1,
                    _ => break,
                }
            }
            ok
        }));
    }
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let (code, took) = tokio::time::timeout(Duration::from_secs(10), timed_get(addr))
            .await
            .expect("probe finished");
        assert_eq!(code, 200);
        latencies.push(took);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut served = 0;
    for f in flooders {
        served += f.await.expect("flooder");
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!(
        "flood: {served} requests served in 3 s to 32 clients; probe p50 {:?}, p99 {p99:?}",
        latencies[latencies.len() / 2]
    );
    assert!(served > 1000, "flood served only {served}");
    assert!(latencies.len() >= 10);
    assert!(
        p99 < Duration::from_secs(1),
        "p99 /metrics latency {p99:?} under flood"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_flood_does_not_starve_scrapes() {
    // bcrypt cost 8 (~20 ms each): 16 clients send wrong passwords for 3 s; the scraper's
    // verified credentials are cached, so its scrapes stay fast.
    let hash = bcrypt::hash("s3cret", 8).expect("hash");
    let cfg = sparewatch::web_config::parse(
        &format!("basic_auth_users:\n  prometheus: {hash}\n"),
        Path::new("."),
    )
    .expect("parses");
    let srv = Server::start(
        Security::new(
            cfg,
            None,
            limits(64, Duration::from_secs(2), Duration::from_secs(10)),
        ),
        METRICS,
    )
    .await;
    let addr = srv.addr;
    let good = "Authorization: Basic cHJvbWV0aGV1czpzM2NyZXQ=\r\n";
    let (code, _) = get(addr, "/metrics", good).await;
    assert_eq!(code, 200);
    let until = Instant::now() + Duration::from_secs(3);
    let mut attackers = Vec::new();
    for i in 0..16 {
        attackers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < until && n < 500 {
                let (code, _) = get(
                    addr,
                    "/metrics",
                    &format!(
                        "Authorization: Basic {}\r\n",
                        ["YTpi", "cHJvbWV0aGV1czp4"][i % 2]
                    ),
                )
                .await;
                // 401 when checked; 429 when this address already has a check under way
                // or has used up its failures.
                assert!(code == 401 || code == 429, "attacker got {code}");
                n += 1;
            }
            n
        }));
    }
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while Instant::now() < until {
        let t = Instant::now();
        let (code, _) = get(addr, "/metrics", good).await;
        assert_eq!(code, 200);
        worst = worst.max(t.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut refused = 0;
    for a in attackers {
        refused += a.await.expect("attacker");
    }
    eprintln!("auth flood: {refused} wrong passwords refused, {probes} scrapes, worst {worst:?}");
    assert!(refused > 10);
    assert!(
        worst < Duration::from_millis(500),
        "scrape took {worst:?} during the auth flood"
    );
    srv.stop().await;
}
