//! Scale benchmark (not a timed test): a generated host with 500 NICs and 64 bonds of 4.
//! Measures one collection cycle (read + evaluate + render), scrape latency against the
//! real agent binary, the agent's RSS, and node_exporter on the same tree when installed.
//! Results go to docs/benchmarks.md (section "scale"), with the command that made them:
//!
//!     cargo bench --bench scale
//!
//! Set SCALE_SCRAPES (default 2000) and SCALE_CYCLES (default 200) to change the counts.
//!
//! `cargo bench --bench scale -- --large` instead measures 10,000 NICs in 2,500 bonds of 4
//! and 5,000 md RAID1 arrays of 2 (generated trees): one pass in-process (read + evaluate +
//! render), and the real agent's CPU while the host is idle, RSS and `/metrics` size
//! (section "large"; LARGE_IDLE_SECONDS, default 10, sets the idle measurement).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sparewatch::fixture::SysTree;

const BONDS: usize = 64;
const SLAVES: usize = 4;
const NICS: usize = 500;

/// `nics` NICs, the first `bonds × SLAVES` of them in bonds; one bond in eight has a broken
/// standby.
fn build_tree(t: &SysTree, nics: usize, bonds: usize) -> std::io::Result<()> {
    for i in 0..nics {
        t.nic(&format!("eth{i}"))?;
    }
    for b in 0..bonds {
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
    for b in (0..bonds).step_by(8) {
        t.link(&format!("eth{}", b * SLAVES + 1), false)?;
    }
    Ok(())
}

/// The agent binary measured: `SCALE_AGENT` (the packages ship the static musl build,
/// `target/x86_64-unknown-linux-musl/release/sparewatch`), else this bench's own build.
fn agent_binary() -> std::path::PathBuf {
    std::env::var_os("SCALE_AGENT")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sparewatch").into())
}

/// Which agent the figures are of, for the report: its path and whether it is static
/// (no `PT_INTERP` program header: no dynamic loader, no shared libraries).
fn agent_label() -> String {
    let path = agent_binary();
    let linking = match std::fs::read(&path) {
        Ok(elf) => match has_interp(&elf) {
            Some(false) => "static",
            Some(true) => "dynamic",
            None => "not an ELF64 file",
        },
        Err(_) => "unreadable",
    };
    let shown = match std::env::var("SCALE_AGENT") {
        Ok(p) => format!("`{p}`"),
        Err(_) => "this bench's own build (`target/release`)".to_string(),
    };
    format!("{shown}, {linking}")
}

fn has_interp(elf: &[u8]) -> Option<bool> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (off, size, num) = (u64_at(0x20)? as usize, u16_at(0x36)?, u16_at(0x38)?);
    let mut interp = false;
    for i in 0..num as usize {
        let at = off + i * size as usize;
        interp |= u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?) == 3;
    }
    Some(interp)
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
    // Long enough for the large host's `/metrics` on a loaded machine.
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
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

/// node_exporter scrapes at most this many times (each costs it ~40 ms at 500 NICs).
const NE_SCRAPES: usize = 500;
const ARRAYS: usize = 64;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// One exporter, scraped `n` times after it is ready.
struct ScrapeRun {
    lat: Vec<Duration>,
    bytes: usize,
    cpu_per_scrape: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    /// RSS by mapping kind, from /proc/PID/smaps after the scrapes.
    smaps: Vec<(&'static str, u64)>,
}

/// RSS (KiB) by kind of mapping: the executable's own pages, shared libraries, the brk
/// heap, and anonymous maps (malloc arenas, thread stacks).
fn smaps_breakdown(pid: u32) -> Vec<(&'static str, u64)> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut sums = [
        ("binary", 0),
        ("libraries", 0),
        ("heap", 0),
        ("anonymous", 0),
    ];
    let mut kind = 3;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            kind = if !path.is_empty() && Path::new(path) == exe {
                0
            } else if path.starts_with('/') {
                1
            } else if path == "[heap]" {
                2
            } else {
                3
            };
        } else if first == "Rss:" {
            sums[kind].1 += f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    sums.to_vec()
}

