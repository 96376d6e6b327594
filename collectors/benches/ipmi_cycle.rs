//! One full cycle of the ipmi collector against a real BMC simulator (`ipmi_sim`, RMCP+),
//! next to FreeIPMI's `ipmi-sensors` and `ipmitool sdr elist` reading the same sensors.
//!
//! Run: `cargo bench -p sparewatch-collectors --bench ipmi_cycle`
//! (add `-- --write docs/benchmarks.md` to replace the section between the
//! `<!-- bench:ipmi -->` markers there). Needs openipmi, ipmitool, freeipmi-tools.

#[allow(dead_code)]
#[path = "../../tests/it/ipmi/sim.rs"]
mod sim;

use std::process::Command;
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
