//! Hidden single points of failure (issue 11): failure domains on fixture trees, capacity-true
//! power redundancy on a PMBus fixture, and LLDP from real lldpd daemons in network
//! namespaces (two veths to one switch chassis vs one to each of two).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::link_events::{get_metrics, ip, net_agent_in, Agent, Netns};
use crate::support::*;

fn effective(text: &str, group: &str, kind: &str) -> Option<f64> {
    metric_value(
        text,
        &format!("sparewatch_group_effective_spare{{group=\"{group}\",kind=\"{kind}\"}}"),
    )
}

fn spare(text: &str, group: &str, kind: &str) -> Option<f64> {
    metric_value(
        text,
        &format!("sparewatch_group_spare{{group=\"{group}\",kind=\"{kind}\"}}"),
    )
}

fn state_is(text: &str, group: &str, kind: &str, state: &str) -> bool {
    metric_value(
        text,
        &format!("sparewatch_group_state{{group=\"{group}\",kind=\"{kind}\",state=\"{state}\",by_design=\"false\"}}"),
    ) == Some(1.0)
}

/// Collects a fixture once, checks the text with promtool and against its golden file.
fn scenario(name: &str, collectors: &[&str]) -> (sparewatch::snapshot::Snapshot, String) {
    let snap = snapshot(name, collectors);
    let text = normalized_metrics(&snap);
    promtool_check_metrics(&String::from_utf8_lossy(&snap.metrics_text));
    assert_golden(name, &text);
    (snap, text)
}

#[test]
fn bond_on_one_dual_port_card_has_no_effective_spare() {
    let (_, text) = scenario("domains-bond-one-card", &["net"]);
    assert!(state_is(&text, "bond:bond0", "bond", "redundant"), "{text}");
    assert_eq!(spare(&text, "bond:bond0", "bond"), Some(1.0));
    assert_eq!(effective(&text, "bond:bond0", "bond"), Some(0.0), "{text}");
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_failure_domain_shared_members{group=\"bond:bond0\",kind=\"bond\",domain_kind=\"card\",domain=\"0000:3b:00\"}"
        ),
        Some(2.0),
        "{text}"
    );
    // No lldpd in a fixture: the switch is unknown, not independent.
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_member_failure_domain_info{group=\"bond:bond0\",kind=\"bond\",member=\"eth0\",domain_kind=\"switch\",domain=\"unknown\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn bond_on_two_cards_keeps_effective_equal_to_spare() {
    let (_, text) = scenario("domains-bond-two-cards", &["net"]);
    assert_eq!(spare(&text, "bond:bond0", "bond"), Some(1.0));
    assert_eq!(effective(&text, "bond:bond0", "bond"), Some(1.0), "{text}");
    assert!(!text.contains("sparewatch_group_failure_domain_shared_members{"));
    for (m, card) in [("eth0", "0000:3b:00"), ("eth1", "0000:5e:00")] {
        assert_eq!(
            metric_value(
                &text,
                &format!("sparewatch_member_failure_domain_info{{group=\"bond:bond0\",kind=\"bond\",member=\"{m}\",domain_kind=\"card\",domain=\"{card}\"}}")
            ),
            Some(1.0),
            "{text}"
        );
    }
}

#[test]
fn md_mirror_of_two_partitions_of_one_disk_has_no_effective_spare() {
    let (_, text) = scenario("domains-md-one-disk", &["md"]);
    assert!(state_is(&text, "md:md0", "md", "redundant"), "{text}");
    assert_eq!(spare(&text, "md:md0", "md"), Some(1.0));
    assert_eq!(effective(&text, "md:md0", "md"), Some(0.0), "{text}");
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_failure_domain_shared_members{group=\"md:md0\",kind=\"md\",domain_kind=\"disk\",domain=\"sdb\"}"
        ),
        Some(2.0),
        "{text}"
    );
    // Both partitions also hang off one AHCI controller: exported, but for md a shared
    // hba is accepted by default (docs/failure-domains.md).
    let hba_shared = "sparewatch_group_failure_domain_shared_members{group=\"md:md0\",kind=\"md\",domain_kind=\"hba\",domain=\"0000:00:1f.2\"}";
    assert_eq!(metric_value(&text, hba_shared), None, "{text}");
    assert!(
        text.contains("member=\"sdb1\",domain_kind=\"hba\",domain=\"0000:00:1f.2\"} 1"),
        "{text}"
    );
    // The group's own (empty) accept list replaces the default: the hba counts again.
    let text = with_config(
        "domains-md-one-disk",
        "--collector.md",
        "groups:\n  \"md:md0\":\n    accept_shared_domains: []\n",
    );
    assert_eq!(metric_value(&text, hba_shared), Some(2.0), "{text}");
}

/// One collection of fixture `name` with one collector and a config file.
fn with_config(name: &str, collector: &str, yaml: &str) -> String {
    let dir = fixture(name);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("config.yml");
    std::fs::write(&cfg, yaml).expect("config");
    let mut args = vec![
        "sparewatch".to_string(),
        "--collector.disable-defaults".into(),
        collector.into(),
        "--config.file".into(),
        cfg.display().to_string(),
    ];
    args.extend(fixture_args(&dir));
    let snap = sparewatch::collect_with_args(args, fixed_now()).expect("collects");
    String::from_utf8_lossy(&snap.metrics_text).into_owned()
}

