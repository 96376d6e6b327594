//! The ups collector against a real NUT upsd with dummy-ups drivers (Debian `nut-server`):
//! UPSes on line, on battery, on low battery, a driver lost, upsd stopped, cross-checked with
//! `upsc`. Every daemon is killed when its guard drops, also when a test panics.

pub mod upsd;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::Rig;
use sparewatch::snapshot::{GroupView, Snapshot};
use sparewatch_collectors::ups::nut::Limits;
use sparewatch_collectors::ups::{Password, Settings, UpsCollector};
use sparewatch_collectors::{Collection, Collector, MemberHealth};
use upsd::{Upsd, ON_LINE, PASSWORD, USER};

const HOLD_DOWN: Duration = Duration::from_secs(5);

fn state(s: &Snapshot, name: &str) -> String {
    gview(s, name).state.as_str().to_string()
}

fn gview<'a>(s: &'a Snapshot, name: &str) -> &'a GroupView {
    s.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name} in {:?}", s.groups))
}

fn settings(password_file: Option<&Path>) -> Settings {
    Settings {
        user: password_file.map(|_| USER.to_string()),
        password: password_file.map_or(Password::None, |p| Password::File(p.to_path_buf())),
        timeout: Duration::from_secs(2),
        limits: Limits {
            min_charge_percent: Some(50.0),
            min_runtime_seconds: Some(300.0),
        },
        feeds: BTreeMap::from([("ups-a".to_string(), "A".to_string())]),
    }
}

fn member<'a>(c: &'a Collection, group: &str, m: &str) -> &'a MemberHealth {
    &c.groups
        .iter()
        .find(|g| g.name == group)
        .unwrap_or_else(|| panic!("no {group} in {:?}", c.groups))
        .members
        .iter()
        .find(|x| x.name == m)
        .expect("member")
        .health
}

fn reading(c: &Collection, name: &str, ups: &str) -> Option<f64> {
    c.readings
        .iter()
        .find(|r| r.name == name && r.labels.iter().any(|(k, v)| *k == "ups" && v == ups))
        .map(|r| r.value)
}

