//! Attack benchmark (not a timed test): the agent binary on loopback under the attacks of
//! issue 17, measuring what a legitimate scraper sees. Each attack comes from its own
//! loopback address (127.0.0.2, …), as it would from other hosts; the scraper uses
//! 127.0.0.1. Results go to docs/benchmarks.md (section "attack"):
//!
//!     cargo bench --bench attack
//!
//! Scenarios: no attack; 600 slow-loris connections; 256 clients that pipeline requests and
//! never read; 32 keep-alive connections of wrong passwords (bcrypt cost 10); and the config
//! bombs (`check-config` time and peak RSS).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_sparewatch");
const ATTACK: Duration = Duration::from_secs(5);

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19856)
}

fn start(dir: &Path, extra: &[String]) -> (Proc, SocketAddr) {
    for d in ["sys", "proc"] {
        let _ = std::fs::create_dir_all(dir.join(d));
    }
    let port = free_port();
    let mut args = vec![
        "run".to_string(),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--path.sysfs={}", dir.join("sys").display()),
        format!("--path.procfs={}", dir.join("proc").display()),
        format!("--path.rootfs={}", dir.display()),
        "--collector.disable-defaults".into(),
        "--collector.md".into(),
        "--log.level=error".into(),
    ];
    args.extend(extra.iter().cloned());
    let child = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the agent");
    (Proc(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    s.connect(to).await
}

/// One GET on a fresh connection: (status, time).
async fn get(from: Ipv4Addr, to: SocketAddr, auth: &str) -> (u16, Duration) {
    let t = Instant::now();
    let Ok(mut s) = connect_from(from, to).await else {
        return (0, t.elapsed());
    };
    let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, t.elapsed());
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let code = String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, t.elapsed())
}