#[test]
fn two_800w_psus_at_1100w_are_not_redundant() {
    let (snap, text) = scenario("domains-psu-capacity", &["hwmon"]);
    assert!(
        state_is(&text, "psu:pmbus", "psu", "no_redundancy"),
        "{text}"
    );
    // By count it would be redundant: both supplies are healthy.
    assert_eq!(spare(&text, "psu:pmbus", "psu"), Some(1.0));
    assert_eq!(
        metric_value(
            &text,
            "sparewatch_group_power_capacity_sufficient{group=\"psu:pmbus\",kind=\"psu\"}"
        ),
        Some(0.0)
    );
    let g = snap
        .groups
        .iter()
        .find(|g| g.name == "psu:pmbus")
        .expect("psu group");
    let reasons = g.reasons();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("load 1100 W > 800 W left after losing ")),
        "{reasons:?}"
    );
}

/// The per-group opt-out: a shared card accepted by design leaves the effective spare alone.
#[test]
fn an_accepted_shared_domain_does_not_lower_the_effective_spare() {
    let run = |yaml: &str| with_config("domains-bond-one-card", "--collector.net", yaml);
    let text =
        run("groups:\n  \"bond:bond0\":\n    accept_shared_domains: [\"card:0000:3b:00\"]\n");
    assert_eq!(effective(&text, "bond:bond0", "bond"), Some(1.0), "{text}");
    let text =
        run("groups:\n  \"bond:bond0\":\n    accept_shared_domains: [\"card:0000:aa:00\"]\n");
    assert_eq!(effective(&text, "bond:bond0", "bond"), Some(0.0), "{text}");
}

// ---------------------------------------------------------------------------------------
// lldpd in network namespaces

fn lldp_tool(name: &str) -> &'static str {
    let path = match name {
        "lldpd" => "/usr/sbin/lldpd",
        _ => "/usr/sbin/lldpcli",
    };
    assert!(
        Path::new(path).exists(),
        "{path} not found: install the Debian package lldpd (scripts/test does)"
    );
    path
}

fn netns(tag: &str) -> Netns {
    let name = format!("swd-{tag}-{}", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    ip(&["netns", "add", &name]);
    ip(&["-n", &name, "link", "set", "lo", "up"]);
    Netns(name)
}

/// A veth from `a` (named `an`) to `b` (named `bn`), both up.
fn veth(a: &str, an: &str, b: &str, bn: &str) {
    ip(&[
        "-n", a, "link", "add", an, "type", "veth", "peer", "name", bn, "netns", b,
    ]);
    ip(&["-n", a, "link", "set", an, "up"]);
    ip(&["-n", b, "link", "set", bn, "up"]);
}

/// One lldpd in the foreground in namespace `ns`, on `ifaces`, with its own socket; what it
/// logs is appended to `SOCK.log` (printed when the test fails).
fn lldpd(ns: &str, sock: &Path, ifaces: &str) -> Agent {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sock.with_extension("log"))
        .expect("lldpd log file");
    Agent(
        Command::new("ip")
            .args(["netns", "exec", ns, lldp_tool("lldpd"), "-d", "-u"])
            .arg(sock)
            .args(["-I", ifaces])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starts lldpd"),
    )
}

/// Waits (up to 10 s) until the lldpd behind `sock` answers.
fn wait_for_lldpd(sock: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if lldpcli(sock, &["-f", "keyvalue", "show", "statistics"]).contains(".tx.tx=") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What every lldpd of the test logged, for a failure message.
fn lldpd_logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["a.log", "b.log", "srv.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        out.push_str(&format!("--- lldpd {name}:\n{text}\n"));
    }
    out
}

