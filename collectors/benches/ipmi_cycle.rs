//! One full cycle of the ipmi collector against a real BMC simulator (`ipmi_sim`, RMCP+),
//! next to FreeIPMI's `ipmi-sensors` and `ipmitool sdr elist` reading the same sensors.
//!
//! Also, on the same simulator: Prometheus' ipmi_exporter (Debian
//! `prometheus-ipmi-exporter`, FreeIPMI backend) started on a loopback port, with its
//! requests counted by a UDP relay in front of the simulator; and the time from a PSU
//! failure to the collector's reading it through the SEL at default settings.
//!
//! Run: `cargo bench -p sparewatch-collectors --bench ipmi_cycle`
//! (add `-- --write docs/benchmarks.md` to replace the section between the
//! `<!-- bench:ipmi -->` markers there). Needs openipmi, ipmitool, freeipmi-tools.

#[allow(dead_code)]
#[path = "../../tests/it/ipmi/sim.rs"]
mod sim;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use sim::{Sim, PASSWORD, USER};
use sparewatch_collectors::ipmi::IpmiCollector;
use sparewatch_collectors::Collector;

struct Row {
    what: String,
    runs: usize,
    wall: Vec<Duration>,
    cpu: Duration,
    requests: Option<f64>,
}

/// User + system CPU time of this process (`RUSAGE_SELF`) or of its waited-for children
/// (`RUSAGE_CHILDREN`), through nix's safe getrusage.
fn cpu(who: UsageWho) -> Duration {
    let u = getrusage(who).unwrap_or_else(|e| panic!("getrusage({who:?}): {e}"));
    let tv = |t: TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn median_p95(v: &[Duration]) -> (Duration, Duration) {
    let mut s = v.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn run_tool(program: &str, args: &[String]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} failed: {out:?}");
}

/// A UDP relay on loopback in front of the simulator that counts the datagrams clients
/// send (one per IPMI request or session set-up message). Its threads end with the bench.
fn counting_relay(bmc_port: u16) -> (u16, Arc<AtomicU64>) {
    let front = UdpSocket::bind("127.0.0.1:0").expect("relay socket");
    let port = front.local_addr().expect("addr").port();
    let sent = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&sent);
    std::thread::spawn(move || {
        // One back socket per client address, so answers go to the right client.
        let mut backs: std::collections::HashMap<std::net::SocketAddr, UdpSocket> =
            std::collections::HashMap::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            count.fetch_add(1, Ordering::Relaxed);
            let back = backs.entry(from).or_insert_with(|| {
                let b = UdpSocket::bind("127.0.0.1:0").expect("back socket");
                b.connect(("127.0.0.1", bmc_port)).expect("connect");
                let (b2, f2) = (
                    b.try_clone().expect("clone"),
                    front.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    while let Ok(n) = b2.recv(&mut buf) {
                        let _ = f2.send_to(&buf[..n], from);
                    }
                });
                b
            });
            let _ = back.send(&buf[..n]);
        }
    });
    (port, sent)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime + the waited-for children's (cutime + cstime) of a process.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().expect("number"))
        .collect();
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    Duration::from_secs_f64(f.iter().sum::<u64>() as f64 / ticks)
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.1 200")
        .then(|| body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))
        .flatten()
}

