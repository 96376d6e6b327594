//! The redfish collector against real Redfish services from sushy-tools: `sushy-static`
//! serving mockups in both schema generations (tests/fixtures/redfish, faults injected by
//! rewriting a resource file while the collector runs), over HTTP and HTTPS with a
//! self-signed certificate, and `sushy-emulator` with basic auth (it has no SessionService,
//! so the session login falls back). A BMC stopped with SIGSTOP is tested with the built
//! agent: the collector goes down, the scrape does not wait.

pub mod sushy;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::Rig;
use serde_json::json;
use sparewatch::snapshot::{GroupView, Snapshot};
use sparewatch_collectors::redfish::http::Trust;
use sparewatch_collectors::redfish::{BmcSpec, Password, RedfishCollector};
use sparewatch_collectors::{Collection, Collector, MemberHealth};
use sushy::Sushy;

fn rig() -> Rig {
    Rig::new("redfish", INTERVAL, Duration::from_secs(5))
}

const INTERVAL: Duration = Duration::from_secs(30);

fn gview<'a>(s: &'a Snapshot, name: &str) -> &'a GroupView {
    s.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name} in {:#?}", s.groups))
}

fn text(s: &Snapshot) -> String {
    String::from_utf8_lossy(&s.metrics_text).into_owned()
}

fn spec(name: &str, prefix: &str, url: String, trust: Option<Trust>) -> BmcSpec {
    BmcSpec {
        name: name.into(),
        group_prefix: prefix.into(),
        url,
        user: None,
        password: Password::None,
        trust,
        timeout: Duration::from_secs(2),
        retries: 0,
    }
}

fn collector(s: &Sushy) -> RedfishCollector {
    let trust = s.ca_file.clone().map(Trust::CaFile);
    RedfishCollector::new(vec![spec("bmc", "", s.url(), trust)]).expect("collector")
}

fn health<'a>(c: &'a Collection, group: &str, member: &str) -> &'a MemberHealth {
    &c.groups
        .iter()
        .find(|g| g.name == group)
        .unwrap_or_else(|| panic!("no {group} in {:#?}", c.groups))
        .members
        .iter()
        .find(|m| m.name == member)
        .unwrap_or_else(|| panic!("no {member} in {group}"))
        .health
}

#[test]
fn current_schema_two_psus_redundant_then_one_loses_its_input() {
    let bmc = Sushy::mockup("openbmc-subsystems", false);
    let mut c = collector(&bmc);
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:chassis");
    assert_eq!(
        (psu.state.as_str(), psu.members_total, psu.members_required),
        ("redundant", 2, 1)
    );
    assert_eq!(psu.stated_state.map(|s| s.as_str()), Some("redundant"));
    let fan = gview(&s, "fan:chassis");
    assert_eq!(
        (fan.state.as_str(), fan.members_total, fan.members_required),
        ("redundant", 3, 2)
    );
    let t = text(&s);
    crate::support::promtool_check_metrics(&t);
    assert!(
        t.contains(
            "sparewatch_redfish_fan_speed_rpm{bmc=\"bmc\",chassis=\"chassis\",fan=\"fan1\"} 6300"
        ),
        "{t}"
    );
    assert!(t.contains("sparewatch_redfish_psu_capacity_watts{bmc=\"bmc\",chassis=\"chassis\",psu=\"powersupply0\"} 1000"), "{t}");

    bmc.edit(
        "Chassis/chassis/PowerSubsystem/PowerSupplies/powersupply1",
        |v| {
            v["LineInputStatus"] = json!("LossOfInput");
            v["Status"]["Health"] = json!("Critical");
        },
    );
    bmc.edit("Chassis/chassis/PowerSubsystem", |v| {
        v["PowerSupplyRedundancy"][0]["Status"]["Health"] = json!("Critical");
    });
    let col = c.collect().expect("collects");
    assert!(
        matches!(health(&col, "psu:chassis", "powersupply1"), MemberHealth::Unhealthy(r) if r.contains("LossOfInput"))
    );
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:chassis");
    assert_eq!(
        (psu.state.as_str(), psu.members_healthy, psu.spare),
        ("no_redundancy", 1, 0)
    );
    assert_eq!(gview(&s, "fan:chassis").state, "redundant");
    // Steady state: the tree was walked once, not on every cycle.
    assert!(
        text(&s).contains("sparewatch_redfish_walks_total{bmc=\"bmc\"} 1"),
        "{}",
        text(&s)
    );
}