fn lldpcli(sock: &Path, args: &[&str]) -> String {
    let out = Command::new(lldp_tool("lldpcli"))
        .arg("-u")
        .arg(sock)
        .args(args)
        .output()
        .expect("runs lldpcli");
    // Its complaints (socket unreachable, daemon gone) go into what the test prints on failure.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn links_to_one_lldpd_chassis_share_a_switch_and_to_two_do_not() {
    let srv = netns("srv");
    let swa = netns("swa");
    let swb = netns("swb");
    let (s, a, b) = (srv.0.as_str(), swa.0.as_str(), swb.0.as_str());
    // link:same: s0, s1 both to switch A. link:split: s2 to switch A, s3 to switch B.
    veth(s, "s0", a, "a0");
    veth(s, "s1", a, "a1");
    veth(s, "s2", a, "a2");
    veth(s, "s3", b, "b0");
    // lldpcli is set-uid _lldpd: every directory above its socket must be searchable by that
    // user. $TMPDIR may sit under a 0700 directory (a CI's work dir did), so the sockets live
    // in a directory of their own under /run, which is 0755 on every Linux.
    let tmp = tempfile::Builder::new()
        .prefix("sparewatch-lldp-")
        .tempdir_in("/run")
        .expect("tempdir in /run");
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (srv_sock, a_sock, b_sock) = (
        tmp.path().join("srv.sock"),
        tmp.path().join("a.sock"),
        tmp.path().join("b.sock"),
    );
    let specs = [
        (a, &a_sock, "a0,a1,a2"),
        (b, &b_sock, "b0"),
        (s, &srv_sock, "s0,s1,s2,s3"),
    ];
    // Started one at a time, each once its socket answers: three started at the same moment
    // left one, about one run in four, listing its interfaces but neither sending nor
    // receiving on them (`show statistics`: tx stuck at 0 or 1, rx 0) for good. Should one
    // wedge all the same, or exit, all three are started again after 5 s.
    let start_all = |daemons: &mut Vec<Agent>| {
        daemons.clear(); // killed first: a new lldpd refuses a socket still in use
        for (ns, sock, ifaces) in &specs {
            daemons.push(lldpd(ns, sock, ifaces));
            wait_for_lldpd(sock);
        }
    };
    let mut daemons: Vec<Agent> = Vec::new();
    start_all(&mut daemons);
    let mut started = Instant::now();
    let mut restarts = 0;
    // Name the switches and make them send now (the default interval is 30 s), until the
    // server's lldpd has seen a neighbour on all four links.
    let start = Instant::now();
    loop {
        let exited = daemons
            .iter_mut()
            .any(|d| matches!(d.0.try_wait(), Ok(Some(_))));
        if exited || started.elapsed() > Duration::from_secs(5) {
            start_all(&mut daemons);
            started = Instant::now();
            restarts += 1;
        }
        for (sock, name) in [(&a_sock, "sw-a"), (&b_sock, "sw-b")] {
            lldpcli(sock, &["configure", "system", "hostname", name]);
            lldpcli(sock, &["update"]);
        }
        std::thread::sleep(Duration::from_millis(500));
        let seen = lldpcli(&srv_sock, &["-f", "json0", "show", "neighbors"]);
        if ["s0", "s1", "s2", "s3"]
            .iter()
            .all(|i| seen.contains(&format!("\"name\": \"{i}\"")))
            && seen.contains("sw-b")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "lldpd did not see all four neighbours within 90 s:\n{seen}\n{}\n{}",
            [&a_sock, &b_sock, &srv_sock]
                .iter()
                .map(|s| format!(
                    "--- {}: {}",
                    s.display(),
                    lldpcli(s, &["show", "statistics"])
                ))
                .collect::<String>(),
            lldpd_logs(tmp.path())
        );
    }
    let cfg = tmp.path().join("sparewatch.yml");
    std::fs::write(
        &cfg,
        format!(
            "collectors:\n  net:\n    interval: 1s\n    lldp:\n      socket: {}\n    groups:\n      - name: same\n        members: [s0, s1]\n      - name: split\n        members: [s2, s3]\n",
            srv_sock.display()
        ),
    )
    .expect("config");
    let _agent = net_agent_in(s, &cfg);
    // The client must be in the server namespace too (the agent listens on its loopback).
    let netns_file = std::fs::File::open(format!("/run/netns/{s}")).expect("netns file");
    let text = std::thread::spawn(move || {
        nix::sched::setns(&netns_file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let start = Instant::now();
        loop {
            if let Some(t) = get_metrics() {
                if effective(&t, "link:same", "link").is_some()
                    && effective(&t, "link:split", "link").is_some()
                {
                    return t;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no effective spare on /metrics within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .join()
    .expect("client thread");
    let chassis_a = lldpcli(&a_sock, &["-f", "json0", "show", "chassis"]);
    assert!(state_is(&text, "link:same", "link", "redundant"), "{text}");
    assert_eq!(spare(&text, "link:same", "link"), Some(1.0));
    assert_eq!(effective(&text, "link:same", "link"), Some(0.0), "{text}");
    assert_eq!(effective(&text, "link:split", "link"), Some(1.0), "{text}");
    let shared = text
        .lines()
        .find(|l| {
            l.starts_with("sparewatch_group_failure_domain_shared_members{group=\"link:same\"")
        })
        .unwrap_or_else(|| panic!("no shared domain for link:same:\n{text}"));
    assert!(shared.contains("domain_kind=\"switch\""), "{shared}");
    // The shared domain is switch A's chassis ID, as its own lldpd states it.
    let id = shared
        .split("domain=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default();
    assert!(
        !id.is_empty() && chassis_a.contains(id),
        "{id} is not sw-a's chassis:\n{chassis_a}"
    );
    println!(
        "lldpd lab: link:same shares switch {id}; link:split has effective spare 1 (lldpd started again {restarts} times)"
    );
}

/// `sparewatch status` shows the effective spare and the shared domain beside the spare.
#[test]
fn status_names_the_shared_domain() {
    let dir = fixture("domains-bond-one-card");
    let mut args: Vec<String> = vec![
        "status".into(),
        "--collector.disable-defaults".into(),
        "--collector.net".into(),
    ];
    args.extend(fixture_args(&dir));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sparewatch(&refs);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 (effective 0: card 0000:3b:00)"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