/// ipmi_exporter scraping the simulator through the relay, at its default collectors.
fn ipmi_exporter(sim: &Sim, rows: &mut Vec<Row>) -> Option<Duration> {
    let bin = [
        "/usr/bin/prometheus-ipmi-exporter",
        "/usr/bin/ipmi_exporter",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        eprintln!("ipmi_exporter not measured: install the Debian package prometheus-ipmi-exporter (apt-get install --no-install-recommends prometheus-ipmi-exporter)");
        return None;
    };
    let (relay, sent) = counting_relay(sim.lan_port);
    let cfg = sim.dir.path().join("ipmi_exporter.yml");
    // The simulator needs FreeIPMI's opensesspriv workaround (as in the tests); nothing else
    // differs from the exporter's defaults.
    std::fs::write(
        &cfg,
        format!("modules:\n  default:\n    user: {USER}\n    pass: {PASSWORD}\n    driver: LAN_2_0\n    privilege: admin\n    workaround_flags: [opensesspriv]\n"),
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let exporter = Proc(
        Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ipmi_exporter"),
    );
    let path = format!("/ipmi?target=127.0.0.1:{relay}&module=default");
    let start = Instant::now();
    let first = loop {
        if let Some(t) = http_get(&addr, &path) {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "ipmi_exporter not answering"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        first.contains("ipmi_sensor_state") || first.contains("ipmi_up"),
        "{first}"
    );
    let n = 20;
    let (cpu0, sent0) = (proc_cpu(exporter.0.id()), sent.load(Ordering::Relaxed));
    let mut wall = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        http_get(&addr, &path).expect("scrape");
        wall.push(t.elapsed());
    }
    // Children are reaped by the time the scrape answered.
    let cpu = proc_cpu(exporter.0.id()) - cpu0;
    rows.push(Row {
        what: "ipmi_exporter 1.6 (FreeIPMI, default collectors), one scrape".into(),
        runs: n,
        wall: wall.clone(),
        cpu,
        requests: Some((sent.load(Ordering::Relaxed) - sent0) as f64 / n as f64),
    });
    Some(median_p95(&wall).0)
}

/// PSU failure → the collector's reading, at default settings (SEL polled every second,
/// interval 15 s), driven like the agent's scheduler: a wake runs a pass at once.
fn sel_detection(sim: &Sim, trials: usize) -> Vec<Duration> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let mut c = sim.collector();
    c.watch(sparewatch_collectors::Wake::new(move || {
        let _ = tx.try_send(());
    }))
    .expect("watch");
    let psu2_failed = |col: &sparewatch_collectors::Collection| {
        col.groups.iter().any(|g| {
            g.members.iter().any(|m| {
                m.name == "PSU2"
                    && matches!(m.health, sparewatch_collectors::MemberHealth::Unhealthy(_))
            })
        })
    };
    c.collect().expect("first pass");
    std::thread::sleep(Duration::from_millis(1500));
    let mut out = Vec::new();
    for i in 0..trials {
        while rx.try_recv().is_ok() {
            c.collect().expect("pass");
        }
        // A different phase against the 1 s SEL poll each time.
        std::thread::sleep(Duration::from_millis(1000 + 97 * i as u64));
        let t0 = Instant::now();
        sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 1 1"]);
        loop {
            let interval = Duration::from_secs(15).saturating_sub(t0.elapsed());
            let _ = rx.recv_timeout(interval);
            if psu2_failed(&c.collect().expect("pass")) {
                out.push(t0.elapsed());
                break;
            }
        }
        sim.cmd(&["sensor_set_bit 0x20 0 0x12 1 0 1"]);
        std::thread::sleep(Duration::from_millis(1500));
    }
    out
}