#[test]
fn deprecated_schema_two_psus_redundant_then_one_loses_its_input() {
    let bmc = Sushy::mockup("idrac-power-thermal", false);
    let mut c = collector(&bmc);
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:System.Embedded.1");
    assert_eq!(
        (psu.state.as_str(), psu.members_total, psu.members_required),
        ("redundant", 2, 1)
    );
    let fan = gview(&s, "fan:System.Embedded.1");
    assert_eq!((fan.state.as_str(), fan.members_required), ("redundant", 3));
    let t = text(&s);
    crate::support::promtool_check_metrics(&t);
    assert!(t.contains("sparewatch_redfish_chassis_power_consumed_watts{bmc=\"bmc\",chassis=\"System.Embedded.1\"} 344"), "{t}");
    assert!(t.contains("sparewatch_redfish_psu_input_watts{bmc=\"bmc\",chassis=\"System.Embedded.1\",psu=\"PSU.Slot.2\"} 190"), "{t}");

    bmc.edit("Chassis/System.Embedded.1/Power", |v| {
        v["PowerSupplies"][1]["LineInputVoltage"] = json!(0);
        v["PowerSupplies"][1]["Status"]["Health"] = json!("Critical");
        v["Redundancy"][0]["Status"]["Health"] = json!("Critical");
    });
    let col = c.collect().expect("collects");
    assert!(
        matches!(health(&col, "psu:System.Embedded.1", "PSU.Slot.2"), MemberHealth::Unhealthy(r) if r.contains("LineInputVoltage"))
    );
    let s = rig.cycle(&mut c, INTERVAL);
    assert_eq!(gview(&s, "psu:System.Embedded.1").state, "no_redundancy");
    assert_eq!(
        gview(&s, "psu:System.Embedded.1")
            .stated_state
            .map(|s| s.as_str()),
        Some("no_redundancy")
    );

    // A fan pulled: Absent is a missing member, 3 of 4 still meet MinNumNeeded 3.
    bmc.edit("Chassis/System.Embedded.1/Thermal", |v| {
        v["Fans"][3]["Status"] = json!({"State": "Absent"});
    });
    let s = rig.cycle(&mut c, INTERVAL);
    let fan = gview(&s, "fan:System.Embedded.1");
    assert_eq!(
        (fan.state.as_str(), fan.members_healthy),
        ("no_redundancy", 3)
    );
}

#[test]
fn cold_standby_psu_is_a_healthy_standby_in_both_generations() {
    let new = Sushy::mockup("openbmc-subsystems", false);
    new.edit(
        "Chassis/chassis/PowerSubsystem/PowerSupplies/powersupply1",
        |v| {
            v["Status"]["State"] = json!("StandbySpare");
        },
    );
    let old = Sushy::mockup("idrac-power-thermal", false);
    old.edit("Chassis/System.Embedded.1/Power", |v| {
        v["PowerSupplies"][1]["Status"]["State"] = json!("StandbySpare");
    });
    for (bmc, group, member) in [
        (&new, "psu:chassis", "powersupply1"),
        (&old, "psu:System.Embedded.1", "PSU.Slot.2"),
    ] {
        let mut c = collector(bmc);
        let s = rig().cycle(&mut c, INTERVAL);
        let g = gview(&s, group);
        assert_eq!(g.state, "redundant", "{group}");
        let m = g.members.iter().find(|m| m.name == member).expect("member");
        assert_eq!((m.role.as_str(), m.healthy), ("standby", true));
    }
}