impl ScrapeRun {
    fn smaps_line(&self, who: &str) -> String {
        let parts: Vec<String> = self
            .smaps
            .iter()
            .map(|(k, v)| format!("{k} {:.1} MiB", *v as f64 / 1024.0))
            .collect();
        format!(
            "{who} RSS by mapping after the scrapes: {}.\n",
            parts.join(", ")
        )
    }

    fn row(&self, what: &str) -> String {
        format!(
            "| {what}, {} scrapes ({} KiB) | {} | {} | {} | {} | {:.1} MiB ({:.1} MiB) |\n",
            self.lat.len(),
            self.bytes / 1024,
            fmt_ms(percentile(&self.lat, 0.5)),
            fmt_ms(percentile(&self.lat, 0.99)),
            fmt_ms(*self.lat.last().unwrap_or(&Duration::ZERO)),
            fmt_ms(self.cpu_per_scrape),
            self.rss_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0,
        )
    }
}

fn scrape_run(cmd: &mut Command, extra: &[&str], ready: &str, n: usize) -> ScrapeRun {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = Proc(
        cmd.args(extra)
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("exporter starts"),
    );
    wait_ready(&addr, ready);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = p.0.id();
    let before = cpu_ticks(pid);
    let (lat, bytes) = scrape_latencies(&addr, n);
    let ticks = cpu_ticks(pid) - before;
    let cpu_per_scrape =
        Duration::from_secs_f64(ticks as f64 / ticks_per_second() / n.max(1) as f64);
    let (rss_kib, hwm_kib) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    ScrapeRun {
        lat,
        bytes,
        cpu_per_scrape,
        rss_kib,
        hwm_kib,
        smaps: smaps_breakdown(pid),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--large") {
        large_main();
        return;
    }
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
    build_tree(&tree, NICS, BONDS).expect("tree");
    build_md(dir.path(), ARRAYS);
    let sys = dir.path().join("sys");
    let sys_s = sys.display().to_string();
    let proc_s = dir.path().join("proc").display().to_string();
    let agent_args = [
        "--collector.disable-defaults",
        "--collector.net",
        "--collector.md",
        "--collector.hwmon",
        "--path.sysfs",
        &sys_s,
        "--path.procfs",
        &proc_s,
    ];

    // 1. One collection cycle in-process: read sysfs + evaluate + render.
    let mut argv = vec!["sparewatch"];
    argv.extend(agent_args);
    let parsed = sparewatch::cli::parse_from(argv).expect("args");
    let roots = sparewatch::app::roots(&parsed);
    let setup = sparewatch::app::setup(&parsed, &roots).expect("setup");
    let infos = setup.jobs.iter().map(|(_, i)| i.clone()).collect();
    let mut jobs: Vec<_> = setup.jobs.into_iter().map(|(j, i)| (j, i.name)).collect();
    let mut engine = sparewatch::engine::Engine::new(setup.engine_config, infos, None);
    let mut cycle = Vec::with_capacity(cycles);
    let mut groups = 0;
    let mut text_len = 0;
    for _ in 0..cycles {
        let t = Instant::now();
        for (j, name) in &mut jobs {
            let c = j.collector.collect().expect("collect");
            engine.finished(name, Ok(c), t.elapsed(), SystemTime::now());
        }
        let snap =
            sparewatch::app::evaluate_and_render(&mut engine, SystemTime::now(), None, false);
        cycle.push(t.elapsed());
        groups = snap.groups.len();
        text_len = snap.metrics_text.len();
    }
    cycle.sort();
    drop(jobs);
    drop(engine);

    // 2. The real agent and node_exporter (Debian: prometheus-node-exporter) on the same
    // tree, one after the other in this run: scrape latency, CPU per scrape, memory.
    let agent = scrape_run(
        Command::new(agent_binary()).args(agent_args),
        &["--log.level", "error"],
        "/healthz",
        scrapes,
    );
    let ne_bin = ["prometheus-node-exporter", "node_exporter"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let ne = ne_bin.map(|b| {
        scrape_run(
            Command::new(b)
                .args([
                    "--collector.disable-defaults",
                    "--collector.bonding",
                    "--collector.netclass",
                    "--collector.mdadm",
                    "--collector.hwmon",
                ])
                .arg(format!("--path.sysfs={sys_s}"))
                .arg(format!("--path.procfs={proc_s}"))
                .stderr(Stdio::null()),
            &[],
            "/metrics",
            scrapes.min(NE_SCRAPES),
        )
    });

    let mut report = String::new();
    report.push_str(&format!(
        "Host: {NICS} NICs, {BONDS} bonds of {SLAVES} slaves, {ARRAYS} md RAID1 arrays ({groups} groups), {} KiB of metrics text.\n\
         Agent: {}.\n\
         Machine: {} cores, `cargo bench --bench scale` (release profile), {}, load average {}{}.\n\n\
         | measure | p50 | p99 | max | CPU per scrape | RSS after (peak) |\n|---|---|---|---|---|---|\n",
        text_len / 1024,
        agent_label(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        humantime::format_rfc3339_seconds(SystemTime::now()),
        loadavg(),
        std::env::var("MALLOC_ARENA_MAX")
            .map(|v| format!(", MALLOC_ARENA_MAX={v}"))
            .unwrap_or_default(),
    ));
    report.push_str(&format!(
        "| collection cycle (read sysfs + evaluate + render), {cycles} runs | {} | {} | {} | – | – |\n",
        fmt_ms(percentile(&cycle, 0.5)),
        fmt_ms(percentile(&cycle, 0.99)),
        fmt_ms(*cycle.last().unwrap_or(&Duration::ZERO))
    ));
    report.push_str(&agent.row("sparewatch scrape, new connection each"));
    match &ne {
        Some(r) => report.push_str(&r.row(
            "node_exporter scrape (bonding, netclass, mdadm, hwmon; same tree)",
        )),
        None => report.push_str(
            "| node_exporter: not installed (Debian package prometheus-node-exporter), not measured | | | | | |\n",
        ),
    }
    report.push('\n');
    report.push_str(&agent.smaps_line("sparewatch"));
    if let Some(r) = &ne {
        report.push_str(&r.smaps_line("node_exporter"));
    }
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

// --- `-- --large`: 10,000 NICs and 5,000 md arrays (issue 14) ---

const LARGE_NICS: usize = 10_000;
const LARGE_ARRAYS: usize = 5_000;

/// `arrays` RAID1 arrays of two members (one in eight degraded) and their /proc/mdstat.
fn build_md(root: &Path, arrays: usize) {
    SysTree::new(root)
        .and_then(|t| t.md_raid1_arrays(arrays, |a| a % 8 == 0))
        .expect("md tree");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

struct Row {
    host: String,
    groups: usize,
    pass: Vec<Duration>,
    /// The evaluate + render part of each pass (the rest is reading sysfs).
    render: Vec<Duration>,
    idle_cpu: f64,
    rss_kib: u64,
    hwm_kib: u64,
    metrics_bytes: usize,
}

fn measure(host: &str, args: &[String], collector: &str, idle: Duration) -> Row {
    // 1. Passes in-process: read + evaluate + render.
    let mut all = vec!["sparewatch".to_string()];
    all.extend(args.iter().cloned());
    let parsed = sparewatch::cli::parse_from(all).expect("args");
    let roots = sparewatch::app::roots(&parsed);
    let setup = sparewatch::app::setup(&parsed, &roots).expect("setup");
    let infos = setup.jobs.iter().map(|(_, i)| i.clone()).collect();
    let mut jobs: Vec<_> = setup.jobs.into_iter().map(|(j, _)| j).collect();
    let mut engine = sparewatch::engine::Engine::new(setup.engine_config, infos, None);
    let mut pass = Vec::new();
    let mut render = Vec::new();
    let mut groups = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let c = jobs[0].collector.collect().expect("collect");
        engine.finished(collector, Ok(c), t.elapsed(), SystemTime::now());
        let r = Instant::now();
        let snap =
            sparewatch::app::evaluate_and_render(&mut engine, SystemTime::now(), None, false);
        render.push(r.elapsed());
        pass.push(t.elapsed());
        groups = snap.groups.len();
    }
    pass.sort();
    render.sort();
    drop(jobs);
    drop(engine);

    // 2. The agent, idle: nothing in the tree changes.
    let addr = format!("127.0.0.1:{}", free_port());
    let agent = Proc(
        Command::new(agent_binary())
            .args(args)
            .args(["--web.listen-address", &addr, "--log.level", "error"])
            .stdout(Stdio::null())
            .spawn()
            .expect("agent"),
    );
    let start = Instant::now();
    let metrics_bytes = loop {
        // Ready once the first pass is rendered (the groups are in /metrics).
        if let Some(n) = get(&addr, "/metrics").filter(|n| *n > 100_000) {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "agent not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(2));
    let pid = agent.0.id();
    let t0 = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(idle);
    let used = (cpu_ticks(pid) - t0.0) as f64 / ticks_per_second();
    let idle_cpu = used / t0.1.elapsed().as_secs_f64() * 100.0;
    let (rss_kib, hwm_kib) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    drop(agent);
    Row {
        host: host.to_string(),
        groups,
        pass,
        render,
        idle_cpu,
        rss_kib,
        hwm_kib,
        metrics_bytes,
    }
}

/// The large trees hold ~200,000 small files, each written by write + rename: on a disk
/// filesystem under load that took over 10 minutes; on tmpfs (`/dev/shm`) it takes seconds.
fn large_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

fn large_main() {
    let idle = Duration::from_secs(
        std::env::var("LARGE_IDLE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let mut rows = Vec::new();
    {
        let dir = large_dir();
        let tree = SysTree::new(dir.path()).expect("tree");
        let t = Instant::now();
        build_tree(&tree, LARGE_NICS, LARGE_NICS / SLAVES).expect("tree");
        eprintln!("{LARGE_NICS}-NIC tree written in {:?}", t.elapsed());
        let sys = dir.path().join("sys").display().to_string();
        let args: Vec<String> = [
            "--collector.disable-defaults",
            "--collector.net",
            "--path.sysfs",
            &sys,
        ]
        .map(String::from)
        .to_vec();
        rows.push(measure(
            &format!(
                "{LARGE_NICS} NICs in {} bonds of {SLAVES}",
                LARGE_NICS / SLAVES
            ),
            &args,
            "net",
            idle,
        ));
    }
    {
        let dir = large_dir();
        let t = Instant::now();
        build_md(dir.path(), LARGE_ARRAYS);
        eprintln!("{LARGE_ARRAYS}-array tree written in {:?}", t.elapsed());
        let sys = dir.path().join("sys").display().to_string();
        let proc_ = dir.path().join("proc").display().to_string();
        let args: Vec<String> = [
            "--collector.disable-defaults",
            "--collector.md",
            "--path.sysfs",
            &sys,
            "--path.procfs",
            &proc_,
        ]
        .map(String::from)
        .to_vec();
        rows.push(measure(
            &format!("{LARGE_ARRAYS} md RAID1 arrays of 2"),
            &args,
            "md",
            idle,
        ));
    }
    let mut report = format!(
        "Agent (idle CPU and RSS; pass times are this bench's in-process build): {}.\n\
         Machine: {} cores, `cargo bench --bench scale -- --large` (release profile), {}, load average {}.\n\n\
         | host | groups | pass p50 (max of 5) | of which evaluate + render, p50 | agent CPU while idle, {} s | RSS (peak) | `/metrics` |\n|---|---|---|---|---|---|---|\n",
        agent_label(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        humantime::format_rfc3339_seconds(SystemTime::now()),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
        idle.as_secs(),
    );
    for r in &rows {
        report.push_str(&format!(
            "| {} | {} | {:.0} ms ({:.0} ms) | {:.0} ms | {:.1} % of a core | {:.1} MiB ({:.1} MiB) | {:.1} MiB |\n",
            r.host,
            r.groups,
            r.pass[r.pass.len() / 2].as_secs_f64() * 1e3,
            r.pass.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            r.render[r.render.len() / 2].as_secs_f64() * 1e3,
            r.idle_cpu,
            r.rss_kib as f64 / 1024.0,
            r.hwm_kib as f64 / 1024.0,
            r.metrics_bytes as f64 / 1024.0 / 1024.0,
        ));
    }
    println!("{report}");
    write_section("large", &report);
}