#[test]
fn on_battery_is_no_redundancy_low_battery_failed_other_ups_unaffected() {
    let u = Upsd::start(&["ups-a", "ups-b"]);
    u.wait_for("ups-a", "ups.status", "OL");
    u.wait_for("ups-b", "ups.status", "OL");
    let pw = u.dir.path().join("nut-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("password file");
    let mut c = UpsCollector::new(vec![u.address()], false, settings(Some(&pw)));
    let mut rig = Rig::new("ups", Duration::from_secs(15), HOLD_DOWN);

    let first = c.collect().expect("collects");
    assert!(first.present);
    assert_eq!(
        reading(&first, "sparewatch_ups_battery_charge_ratio", "ups-a"),
        Some(1.0)
    );
    assert_eq!(
        reading(&first, "sparewatch_ups_battery_runtime_seconds", "ups-a"),
        Some(1800.0)
    );
    assert_eq!(
        reading(&first, "sparewatch_ups_load_ratio", "ups-a"),
        Some(0.31)
    );
    assert_eq!(
        reading(&first, "sparewatch_ups_input_voltage_volts", "ups-a"),
        Some(230.5)
    );
    let s = rig.cycle(&mut c, Duration::ZERO);
    assert_eq!(state(&s, "ups:ups-a"), "redundant");
    assert_eq!(state(&s, "ups:ups-b"), "redundant");
    let text = String::from_utf8_lossy(&s.metrics_text).into_owned();
    assert!(
        text.contains("sparewatch_ups_feed_info{ups=\"ups-a\",feed=\"A\"} 1"),
        "{text}"
    );

    // Utility lost: the load runs on the battery, the standby source.
    u.set("ups-a", "ups.status: OB DISCHRG\nbattery.charge: 90\nbattery.runtime: 1500\nups.load: 31\ninput.voltage: 0\n");
    u.wait_for("ups-a", "ups.status", "OB DISCHRG");
    let col = c.collect().expect("collects");
    assert!(
        matches!(member(&col, "ups:ups-a", "utility"), MemberHealth::Unhealthy(r) if r.contains("OB"))
    );
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    assert_eq!(state(&s, "ups:ups-a"), "no_redundancy");
    assert_eq!(state(&s, "ups:ups-b"), "redundant");

    // Low battery: shutdown imminent.
    u.set("ups-a", "ups.status: OB LB\nbattery.charge: 8\nbattery.runtime: 90\nups.load: 31\ninput.voltage: 0\n");
    u.wait_for("ups-a", "ups.status", "OB LB");
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    assert_eq!(state(&s, "ups:ups-a"), "failed");
    assert_eq!(state(&s, "ups:ups-b"), "redundant");
    let text = String::from_utf8_lossy(&s.metrics_text).into_owned();
    crate::support::promtool_check_metrics(&text);
    assert!(
        text.contains("sparewatch_ups_status_flag{ups=\"ups-a\",flag=\"LB\"} 1"),
        "{text}"
    );

    // Back on line with a recharged battery: redundant once the hold-down has passed.
    u.set("ups-a", ON_LINE);
    u.wait_for("ups-a", "ups.status", "OL");
    rig.cycle(&mut c, Duration::from_secs(15));
    let s = rig.cycle(&mut c, HOLD_DOWN + Duration::from_secs(1));
    assert_eq!(state(&s, "ups:ups-a"), "redundant");
}

#[test]
fn replace_battery_and_weak_battery_make_the_battery_member_unhealthy() {
    let u = Upsd::start(&["ups-a"]);
    let mut c = UpsCollector::new(vec![u.address()], false, settings(None));
    u.set(
        "ups-a",
        "ups.status: OL RB\nbattery.charge: 100\nbattery.runtime: 1800\n",
    );
    u.wait_for("ups-a", "ups.status", "OL RB");
    let col = c.collect().expect("collects");
    assert_eq!(member(&col, "ups:ups-a", "utility"), &MemberHealth::Healthy);
    assert!(
        matches!(member(&col, "ups:ups-a", "battery"), MemberHealth::Unhealthy(r) if r.contains("RB"))
    );

    // Runtime under the configured 5 minutes, status still plain OL.
    u.set(
        "ups-a",
        "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 120\n",
    );
    u.wait_for("ups-a", "battery.runtime", "120");
    let col = c.collect().expect("collects");
    assert!(
        matches!(member(&col, "ups:ups-a", "battery"), MemberHealth::Unhealthy(r) if r.contains("runtime"))
    );

    u.set(
        "ups-a",
        "ups.status: OL OVER\nbattery.charge: 100\nbattery.runtime: 1800\n",
    );
    u.wait_for("ups-a", "ups.status", "OL OVER");
    let mut rig = Rig::new("ups", Duration::from_secs(15), HOLD_DOWN);
    let s = rig.cycle(&mut c, Duration::ZERO);
    assert_eq!(state(&s, "ups:ups-a"), "degraded");
}

#[test]
fn lost_driver_is_unknown_for_that_ups_only_and_stopped_upsd_is_a_clear_error() {
    let mut u = Upsd::start(&["ups-a", "ups-b"]);
    u.wait_for("ups-b", "ups.status", "OL");
    let mut c = UpsCollector::new(vec![u.address()], false, settings(None));
    let mut rig = Rig::new("ups", Duration::from_secs(15), HOLD_DOWN);
    let s = rig.cycle(&mut c, Duration::ZERO);
    assert_eq!(state(&s, "ups:ups-b"), "redundant");

    u.stop_driver("ups-b");
    // upsd notices the driver socket is gone; upsc agrees.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while u.upsc("ups-b", "ups.status").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "upsd still serves ups-b"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let col = c
        .collect()
        .expect("one lost driver does not fail the collector");
    assert!(
        matches!(member(&col, "ups:ups-b", "battery"), MemberHealth::Unknown(r) if r.contains("ERR")),
        "{col:?}"
    );
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    assert_eq!(state(&s, "ups:ups-b"), "unknown");
    assert_eq!(state(&s, "ups:ups-a"), "redundant");

    u.stop_upsd();
    let err = c.collect().expect_err("upsd gone").to_string();
    assert!(err.contains(&u.address()), "{err}");
    let s = rig.cycle(&mut c, Duration::from_secs(15));
    assert_eq!(state(&s, "ups:ups-a"), "unknown");
    let text = String::from_utf8_lossy(&s.metrics_text).into_owned();
    assert!(
        text.contains("sparewatch_collector_up{collector=\"ups\"} 0"),
        "{text}"
    );
}

/// A server that answers everything with garbage: not upsd, so no real part can play it.
#[test]
fn malformed_reply_is_a_clear_error() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut w = s;
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = w.write_all(b"BEGIN LIST UPS\nUPS \"unterminated\nEND LIST UPS\n");
                line.clear();
            }
        }
    });
    let mut c = UpsCollector::new(vec![addr], false, settings(None));
    let err = c.collect().expect_err("garbage").to_string();
    assert!(
        err.contains("malformed") && err.contains("LIST UPS"),
        "{err}"
    );
}

#[test]
fn flags_reach_upsd_a_refusing_address_is_down_unless_it_is_the_implicit_default() {
    let u = Upsd::start(&["ups-a"]);
    u.wait_for("ups-a", "ups.status", "OL");
    let root = tempfile::tempdir().expect("root");
    let args = |extra: &[String]| {
        let mut a: Vec<String> = [
            "sparewatch",
            "status",
            "--collector.disable-defaults",
            "--collector.ups",
            "--path.rootfs",
        ]
        .map(String::from)
        .to_vec();
        a.push(root.path().to_string_lossy().into_owned());
        a.extend(extra.iter().cloned());
        a
    };
    let snap = sparewatch::collect_with_args(
        args(&["--ups.nut-address".into(), u.address()]),
        SystemTime::now(),
    )
    .expect("collects");
    assert_eq!(state(&snap, "ups:ups-a"), "redundant");
    // Another address than the default: an explicit address that refuses is an error.
    drop(u);
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let snap = sparewatch::collect_with_args(
        args(&["--ups.nut-address".into(), format!("127.0.0.1:{port}")]),
        SystemTime::now(),
    )
    .expect("runs");
    let text = String::from_utf8_lossy(&snap.metrics_text).into_owned();
    assert!(
        text.contains("sparewatch_collector_up{collector=\"ups\"} 0"),
        "{text}"
    );
    // The same refusing address as the implicit default (no address configured): no UPS here.
    let mut implicit = UpsCollector::new(vec![format!("127.0.0.1:{port}")], true, settings(None));
    assert!(!implicit.collect().expect("not an error").present);
    // The same refusing address as the implicit default (no address configured): no UPS here.
    let mut implicit = UpsCollector::new(vec![format!("127.0.0.1:{port}")], true, settings(None));
    assert!(!implicit.collect().expect("not an error").present);
}