#[test]
fn https_with_a_self_signed_certificate() {
    let bmc = Sushy::mockup("openbmc-subsystems", true);
    let ca = bmc.ca_file.clone().expect("tls");
    // Through the flags, as an operator would run it.
    let root = tempfile::tempdir().expect("root");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "sparewatch",
            "status",
            "--collector.disable-defaults",
            "--collector.redfish",
            "--path.rootfs",
        ]
        .map(String::from)
        .to_vec();
        a.push(root.path().to_string_lossy().into_owned());
        a.extend(["--redfish.url".to_string(), bmc.url()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let snap = sparewatch::collect_with_args(
        args(&["--redfish.ca-file", ca.to_str().expect("utf-8")]),
        SystemTime::now(),
    )
    .expect("collects");
    assert_eq!(gview(&snap, "psu:chassis").state, "redundant");
    let snap =
        sparewatch::collect_with_args(args(&["--redfish.insecure-skip-verify"]), SystemTime::now())
            .expect("collects");
    assert_eq!(gview(&snap, "psu:chassis").state, "redundant");

    // Another certificate than the BMC's: refused, with a clear error.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let other_file = root.path().join("other.crt");
    std::fs::write(&other_file, other.cert.pem()).expect("write");
    let mut c = RedfishCollector::new(vec![spec(
        "bmc",
        "",
        bmc.url(),
        Some(Trust::CaFile(other_file)),
    )])
    .expect("collector");
    let err = c.collect().expect_err("untrusted").to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Without any trust setting and no system bundle under the root: a configuration
    // error of the collector, naming what is missing.
    let snap = sparewatch::collect_with_args(args(&[]), SystemTime::now()).expect("runs");
    let err = snap.collectors[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("https needs a CA file"), "{err}");
}

#[test]
fn basic_auth_fallback_against_sushy_emulator_and_wrong_password() {
    let bmc = Sushy::emulator("admin", "s3cret pw");
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good");
    std::fs::write(&good, "s3cret pw\n").expect("write");
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "wrong\n").expect("write");
    let with = |file: &Path| {
        let mut s = spec("emu", "", bmc.url(), None);
        s.user = Some("admin".into());
        s.password = Password::File(file.to_path_buf());
        RedfishCollector::new(vec![s]).expect("collector")
    };
    let mut c = with(&good);
    let col = c
        .collect()
        .unwrap_or_else(|e| panic!("collects: {e}\n{}", bmc.log()));
    assert!(col.present);
    assert!(
        col.readings
            .iter()
            .any(|r| r.name == "sparewatch_redfish_bmc_info"
                && r.labels.iter().any(|(k, v)| *k == "auth" && v == "basic")),
        "{:?}",
        col.readings
    );
    let err = with(&bad)
        .collect()
        .expect_err("wrong password")
        .to_string();
    assert!(
        err.contains("401") && err.contains("wrong user or password"),
        "{err}"
    );
}

#[test]
fn garbage_json_costs_only_that_bmc() {
    let a = Sushy::mockup("openbmc-subsystems", false);
    let b = Sushy::mockup("idrac-power-thermal", false);
    let mut c = RedfishCollector::new(vec![
        spec("a", "a/", a.url(), None),
        spec("b", "b/", b.url(), None),
    ])
    .expect("collector");
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    assert_eq!(gview(&s, "psu:a/chassis").state, "redundant");
    assert_eq!(gview(&s, "psu:b/System.Embedded.1").state, "redundant");

    b.write_raw(
        "Chassis/System.Embedded.1/Power",
        b"{\"PowerSupplies\": [ {\"Status\": ",
    );
    let s = rig.cycle(&mut c, INTERVAL);
    assert_eq!(gview(&s, "psu:a/chassis").state, "redundant");
    let broken = gview(&s, "psu:b/System.Embedded.1");
    assert_eq!(broken.state, "unknown");
    // The same members as before, each unknown with the reason.
    let names: Vec<&str> = broken.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["PSU.Slot.1", "PSU.Slot.2"]);
    assert!(broken.members.iter().all(|m| m.unknown));
    assert!(
        broken.members[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("not JSON")),
        "{broken:?}"
    );
    let t = text(&s);
    assert!(t.contains("sparewatch_redfish_bmc_up{bmc=\"b\"} 0"), "{t}");
    assert!(
        t.contains("sparewatch_collector_up{collector=\"redfish\"} 1"),
        "{t}"
    );

    // With that BMC alone, the collector is down with the parse error.
    let mut alone = RedfishCollector::new(vec![spec("b", "", b.url(), None)]).expect("collector");
    let err = alone.collect().expect_err("garbage").to_string();
    assert!(err.contains("not JSON"), "{err}");
}

