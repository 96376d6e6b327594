//! Soak: the real `sparewatch` binary under continuous scraping while its collectors flap.
//!
//! A simulated sysfs tree holds 8 active-backup bonds over 16 NICs; every 100 ms one slave
//! link flips (carrier and MII status), so groups keep changing state and the engine keeps
//! counting transitions. Loopback clients scrape `/metrics` at a fixed rate over keep-alive
//! connections. Once a second the agent's RSS and open file descriptors are sampled. The
//! run fails when a scrape fails, when the rate is not reached, or when RSS or fds grow
//! between the start (after warm-up) and the end.
//!
//! ```sh
//! cargo bench --bench soak -- --seconds 120 --rate 200 --write docs/benchmarks.md
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sparewatch::fixture::SysTree;

const BONDS: usize = 8;
const CLIENTS: u32 = 4;

struct Args {
    seconds: u64,
    rate: u32,
    write: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 60,
        rate: 200,
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--seconds" => a.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.seconds),
            "--rate" => a.rate = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.rate),
            "--write" => a.write = it.next(),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// VmRSS in KiB and the number of open fds of `pid`.
fn sample(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

/// One keep-alive GET; returns the body.
fn scrape(conn: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    conn.get_mut()
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n")?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("status line {line:?}")));
    }
    let mut len = None;
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let len = len.ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok(body)
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn sum_metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = SysTree::new(dir.path()).expect("tree");
    for b in 0..BONDS {
        let (s0, s1) = (format!("eth{}", 2 * b), format!("eth{}", 2 * b + 1));
        tree.nic(&s0).expect("nic");
        tree.nic(&s1).expect("nic");
        tree.bond(&format!("bond{b}"), "active-backup 1", &[&s0, &s1], 0)
            .expect("bond");
    }
    let config = dir.path().join("sparewatch.yml");
    std::fs::write(
        &config,
        "hold_down: 300ms\ncollectors:\n  net:\n    interval: 100ms\n",
    )
    .expect("config");
    let port = free_port();
    let agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_sparewatch"))
            .arg("run")
            .arg(format!("--path.sysfs={}", dir.path().join("sys").display()))
            .arg(format!(
                "--path.procfs={}",
                dir.path().join("proc").display()
            ))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--state.dir={}",
                dir.path().join("state").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.net")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sparewatch"),
    );
    let pid = agent.0.id();
    let addr = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "agent did not listen"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let stop = Arc::new(AtomicBool::new(false));
    // Flapping: one slave link flips every 100 ms, round-robin over all slaves.
    let flapper = {
        let stop = stop.clone();
        let root = dir.path().to_path_buf();
        thread::spawn(move || {
            let tree = SysTree::new(&root).expect("tree");
            let mut flips = 0u64;
            let mut up = [true; 2 * BONDS];
            while !stop.load(Ordering::Relaxed) {
                let i = (flips as usize * 7) % (2 * BONDS);
                up[i] = !up[i];
                tree.link(&format!("eth{i}"), up[i]).expect("flip");
                flips += 1;
                thread::sleep(Duration::from_millis(100));
            }
            flips
        })
    };
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let last_body = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (ok, errors, latencies, last_body, addr) = (
            ok.clone(),
            errors.clone(),
            latencies.clone(),
            last_body.clone(),
            addr.clone(),
        );
        let period = Duration::from_secs_f64(CLIENTS as f64 / a.rate as f64);
        clients.push(thread::spawn(move || {
            let mut conn: Option<BufReader<TcpStream>> = None;
            let mut next = Instant::now() + period.mul_f64(c as f64 / CLIENTS as f64);
            while Instant::now() < deadline {
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                }
                next += period;
                if conn.is_none() {
                    conn = TcpStream::connect(&addr).ok().map(BufReader::new);
                }
                let Some(s) = conn.as_mut() else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let t = Instant::now();
                match scrape(s) {
                    Ok(body) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = latencies.lock() {
                            l.push(t.elapsed().as_micros() as u64);
                        }
                        if c == 0 {
                            if let Ok(mut b) = last_body.lock() {
                                *b = body;
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("scrape failed: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    let mut rss = Vec::new();
    let mut fds = Vec::new();
    while Instant::now() < deadline {
        thread::sleep(Duration::from_secs(1));
        let (r, f) = sample(pid);
        rss.push(r);
        fds.push(f as u64);
    }
    for c in clients {
        c.join().expect("client");
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flapper.join().expect("flapper");
    let body = String::from_utf8_lossy(&last_body.lock().expect("body")).into_owned();
    let transitions = sum_metric(&body, "sparewatch_member_transitions_total{");
    let group_transitions = sum_metric(&body, "sparewatch_group_state_transitions_total{");
    drop(agent);

    let n = rss.len().max(1);
    let tenth = (n / 10).max(1);
    // Baseline: the second tenth (after warm-up); end: the last tenth.
    let rss_start = median(&rss[tenth.min(n - 1)..(2 * tenth).min(n)]);
    let rss_end = median(&rss[n.saturating_sub(tenth)..]);
    let fds_start = median(&fds[tenth.min(n - 1)..(2 * tenth).min(n)]);
    let fds_end = median(&fds[n.saturating_sub(tenth)..]);
    let rss_max = rss.iter().copied().max().unwrap_or(0);
    let fds_max = fds.iter().copied().max().unwrap_or(0);
    let mut lat = latencies.lock().expect("lat").clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let ok = ok.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let rate = ok as f64 / a.seconds as f64;

    let rss_growth = rss_end as f64 - rss_start as f64;
    let rss_ok = rss_growth <= (rss_start as f64 * 0.10).max(2048.0);
    let fds_ok = fds_end <= fds_start + 2;
    let rate_ok = rate >= a.rate as f64 * 0.95;
    let flapped = transitions > 0.0 && group_transitions > 0.0;
    let verdict = if errors == 0 && rss_ok && fds_ok && rate_ok && flapped {
        "pass"
    } else {
        "FAIL"
    };
    let report = format!(
        "| duration | {secs} s |\n\
         | scrapes | {ok} ok, {errors} failed ({rate:.1}/s over {CLIENTS} keep-alive connections; target {target}/s) |\n\
         | scrape latency | p50 {p50} µs, p99 {p99} µs, max {max} µs |\n\
         | flapping | {flips} link flips on {slaves} bond slaves; {transitions} member and {group_transitions} group transitions counted |\n\
         | RSS | {rs} KiB after warm-up → {re} KiB at the end (max {rm} KiB) |\n\
         | open fds | {fs} after warm-up → {fe} at the end (max {fm}) |\n\
         | verdict | {verdict} |\n",
        secs = a.seconds,
        target = a.rate,
        p50 = pct(0.5),
        p99 = pct(0.99),
        max = pct(1.0),
        slaves = 2 * BONDS,
        rs = rss_start,
        re = rss_end,
        rm = rss_max,
        fs = fds_start,
        fe = fds_end,
        fm = fds_max,
    );
    print!("{report}");
    if let Some(path) = a.write {
        let section = format!(
            "<!-- soak:begin -->\n## Soak: scraping while collectors flap\n\n\
             The release binary over a simulated tree of {BONDS} active-backup bonds (16 NICs), \
             net collector every 100 ms, one slave link flipped every 100 ms, scraped at \
             {target}/s from loopback; RSS and fds sampled every second. \
             Command:\n\n```sh\ncargo bench --bench soak -- --seconds {secs} --rate {target} --write docs/benchmarks.md\n```\n\n\
             | what | result |\n|---|---|\n{report}\n\
             Measured on a 2-core machine of the CI kind. `scripts/test.d/75-soak.sh` runs a 30 s version on \
             every test run and fails on any scrape error, a missed rate, RSS growth above \
             10 % (or 2 MiB) or more than 2 extra fds.\n<!-- soak:end -->\n",
            target = a.rate,
            secs = a.seconds,
        );
        let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
        let new = match (
            old.find("<!-- soak:begin -->"),
            old.find("<!-- soak:end -->"),
        ) {
            (Some(s), Some(e)) if e > s => {
                let e = e + "<!-- soak:end -->\n".len();
                format!("{}{}{}", &old[..s], section, old.get(e..).unwrap_or(""))
            }
            _ => format!("{}\n{}", old.trim_end(), section),
        };
        std::fs::write(&path, new).expect("write benchmarks");
    }
    if verdict != "pass" {
        eprintln!("soak failed: errors={errors} rss_ok={rss_ok} fds_ok={fds_ok} rate_ok={rate_ok} flapped={flapped}");
        std::process::exit(1);
    }
}
