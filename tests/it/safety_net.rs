//! The net collector's stretched safety net on a real kernel (issue 14, "cost follows
//! change"), with the built binary: 800 veth interfaces in a namespace, the net collector
//! on a 1 s interval. A full pass over them takes long enough that the safety-net period
//! (200 × the pass) is above the interval, so the interval passes in between read nothing:
//! the collector's counters say so, not a clock. Events lost while the agent is stopped
//! (SIGSTOP: its rtnetlink socket overflows, ENOBUFS) force a full pass at once.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::link_events::{get_metrics, ip, net_agent_in, Netns};
use crate::support::metric_value;

const PAIRS: usize = 400;
const FULL: &str = "sparewatch_net_full_passes_total";
const SKIPPED: &str = "sparewatch_net_full_passes_skipped_total";
const READ: &str = "sparewatch_net_interfaces_read_total";
const PERIOD: &str = "sparewatch_net_safety_net_period_seconds";

/// (full passes, skipped passes, interfaces read, period in s) from `/metrics`.
fn counters() -> Option<(f64, f64, f64, f64)> {
    let t = get_metrics()?;
    Some((
        metric_value(&t, FULL)?,
        metric_value(&t, SKIPPED)?,
        metric_value(&t, READ)?,
        metric_value(&t, PERIOD)?,
    ))
}

/// Polls until `ok` holds for the counters; returns them.
fn wait(
    what: &str,
    limit: Duration,
    ok: impl Fn((f64, f64, f64, f64)) -> bool,
) -> (f64, f64, f64, f64) {
    let start = Instant::now();
    loop {
        if let Some(c) = counters().filter(|c| ok(*c)) {
            return c;
        }
        assert!(start.elapsed() < limit, "{what} not seen within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill (procps) runs");
    assert!(st.success(), "kill {sig} {pid}");
}

#[test]
fn interval_passes_within_the_period_read_nothing_and_lost_events_force_a_full_pass() {
    let name = format!("sw-it-stretch-{}", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    ip(&["netns", "add", &name]);
    let ns = Netns(name);
    let n = ns.0.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = dir.path().join("links.batch");
    let mut cmds = String::from("link set lo up\n");
    for i in 0..PAIRS {
        cmds += &format!(
            "link add x{i}a type veth peer name x{i}b\nlink set x{i}a up\nlink set x{i}b up\n"
        );
    }
    std::fs::write(&batch, cmds).expect("batch file");
    ip(&["-n", &n, "-batch", batch.to_str().expect("utf-8")]);
    let cfg = dir.path().join("sparewatch.yml");
    std::fs::write(&cfg, "collectors:\n  net:\n    interval: 1s\n").expect("config");
    let agent = net_agent_in(&n, &cfg);
    let pid = agent.0.id();
    let netns_file = std::fs::File::open(format!("/run/netns/{n}")).expect("netns file");
    let ns_name = n.clone();
    std::thread::spawn(move || {
        nix::sched::setns(&netns_file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let interfaces = (2 * PAIRS) as f64;
        let first = wait("the first full pass", Duration::from_secs(60), |c| c.0 >= 1.0);
        assert!(
            first.3 > 2.0,
            "a full pass over {interfaces} interfaces took {} ms: too short for a period above the 1 s interval",
            first.3 * 5.0
        );

        // Idle: interval passes come every second; those within the period read nothing.
        let a = wait("a skipped interval pass", Duration::from_secs(30), |c| {
            c.1 >= 1.0
        });
        let b = wait("three more skipped passes", Duration::from_secs(30), |c| {
            c.1 >= a.1 + 3.0
        });
        assert_eq!(
            b.2 - a.2,
            (b.0 - a.0) * interfaces,
            "between {a:?} and {b:?} something other than full passes read interfaces"
        );
        println!(
            "{interfaces} interfaces: period {:.1} s; {} interval passes skipped, {} full",
            b.3,
            b.1 - a.1,
            b.0 - a.0
        );

        // Right after a periodic full pass the next one is a period away.
        let c = wait("a periodic full pass", Duration::from_secs(700), |c| {
            c.0 > b.0
        });
        let t0 = Instant::now();
        // Stopped, the agent cannot drain its socket: a burst of link changes overflows it.
        signal(pid, "-STOP");
        let mut cmds = String::new();
        for round in 0..2 {
            let state = if round == 0 { "down" } else { "up" };
            for i in 0..PAIRS {
                cmds += &format!("link set x{i}a {state}\n");
            }
        }
        let flaps = std::env::temp_dir().join(format!("sw-it-stretch-{}.batch", pid));
        std::fs::write(&flaps, cmds).expect("batch file");
        ip(&["-n", &ns_name, "-batch", flaps.to_str().expect("utf-8")]);
        let _ = std::fs::remove_file(&flaps);
        signal(pid, "-CONT");
        let d = wait("a full pass after lost events", Duration::from_secs(30), |d| {
            d.0 > c.0
        });
        let took = t0.elapsed();
        assert!(
            took.as_secs_f64() < c.3,
            "the full pass came after {took:?}, not before the period ({} s) ran out: \
             it proves nothing about lost events",
            c.3
        );
        println!(
            "lost events: full pass {:.1} s after the overflow began (period {:.1} s); {d:?}",
            took.as_secs_f64(),
            c.3
        );
    })
    .join()
    .expect("client thread");
    drop(agent);
}