/// The built agent against a BMC frozen with SIGSTOP: the redfish collector goes down after
/// its request timeout, /metrics keeps answering at once, and it comes back after SIGCONT.
#[test]
fn stopped_bmc_marks_only_the_collector_down_and_the_scrape_does_not_wait() {
    let bmc = Sushy::mockup("openbmc-subsystems", false);
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("sparewatch.yml");
    std::fs::write(&cfg, "collectors:\n  redfish:\n    interval: 1s\n    timeout: 5s\n    request_timeout: 1s\n    retries: 0\n").expect("config");
    let port = crate::support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args([
            "run",
            "--collector.disable-defaults",
            "--collector.redfish",
            "--collector.md",
        ])
        .arg(format!("--path.rootfs={}", dir.path().display()))
        .arg(format!("--path.procfs={}", dir.path().display()))
        .arg(format!("--path.sysfs={}", dir.path().display()))
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--redfish.url", &bmc.url()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let scrape = || -> (String, Duration) {
        use std::io::{Read, Write};
        let t = Instant::now();
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return (String::new(), t.elapsed());
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (out, t.elapsed())
    };
    let wait_for = |needle: &str| -> Option<Duration> {
        let t = Instant::now();
        let mut slowest = Duration::ZERO;
        while t.elapsed() < Duration::from_secs(20) {
            let (text, took) = scrape();
            slowest = slowest.max(took);
            if text.contains(needle) {
                return Some(slowest);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    };
    let up = wait_for("sparewatch_collector_up{collector=\"redfish\"} 1");
    bmc.signal("-STOP");
    let down = up.and_then(|_| wait_for("sparewatch_collector_up{collector=\"redfish\"} 0"));
    let (during, _) = scrape();
    bmc.signal("-CONT");
    let back = down.and_then(|_| wait_for("sparewatch_collector_up{collector=\"redfish\"} 1"));
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(up.is_some(), "redfish never came up: {log}");
    let slowest = down.unwrap_or_else(|| panic!("redfish did not go down on SIGSTOP: {log}"));
    eprintln!("slowest scrape while the BMC was stopped: {slowest:?}");
    // Functional, not a speed target: no scrape waited for the BMC's 1 s request timeout.
    assert!(
        slowest < Duration::from_secs(1),
        "a scrape waited {slowest:?}"
    );
    assert!(
        during.contains("sparewatch_collector_up{collector=\"md\"} 1"),
        "{during}"
    );
    assert!(
        during.contains("sparewatch_group_state{group=\"psu:chassis\",kind=\"psu\",state=\"unknown\",by_design=\"false\"} 1"),
        "{during}"
    );
    assert!(
        back.is_some(),
        "redfish did not come back after SIGCONT: {log}"
    );
}

mod session_service;

fn session_spec(svc: &session_service::SessionService, dir: &Path) -> BmcSpec {
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{}\n", session_service::PASSWORD)).expect("write");
    let mut s = spec("bmc", "", svc.url(), None);
    s.user = Some(session_service::USER.into());
    s.password = Password::File(pw);
    s
}

#[test]
fn session_token_is_reused_renewed_after_401_and_deleted_on_drop() {
    // The OpenBMC mockup advertises the SessionService in Links.Sessions.
    let svc = session_service::SessionService::start("openbmc-subsystems");
    let dir = tempfile::tempdir().expect("dir");
    let mut c = RedfishCollector::new(vec![session_spec(&svc, dir.path())]).expect("collector");
    let mut rig = rig();
    for _ in 0..3 {
        let s = rig.cycle(&mut c, INTERVAL);
        assert_eq!(gview(&s, "psu:chassis").state, "redundant");
    }
    assert_eq!(
        svc.count("POST /redfish/v1/SessionService/Sessions"),
        1,
        "{:?}",
        svc.log()
    );
    assert!(
        svc.log()
            .iter()
            .filter(|l| l.starts_with("GET /redfish/v1/Chassis"))
            .all(|l| l.ends_with("token=token-1")),
        "{:?}",
        svc.log()
    );
    let s = rig.cycle(&mut c, Duration::ZERO);
    assert!(text(&s).contains("auth=\"session\""), "{}", text(&s));

    // The BMC forgets the session (timeout, reset): one 401, one new login, no gap.
    svc.state.lock().expect("state").tokens.clear();
    let s = rig.cycle(&mut c, INTERVAL);
    assert_eq!(gview(&s, "psu:chassis").state, "redundant");
    assert_eq!(svc.count("POST /redfish/v1/SessionService/Sessions"), 2);

    drop(c);
    assert_eq!(
        svc.count("DELETE /redfish/v1/SessionService/Sessions/2 token=token-2"),
        1,
        "{:?}",
        svc.log()
    );
    assert!(svc.state.lock().expect("state").tokens.is_empty());
}

#[test]
fn wrong_password_on_the_session_login_is_a_clear_error() {
    let svc = session_service::SessionService::start("openbmc-subsystems");
    let dir = tempfile::tempdir().expect("dir");
    let mut s = session_spec(&svc, dir.path());
    std::fs::write(dir.path().join("pw"), "nope\n").expect("write");
    s.password = Password::File(dir.path().join("pw"));
    let err = RedfishCollector::new(vec![s])
        .expect("collector")
        .collect()
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("session login") && err.contains("wrong user or password"),
        "{err}"
    );
}