fn main() {
    let write_to = std::env::args().skip_while(|a| a != "--write").nth(1);
    let sim = Sim::start();
    let mut rows = Vec::new();

    // sparewatch, warm: session open, SDRs cached — the steady state of the agent.
    let mut c = IpmiCollector::new(vec![sim.bmc(Duration::from_secs(2), 1)]);
    c.collect().expect("first collection");
    let req0 = c.bmcs()[0].stats().requests;
    let n = 300;
    let cpu0 = cpu(UsageWho::RUSAGE_SELF);
    let mut wall = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let col = c.collect().expect("collects");
        wall.push(t.elapsed());
        assert_eq!(col.groups.len(), 2);
    }
    assert_eq!(c.bmcs()[0].sdr_reads(), 1, "SDR cache not used");
    rows.push(Row {
        what: "sparewatch ipmi collector, one cycle (session open, SDRs cached)".into(),
        runs: n,
        wall,
        cpu: cpu(UsageWho::RUSAGE_SELF) - cpu0,
        requests: Some((c.bmcs()[0].stats().requests - req0) as f64 / n as f64),
    });

    // sparewatch, cold: login + whole SDR repository + readings (agent start).
    let n = 30;
    let cpu0 = cpu(UsageWho::RUSAGE_SELF);
    let mut wall = Vec::with_capacity(n);
    let mut requests = 0;
    for _ in 0..n {
        let mut c = IpmiCollector::new(vec![sim.bmc(Duration::from_secs(2), 1)]);
        let t = Instant::now();
        c.collect().expect("collects");
        wall.push(t.elapsed());
        requests += c.bmcs()[0].stats().requests;
    }
    rows.push(Row {
        what: "sparewatch ipmi collector, first cycle (login, SDR read, readings)".into(),
        runs: n,
        wall,
        cpu: cpu(UsageWho::RUSAGE_SELF) - cpu0,
        requests: Some(requests as f64 / n as f64),
    });

    // FreeIPMI with a warm SDR cache (it logs in on every run: it is a one-shot tool).
    let cache = sim.dir.path().join("bench-freeipmi-cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let fi_args: Vec<String> = [
        "-h".to_string(),
        format!("127.0.0.1:{}", sim.lan_port),
        "-u".into(),
        USER.into(),
        "-p".into(),
        PASSWORD.into(),
        "-D".into(),
        "LAN_2_0".into(),
        "-l".into(),
        "ADMIN".into(),
        "-W".into(),
        "opensesspriv".into(),
        "--quiet-cache".into(),
        format!("--sdr-cache-directory={}", cache.display()),
        "--output-sensor-state".into(),
    ]
    .to_vec();
    let fi = sim::need("ipmi-sensors", "freeipmi-tools");
    let fi = fi.to_str().expect("utf-8");
    run_tool(fi, &fi_args);
    let tool_rows = [
        (
            "FreeIPMI ipmi-sensors (process, login, SDR cache warm)",
            fi.to_string(),
            fi_args,
        ),
        (
            "ipmitool -I lanplus -C 3 sdr elist (process, login, reads SDRs)",
            sim::need("ipmitool", "ipmitool")
                .to_str()
                .expect("utf-8")
                .to_string(),
            [
                "-I",
                "lanplus",
                "-C",
                "3",
                "-H",
                "127.0.0.1",
                "-p",
                &sim.lan_port.to_string(),
                "-U",
                USER,
                "-P",
                PASSWORD,
                "sdr",
                "elist",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    for (what, program, args) in tool_rows {
        let n = 30;
        let cpu0 = cpu(UsageWho::RUSAGE_CHILDREN);
        let mut wall = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            run_tool(&program, &args);
            wall.push(t.elapsed());
        }
        rows.push(Row {
            what: what.into(),
            runs: n,
            wall,
            cpu: cpu(UsageWho::RUSAGE_CHILDREN) - cpu0,
            requests: None,
        });
    }

    let exporter_scrape = ipmi_exporter(&sim, &mut rows);
    let detect = sel_detection(&sim, 10);

    let sensors = c.bmcs()[0].records().len();
    let mut md = format!(
        "Simulator: `ipmi_sim` (OpenIPMI) on loopback, RMCP+ cipher suite 3, {sensors} sensors \
         (tests/lab/ipmi_sim). Wall time per cycle; CPU = user + system of the reader \
         (this process, or the tool's processes) per cycle.\n\n\
         | what | runs | median ms | p95 ms | CPU ms/cycle | IPMI requests/cycle |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    for r in &rows {
        let (med, p95) = median_p95(&r.wall);
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.what,
            r.runs,
            ms(med),
            ms(p95),
            ms(r.cpu / r.runs as u32),
            r.requests.map(|x| format!("{x:.0}")).unwrap_or("–".into())
        );
    }
    let (d50, _) = median_p95(&detect);
    let dmax = detect.iter().max().copied().unwrap_or_default();
    md += &format!(
        "\nPSU failure (PSU2 failure bit set on the simulator's console) → the reading: sparewatch at default settings (SEL polled every 1 s, full pass every 15 s), {} trials: median {} ms, max {} ms. ipmi_exporter has no schedule of its own: Prometheus scrapes it at its `scrape_interval` (default 1 m), so the failure shows after 0–60 s plus one scrape ({}): not measured end to end here, derived from the default interval.\n",
        detect.len(),
        ms(d50),
        ms(dmax),
        exporter_scrape
            .map(|d| format!("median {} ms above", ms(d)))
            .unwrap_or_else(|| "not measured: exporter not installed".into()),
    );
    print!("{md}");
    if let Some(path) = write_to {
        const START: &str = "<!-- bench:ipmi -->";
        const END: &str = "<!-- /bench:ipmi -->";
        // cargo runs benches in the package directory: relative paths are the workspace's.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        let doc = std::fs::read_to_string(&path).expect("read the benchmarks doc");
        let (a, rest) = doc.split_once(START).expect("start marker");
        let (_, b) = rest.split_once(END).expect("end marker");
        std::fs::write(&path, format!("{a}{START}\n{md}{END}{b}")).expect("write");
        eprintln!("wrote {}", path.display());
    }
}
