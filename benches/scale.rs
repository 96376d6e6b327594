//! Scale benchmark (not a timed test): a generated host with 500 NICs and 64 bonds of 4.
//! Measures one collection cycle (read + evaluate + render), scrape latency against the
//! real agent binary, the agent's RSS, and node_exporter on the same tree when installed.
//! Results go to docs/benchmarks.md (section "scale"), with the command that made them:
//!
//!     cargo bench --bench scale
//!
//! Set SCALE_SCRAPES (default 2000) and SCALE_CYCLES (default 200) to change the counts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sparewatch::fixture::SysTree;

const BONDS: usize = 64;
const SLAVES: usize = 4;
const NICS: usize = 500;

fn build_tree(t: &SysTree) -> std::io::Result<()> {
    for i in 0..NICS {
        t.nic(&format!("eth{i}"))?;
    }
    for b in 0..BONDS {
        let slaves: Vec<String> = (0..SLAVES)
            .map(|s| format!("eth{}", b * SLAVES + s))
            .collect();
        let refs: Vec<&str> = slaves.iter().map(String::as_str).collect();
        let mode = if b % 2 == 0 {
            "active-backup 1"
        } else {
            "802.3ad 4"
        };
        t.bond(&format!("bond{b}"), mode, &refs, 1)?;
    }
    // Some realism: a few broken standbys.
    for b in (0..BONDS).step_by(8) {
        t.link(&format!("eth{}", b * SLAVES + 1), false)?;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> Option<usize> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    buf.starts_with(b"HTTP/1.1 200").then_some(buf.len())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19856)
}

fn scrape_latencies(addr: &str, n: usize) -> (Vec<Duration>, usize) {
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        bytes = get(addr, "/metrics").expect("scrape");
        lat.push(t.elapsed());
    }
    lat.sort();
    (lat, bytes)
}

fn wait_ready(addr: &str, path: &str) {
    let start = Instant::now();
    while get(addr, path).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{addr} not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let scrapes: usize = std::env::var("SCALE_SCRAPES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let cycles: usize = std::env::var("SCALE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = SysTree::new(dir.path()).expect("tree");
    build_tree(&tree).expect("tree");
    let sys = dir.path().join("sys");
    let sys_s = sys.display().to_string();

    // 1. One collection cycle in-process: read sysfs + evaluate + render.
    let parsed = sparewatch::cli::parse_from([
        "sparewatch",
        "--collector.disable-defaults",
        "--collector.net",
        "--path.sysfs",
        &sys_s,
    ])
    .expect("args");
    let roots = sparewatch::app::roots(&parsed);
    let setup = sparewatch::app::setup(&parsed, &roots).expect("setup");
    let infos = setup.jobs.iter().map(|(_, i)| i.clone()).collect();
    let mut jobs: Vec<_> = setup.jobs.into_iter().map(|(j, _)| j).collect();
    let mut engine = sparewatch::engine::Engine::new(setup.engine_config, infos, None);
    let mut cycle = Vec::with_capacity(cycles);
    let mut groups = 0;
    let mut text_len = 0;
    for _ in 0..cycles {
        let t = Instant::now();
        let c = jobs[0].collector.collect().expect("collect");
        engine.finished("net", Ok(c), t.elapsed(), SystemTime::now());
        let snap =
            sparewatch::app::evaluate_and_render(&mut engine, SystemTime::now(), None, false);
        cycle.push(t.elapsed());
        groups = snap.groups.len();
        text_len = snap.metrics_text.len();
    }
    cycle.sort();

    // 2. The real agent: scrape latency and memory.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let agent = Proc(
        Command::new(env!("CARGO_BIN_EXE_sparewatch"))
            .args([
                "--collector.disable-defaults",
                "--collector.net",
                "--path.sysfs",
                &sys_s,
            ])
            .args(["--web.listen-address", &addr, "--log.level", "error"])
            .stdout(Stdio::null())
            .spawn()
            .expect("agent"),
    );
    wait_ready(&addr, "/healthz");
    std::thread::sleep(Duration::from_millis(1500));
    let (lat, bytes) = scrape_latencies(&addr, scrapes);
    let pid = agent.0.id();
    let (rss, hwm) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    drop(agent);

    // 3. node_exporter on the same tree, when installed (Debian: prometheus-node-exporter).
    let ne = ["prometheus-node-exporter", "node_exporter"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|b| {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let _p = Proc(
                Command::new(b)
                    .args([
                        "--collector.disable-defaults",
                        "--collector.bonding",
                        "--collector.netclass",
                    ])
                    .arg(format!("--path.sysfs={sys_s}"))
                    .arg(format!("--web.listen-address={addr}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("node_exporter"),
            );
            wait_ready(&addr, "/metrics");
            let (lat, bytes) = scrape_latencies(&addr, scrapes.min(500));
            (lat, bytes)
        });

    let mut report = String::new();
    report.push_str(&format!(
        "Host: {} NICs, {} bonds of {} slaves ({} groups), {} KiB of metrics text.\n\
         Machine: {} cores, `cargo bench --bench scale` (release profile), {}.\n\n\
         | measure | p50 | p99 | max |\n|---|---|---|---|\n",
        NICS,
        BONDS,
        SLAVES,
        groups,
        text_len / 1024,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        humantime::format_rfc3339_seconds(SystemTime::now()),
    ));
    report.push_str(&format!(
        "| collection cycle (read sysfs + evaluate + render), {cycles} runs | {} | {} | {} |\n",
        fmt_ms(percentile(&cycle, 0.5)),
        fmt_ms(percentile(&cycle, 0.99)),
        fmt_ms(*cycle.last().unwrap_or(&Duration::ZERO))
    ));
    report.push_str(&format!(
        "| sparewatch scrape, new connection each, {scrapes} scrapes ({} KiB) | {} | {} | {} |\n",
        bytes / 1024,
        fmt_ms(percentile(&lat, 0.5)),
        fmt_ms(percentile(&lat, 0.99)),
        fmt_ms(*lat.last().unwrap_or(&Duration::ZERO))
    ));
    if let Some((nl, nb)) = &ne {
        report.push_str(&format!(
            "| node_exporter 1.5 scrape (bonding + netclass, same tree), {} scrapes ({} KiB) | {} | {} | {} |\n",
            nl.len(), nb / 1024, fmt_ms(percentile(nl, 0.5)), fmt_ms(percentile(nl, 0.99)), fmt_ms(*nl.last().unwrap_or(&Duration::ZERO))
        ));
    }
    report.push_str(&format!(
        "\nAgent memory after the scrapes: RSS {:.1} MiB, peak RSS {:.1} MiB.\n",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    ));
    println!("{report}");
    write_section("scale", &report);
}

/// Replaces the `<!-- bench:NAME -->` … `<!-- /bench:NAME -->` section of docs/benchmarks.md.
fn write_section(name: &str, body: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
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