/// The built agent deletes its session when it is stopped with SIGTERM.
#[test]
fn agent_deletes_its_session_on_sigterm() {
    let svc = session_service::SessionService::start("openbmc-subsystems");
    let dir = tempfile::tempdir().expect("dir");
    let spec = session_spec(&svc, dir.path());
    let Password::File(pw) = &spec.password else {
        unreachable!("file")
    };
    let port = crate::support::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(["run", "--collector.disable-defaults", "--collector.redfish"])
        .arg(format!("--path.rootfs={}", dir.path().display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args([
            "--redfish.url",
            &svc.url(),
            "--redfish.user",
            session_service::USER,
        ])
        .arg(format!("--redfish.password-file={}", pw.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let t = Instant::now();
    while svc.count("GET /redfish/v1/Chassis/chassis/ThermalSubsystem/Fans/fan2") == 0
        && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        svc.count("POST /redfish/v1/SessionService/Sessions"),
        1,
        "{:?}\n{log}",
        svc.log()
    );
    assert_eq!(
        svc.count("DELETE /redfish/v1/SessionService/Sessions/1 token=token-1"),
        1,
        "{:?}\n{log}",
        svc.log()
    );
}

/// The demo's power steps, read by the real redfish and ups collectors from the demo's
/// loopback BMC and NUT server: PSU2 losing its input, the UPS on battery, and back.
#[test]
fn demo_story_power_steps() {
    use sparewatch::demo::{build_server, STORY};
    use sparewatch::fixture::SysTree;
    use sparewatch_collectors::ups::{Settings, UpsCollector};
    let dir = tempfile::tempdir().expect("tmp");
    let tree = SysTree::new(dir.path()).expect("tree");
    build_server(&tree).expect("server");
    let servers = sparewatch::demo_power::start(dir.path()).expect("servers");
    let mut rf = RedfishCollector::new(vec![spec(
        "demo-bmc",
        "",
        servers.redfish_url.clone(),
        None,
    )])
    .expect("collector");
    let mut ups = UpsCollector::new(
        vec![servers.nut_address.clone()],
        false,
        Settings {
            user: None,
            password: Password::None,
            timeout: Duration::from_secs(2),
            limits: Default::default(),
            feeds: Default::default(),
        },
    );
    let (mut rr, mut ur) = (rig(), Rig::new("ups", INTERVAL, Duration::from_secs(5)));
    // Two cycles per step: a recovery counts once it outlasted the hold-down.
    let mut states = |rf: &mut RedfishCollector, ups: &mut UpsCollector| {
        rr.cycle(rf, INTERVAL);
        ur.cycle(ups, INTERVAL);
        (
            gview(&rr.cycle(rf, INTERVAL), "psu:1")
                .state
                .as_str()
                .to_string(),
            gview(&ur.cycle(ups, INTERVAL), "ups:ups-a")
                .state
                .as_str()
                .to_string(),
        )
    };
    let want = |p: &str, u: &str| (p.to_string(), u.to_string());
    assert_eq!(states(&mut rf, &mut ups), want("redundant", "redundant"));
    let mut seen = Vec::new();
    for step in STORY
        .iter()
        .filter(|s| s.says.starts_with("Redfish BMC") || s.says.starts_with("UPS "))
    {
        (step.apply)(&tree).expect("step applies");
        seen.push(states(&mut rf, &mut ups));
    }
    assert_eq!(
        seen,
        vec![
            want("no_redundancy", "redundant"),
            want("redundant", "redundant"),
            want("redundant", "no_redundancy"),
            want("redundant", "redundant"),
        ]
    );
}

/// IPMI and Redfish reading the same OpenBMC chassis (docs/collectors/redfish.md, "IPMI and
/// Redfish on one host"): both name the PSU group `psu:chassis`, only one collector's group
/// is kept (ipmi's, by the collector table's order); `--no-collector.ipmi`, the documented
/// pick, gives Redfish's, also after `--collector.ipmi`.
#[test]
fn ipmi_and_redfish_on_one_openbmc_chassis_pick_one_with_no_collector_ipmi() {
    let sim = crate::ipmi::sim::Sim::start();
    let bmc = Sushy::mockup("openbmc-subsystems", false);
    let root = tempfile::tempdir().expect("tmp");
    let run = |extra: &[&str]| -> Snapshot {
        let mut args: Vec<String> = [
            "sparewatch",
            "status",
            "--collector.disable-defaults",
            "--collector.ipmi",
            "--collector.redfish",
            "--ipmi.cipher-suite",
            "3",
            "--path.rootfs",
            root.path().to_str().expect("utf-8"),
        ]
        .map(String::from)
        .to_vec();
        args.extend(sim.flags());
        args.extend(["--redfish.url".to_string(), bmc.url()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        sparewatch::collect_with_args(args, std::time::SystemTime::now()).expect("collects")
    };
    let members = |g: &GroupView| -> Vec<String> {
        let mut m: Vec<String> = g.members.iter().map(|m| m.name.clone()).collect();
        m.sort();
        m
    };

    let both = run(&[]);
    for name in ["ipmi", "redfish"] {
        let c = both
            .collectors
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert!(c.present && c.up, "{name}: {c:?}");
    }
    let psu: Vec<&GroupView> = both
        .groups
        .iter()
        .filter(|g| g.name == "psu:chassis")
        .collect();
    assert_eq!(psu.len(), 1, "one group per name: {psu:?}");
    assert_eq!(psu[0].collector, "ipmi", "{psu:?}");

    let picked = run(&["--no-collector.ipmi"]);
    assert!(
        picked
            .collectors
            .iter()
            .all(|c| c.name != "ipmi" || !c.present),
        "{:?}",
        picked.collectors
    );
    let g = gview(&picked, "psu:chassis");
    assert_eq!(g.collector, "redfish");
    assert_eq!(members(g), ["powersupply0", "powersupply1"]);
    assert_ne!(
        members(psu[0]),
        members(g),
        "the two name their members apart"
    );
}

/// Issue 11: the deprecated-schema mockup turned into two 800 W supplies delivering 550 W
/// each (`LastPowerOutputWatts`): redundant by count, `no_redundancy` by capacity, with the
/// reason; back under the rating, the count decides again.
#[test]
fn two_800w_psus_at_1100w_are_no_redundancy_with_the_reason() {
    let bmc = Sushy::mockup("idrac-power-thermal", false);
    bmc.edit("Chassis/System.Embedded.1/Power", |v| {
        for i in 0..2 {
            v["PowerSupplies"][i]["PowerCapacityWatts"] = json!(800);
            v["PowerSupplies"][i]["LastPowerOutputWatts"] = json!(550);
        }
    });
    let mut c = collector(&bmc);
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:System.Embedded.1");
    assert_eq!((psu.state.as_str(), psu.spare), ("no_redundancy", 1));
    assert_eq!(
        sparewatch::domains::capacity_reason(psu).as_deref(),
        Some("load 1100 W > 800 W left after losing PSU.Slot.1")
    );
    let t = text(&s);
    assert!(t.contains("sparewatch_group_power_capacity_sufficient{group=\"psu:System.Embedded.1\",kind=\"psu\"} 0"), "{t}");

    // 300 W each: the survivor carries 600 W.
    bmc.edit("Chassis/System.Embedded.1/Power", |v| {
        for i in 0..2 {
            v["PowerSupplies"][i]["LastPowerOutputWatts"] = json!(300);
        }
    });
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:System.Embedded.1");
    assert_eq!(psu.state.as_str(), "redundant");
    assert_eq!(sparewatch::domains::capacity_reason(psu), None);
}

/// The current schema keeps a supply's power in its `Metrics` (`PowerSupplyMetrics`): read
/// there, the load makes the capacity check known (418 + 398 W on two 1000 W supplies:
/// sufficient); at 600 W each the survivor cannot carry 1200 W. A `Metrics` the BMC answers
/// with garbage leaves that supply's load unknown, says why, and the rest is reported.
#[test]
fn current_schema_load_comes_from_power_supply_metrics() {
    let bmc = Sushy::mockup("openbmc-subsystems", false);
    let mut c = collector(&bmc);
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:chassis");
    assert_eq!((psu.state.as_str(), psu.spare), ("redundant", 1));
    let t = text(&s);
    for line in [
        "sparewatch_group_power_capacity_known{group=\"psu:chassis\",kind=\"psu\"} 1",
        "sparewatch_group_power_capacity_sufficient{group=\"psu:chassis\",kind=\"psu\"} 1",
        "sparewatch_redfish_psu_output_watts{bmc=\"bmc\",chassis=\"chassis\",psu=\"powersupply0\"} 418",
        "sparewatch_redfish_psu_input_watts{bmc=\"bmc\",chassis=\"chassis\",psu=\"powersupply1\"} 431",
    ] {
        assert!(t.contains(line), "{line} not in:\n{t}");
    }

    for i in 0..2 {
        bmc.edit(
            &format!("Chassis/chassis/PowerSubsystem/PowerSupplies/powersupply{i}/Metrics"),
            |v| v["OutputPowerWatts"]["Reading"] = json!(600),
        );
    }
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:chassis");
    assert_eq!(psu.state.as_str(), "no_redundancy");
    assert_eq!(
        sparewatch::domains::capacity_reason(psu).as_deref(),
        Some("load 1200 W > 1000 W left after losing powersupply0")
    );

    bmc.write_raw(
        "Chassis/chassis/PowerSubsystem/PowerSupplies/powersupply1/Metrics",
        b"{not json",
    );
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:chassis");
    // Load unknown: the count decides (never the worst verdict for missing data).
    assert_eq!(psu.state.as_str(), "redundant");
    let t = text(&s);
    assert!(
        t.contains("sparewatch_group_power_capacity_known{group=\"psu:chassis\",kind=\"psu\"} 0"),
        "{t}"
    );
    let reason = psu
        .domains
        .as_ref()
        .and_then(|d| d.capacity.as_ref())
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    assert!(
        reason.starts_with("load of powersupply1 unknown (") && reason.contains("/Metrics"),
        "{reason}"
    );
    // The fans of the same BMC are still reported.
    assert_eq!(gview(&s, "fan:chassis").state.as_str(), "redundant");
}

/// No per-supply load, only the chassis' `PowerConsumedWatts`: that is the load. No rating
/// on one supply: capacity unknown, said, and the count decides.
#[test]
fn chassis_consumed_watts_is_the_load_and_a_missing_rating_is_unknown() {
    let bmc = Sushy::mockup("idrac-power-thermal", false);
    bmc.edit("Chassis/System.Embedded.1/Power", |v| {
        v["PowerControl"][0]["PowerConsumedWatts"] = json!(1100);
        for i in 0..2 {
            let p = v["PowerSupplies"][i].as_object_mut().expect("object");
            p.remove("LastPowerOutputWatts");
            p.remove("PowerInputWatts");
            p.insert("PowerCapacityWatts".into(), json!(800));
        }
    });
    let mut c = collector(&bmc);
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:System.Embedded.1");
    assert_eq!(psu.state.as_str(), "no_redundancy");
    assert_eq!(
        sparewatch::domains::capacity_reason(psu).as_deref(),
        Some("load 1100 W > 800 W left after losing PSU.Slot.1")
    );

    bmc.edit("Chassis/System.Embedded.1/Power", |v| {
        v["PowerSupplies"][1]
            .as_object_mut()
            .expect("object")
            .remove("PowerCapacityWatts");
    });
    let s = rig.cycle(&mut c, INTERVAL);
    let psu = gview(&s, "psu:System.Embedded.1");
    assert_eq!(psu.state.as_str(), "redundant");
    let t = text(&s);
    assert!(
        t.contains(
            "sparewatch_group_power_capacity_known{group=\"psu:System.Embedded.1\",kind=\"psu\"} 0"
        ),
        "{t}"
    );
}

/// `psu:chassis` is redundant by count, with effective spare 0 from the shared `feed`.
fn redundant_but_feed_shared(s: &Snapshot, feed: &str) {
    let psu = gview(s, "psu:chassis");
    assert_eq!((psu.state.as_str(), psu.spare), ("redundant", 1));
    let d = psu.domains.as_ref().expect("domains");
    assert_eq!(d.effective_spare, Some(0));
    assert_eq!(
        (d.shared[0].kind.as_str(), d.shared[0].id.as_str()),
        ("feed", feed)
    );
}

/// `collectors.redfish.feeds` makes `feed` failure domains: both PSUs on feed A leave
/// effective spare 0 while the spare is 1.
#[test]
fn two_psus_on_one_configured_feed_have_no_effective_spare() {
    let bmc = Sushy::mockup("openbmc-subsystems", false);
    let mut c = collector(&bmc);
    c.feeds.insert(
        "psu:chassis".into(),
        [("powersupply0", "A"), ("powersupply1", "A")]
            .into_iter()
            .map(|(m, f)| (m.to_string(), f.to_string()))
            .collect(),
    );
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    redundant_but_feed_shared(&s, "A");
    let t = text(&s);
    assert!(t.contains("sparewatch_member_failure_domain_info{group=\"psu:chassis\",kind=\"psu\",member=\"powersupply0\",domain_kind=\"feed\",domain=\"A\"} 1"), "{t}");

    c.feeds
        .get_mut("psu:chassis")
        .expect("map")
        .insert("powersupply1".into(), "B".into());
    let s = rig.cycle(&mut c, INTERVAL);
    let d = gview(&s, "psu:chassis").domains.clone().expect("domains");
    assert_eq!(d.effective_spare, Some(1));
}

/// Issue 11: both PSUs lose their input in one cycle (one feed, no feed map): once they are
/// back, the group reads redundant by count with effective spare 0 and the suspected shared
/// feed named; the SparewatchHiddenSinglePointOfFailure inputs carry it.
#[test]
fn two_psus_losing_input_together_are_a_suspected_shared_feed() {
    let bmc = Sushy::mockup("openbmc-subsystems", false);
    let mut c = collector(&bmc);
    let mut rig = rig();
    let s = rig.cycle(&mut c, INTERVAL);
    assert_eq!(
        gview(&s, "psu:chassis")
            .domains
            .as_ref()
            .and_then(|d| d.effective_spare),
        None
    );
    for p in ["powersupply0", "powersupply1"] {
        bmc.edit(
            &format!("Chassis/chassis/PowerSubsystem/PowerSupplies/{p}"),
            |v| {
                v["LineInputStatus"] = json!("LossOfInput");
            },
        );
    }
    let s = rig.cycle(&mut c, INTERVAL);
    assert_eq!(gview(&s, "psu:chassis").state, "failed");
    for p in ["powersupply0", "powersupply1"] {
        bmc.edit(
            &format!("Chassis/chassis/PowerSubsystem/PowerSupplies/{p}"),
            |v| {
                v["LineInputStatus"] = json!("Normal");
            },
        );
    }
    // Recovered members are held down for one hold-down period first.
    rig.cycle(&mut c, INTERVAL);
    let s = rig.cycle(&mut c, INTERVAL);
    redundant_but_feed_shared(&s, "suspected:powersupply0+powersupply1");
    let t = text(&s);
    assert!(t.contains("sparewatch_group_failure_domain_shared_members{group=\"psu:chassis\",kind=\"psu\",domain_kind=\"feed\",domain=\"suspected:powersupply0+powersupply1\"} 2"), "{t}");
}