async fn wait_up(addr: SocketAddr) {
    for _ in 0..300 {
        if get(Ipv4Addr::LOCALHOST, addr, "").await.0 != 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("agent did not come up");
}

/// Scrapes every 20 ms for `during`: sorted latencies and how many were not 200.
async fn probe(addr: SocketAddr, auth: &str, during: Duration) -> (Vec<Duration>, usize) {
    let until = Instant::now() + during;
    let mut lat = Vec::new();
    let mut bad = 0;
    while Instant::now() < until {
        let (code, took) = get(Ipv4Addr::LOCALHOST, addr, auth).await;
        if code != 200 {
            bad += 1;
        }
        lat.push(took);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.sort();
    (lat, bad)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn row(name: &str, lat: &[Duration], bad: usize) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {bad} |\n",
        lat.len(),
        ms(pct(lat, 0.5)),
        ms(pct(lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    )
}

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// `check-config FILE`: (wall time, peak RSS KiB, first error line).
// The child is reaped by wait4 (for its peak RSS), not by std.
#[allow(clippy::zombie_processes)]
fn check_config(file: &Path) -> (Duration, i64, String) {
    let t = Instant::now();
    let mut child = Command::new(BIN)
        .arg("check-config")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child with pointers to live locals.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (
        t.elapsed(),
        usage.ru_maxrss,
        err.lines().next().unwrap_or("accepted").to_string(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} cores, `cargo bench --bench attack` (bench profile), {}, load average {}.\n\n\
         Scraper: a new connection per scrape from 127.0.0.1, every 20 ms for {} s while the attack runs.\n\n\
         | attack | scrapes | p50 | p99 | max | not 200 |\n|---|---|---|---|---|---|\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
        ATTACK.as_secs()
    ));

    // No attack.
    let (_agent, addr) = start(dir.path(), &[]);
    wait_up(addr).await;
    let (lat, bad) = probe(addr, "", ATTACK).await;
    out.push_str(&row("none", &lat, bad));

    // 600 slow-loris connections from one address: a partial head, then nothing.
    let mut held = Vec::new();
    for _ in 0..600 {
        if let Ok(mut s) = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr).await {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
            held.push(s);
        }
    }
    let (lat, bad) = probe(addr, "", ATTACK).await;
    drop(held);
    out.push_str(&row("600 slow-loris connections (one address)", &lat, bad));

    // 256 clients that pipeline requests and never read their responses.
    let mut held = Vec::new();
    let pipelined = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    for _ in 0..256 {
        if let Ok(mut s) = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr).await {
            let _ =
                tokio::time::timeout(Duration::from_millis(50), s.write_all(pipelined.as_bytes()))
                    .await;
            held.push(s);
        }
    }
    let (lat, bad) = probe(addr, "", ATTACK).await;
    drop(held);
    out.push_str(&row("256 clients that never read (one address)", &lat, bad));
    drop(_agent);

    // Wrong-password flood: 32 keep-alive connections, random passwords, bcrypt cost 10.
    let hash = bcrypt::hash("s3cret", 10).expect("hash");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("web.yml");
    let (_agent, addr) = start(
        dir.path(),
        &[format!("--web.config.file={}", web.display())],
    );
    wait_up(addr).await;
    let until = Instant::now() + ATTACK + Duration::from_secs(2);
    let mut flood = Vec::new();
    for i in 0..32u32 {
        flood.push(tokio::spawn(async move {
            let mut n = 0u32;
            let Ok(mut s) = connect_from(Ipv4Addr::new(127, 0, 0, 4), addr).await else {
                return 0;
            };
            let mut buf = vec![0u8; 4096];
            while Instant::now() < until {
                n += 1;
                let req = format!(
                    "GET /metrics HTTP/1.1\r\nHost: x\r\n{}\r\n",
                    basic(&format!("prometheus:wrong-{i}-{n}"))
                );
                if s.write_all(req.as_bytes()).await.is_err()
                    || !matches!(s.read(&mut buf).await, Ok(1..))
                {
                    break;
                }
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let good = basic("prometheus:s3cret");
    // The first valid login during the flood is not cached yet: the case that used to wait.
    let (code, first) = get(Ipv4Addr::new(127, 0, 0, 5), addr, &good).await;
    let (lat, bad) = probe(addr, &good, ATTACK).await;
    let mut sent = 0;
    for f in flood {
        sent += f.await.unwrap_or(0);
    }
    out.push_str(&row(
        "32 connections of wrong passwords (bcrypt cost 10, cached scraper)",
        &lat,
        bad,
    ));
    out.push_str(&format!(
        "\nDuring the password flood ({sent} wrong logins sent), a new valid client (not cached) \
         got {code} in {}.\n",
        ms(first)
    ));
    drop(_agent);

    // Config bombs: check-config wall time and peak RSS.
    out.push_str("\n| config file | bytes | check-config time | peak RSS | verdict |\n|---|---|---|---|---|\n");
    let head = "hold_down: 1s\ngroups:\n  x:\n    a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    b:\n";
    let rowy = "      - [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
    let mut laughs = String::from("groups:\n  x:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        laughs.push_str(&format!(
            "    l{i}: &l{i} [{}]\n",
            vec![format!("*l{}", i - 1); 10].join(", ")
        ));
    }
    for (name, text) in [
        (
            "2.2 MB of aliases",
            format!("{head}{}", rowy.repeat(2_200_000 / rowy.len())),
        ),
        (
            "0.9 MB of aliases (under the size cap)",
            format!("{head}{}", rowy.repeat(900_000 / rowy.len())),
        ),
        ("billion laughs (10 levels of 10)", laughs),
        (
            "200 KB of nested flow `[[[…]]]`",
            format!(
                "hold_down: {}{}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
        ),
    ] {
        let f = dir.path().join("bomb.yml");
        std::fs::write(&f, &text).expect("write");
        let (took, rss, verdict) = check_config(&f);
        let verdict = verdict.rsplit(": ").next().unwrap_or("").to_string();
        out.push_str(&format!(
            "| {name} | {} | {} | {:.1} MiB | {verdict} |\n",
            text.len(),
            ms(took),
            rss as f64 / 1024.0
        ));
    }
    println!("{out}");
    write_section("attack", &out);
}

/// Replaces the `<!-- bench:NAME -->` … `<!-- /bench:NAME -->` section of docs/benchmarks.md.
fn write_section(name: &str, body: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let section = format!("{open}\n{body}{close}");
    let new = match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{}{}", &doc[..a], section, &doc[b + close.len()..])
        }
        _ => format!("{}\n{section}\n", doc.trim_end()),
    };
    if let Err(e) = std::fs::write(&path, new) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
