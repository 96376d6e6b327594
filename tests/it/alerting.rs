//! The agent's Alertmanager client and the shipped Alertmanager example against a real
//! Alertmanager: posting, resolving, errors, and the inhibition of the example config.

use std::time::{Duration, Instant, SystemTime};

use sparewatch::alertmanager::{endpoint, post, GroupInput, PostError, Tracker};
use sparewatch_collectors::{GroupState, Role};

use crate::monitoring::{
    alertmanager_test_config, am_alerts, fixture_copy, free_port, http, set_link, start_agent,
    start_alertmanager, wait_for, Proc, Webhook,
};

fn group(name: &str, state: GroupState) -> GroupInput {
    GroupInput {
        name: name.into(),
        kind: "bond".into(),
        state,
        by_design: false,
        spare: 0,
        failed_members: vec![("eth1".into(), Role::Standby)],
        at_risk_members: vec![],
        since: SystemTime::now(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const WAIT: Duration = Duration::from_secs(20);

/// A real Alertmanager with the shipped example config, its receivers pointed at a webhook
/// under `/am/<receiver>`.
fn alertmanager_with_webhook() -> (tempfile::TempDir, Proc, u16, Webhook) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let webhook = Webhook::start();
    let (am, port) = start_alertmanager(
        tmp.path(),
        "alertmanager",
        &alertmanager_test_config(webhook.port, "am"),
    );
    (tmp, am, port, webhook)
}

#[test]
fn pushed_alert_fires_and_resolves_in_alertmanager() {
    let (_tmp, _am, port, webhook) = alertmanager_with_webhook();
    let ep = endpoint(&format!("http://127.0.0.1:{port}")).expect("endpoint");
    let rt = rt();
    let mut tracker = Tracker::new("web1", Duration::from_secs(60));

    let t0 = Instant::now();
    let out = tracker.update(
        &[group("bond:bond0", GroupState::NoRedundancy)],
        SystemTime::now(),
    );
    rt.block_on(post(&ep, &out, Duration::from_secs(5)))
        .expect("Alertmanager accepts the alert");
    let active = am_alerts(port, "SparewatchRedundancyLost");
    assert_eq!(active.len(), 1, "{active:#?}");
    assert_eq!(active[0]["labels"]["hostname"], "web1");
    assert_eq!(active[0]["labels"]["severity"], "ticket");
    assert_eq!(active[0]["status"]["state"], "active");
    webhook.wait(
        "/am/tickets",
        "SparewatchRedundancyLost",
        "firing",
        t0,
        WAIT,
    );

    let t1 = Instant::now();
    let out = tracker.update(
        &[group("bond:bond0", GroupState::Redundant)],
        SystemTime::now(),
    );
    assert_eq!(out.len(), 1);
    rt.block_on(post(&ep, &out, Duration::from_secs(5)))
        .expect("resolve accepted");
    webhook.wait(
        "/am/tickets",
        "SparewatchRedundancyLost",
        "resolved",
        t1,
        WAIT,
    );
    wait_for("the alert to leave the active list", WAIT, || {
        am_alerts(port, "SparewatchRedundancyLost")
            .iter()
            .all(|a| a["status"]["state"] != "active")
            .then_some(())
    });

    // An alert Alertmanager rejects (no labels) is an error with its status and reason.
    let mut bad = out[0].clone();
    bad.labels.clear();
    match rt.block_on(post(&ep, &[bad], Duration::from_secs(5))) {
        Err(PostError::Status(_, 400, reason)) => assert!(!reason.is_empty()),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

#[test]
fn failed_group_inhibits_its_own_redundancy_lost_only() {
    let (_tmp, _am, port, webhook) = alertmanager_with_webhook();
    let ep = endpoint(&format!("http://127.0.0.1:{port}")).expect("endpoint");
    let mut tracker = Tracker::new("web1", Duration::from_secs(60));
    // bond0 lost redundancy, bond1 too; then bond0 fails. The redundancy-lost alert of bond0
    // is posted again by hand (as a lagging rule path would) while bond0's failed fires.
    let now = SystemTime::now();
    let lost = tracker.update(
        &[
            group("bond:bond0", GroupState::NoRedundancy),
            group("bond:bond1", GroupState::NoRedundancy),
        ],
        now,
    );
    let mut failed = tracker.update(
        &[
            group("bond:bond0", GroupState::Failed),
            group("bond:bond1", GroupState::NoRedundancy),
        ],
        now,
    );
    failed.retain(|a| a.labels["alertname"] == "SparewatchGroupFailed");
    let mut all = failed;
    all.extend(lost);
    let t0 = Instant::now();
    rt().block_on(post(&ep, &all, Duration::from_secs(5)))
        .expect("Alertmanager accepts the alerts");

    let state_of = |group: &str| {
        am_alerts(port, "SparewatchRedundancyLost")
            .into_iter()
            .find(|a| a["labels"]["group"] == group)
            .map(|a| a["status"].clone())
    };
    let bond0 = wait_for(
        "bond0's redundancy-lost alert to be suppressed",
        WAIT,
        || state_of("bond:bond0").filter(|s| s["state"] == "suppressed"),
    );
    assert!(
        bond0["inhibitedBy"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{bond0}"
    );
    assert_eq!(
        state_of("bond:bond1").map(|s| s["state"].clone()),
        Some("active".into()),
        "another group's alert must not be inhibited"
    );
    // The page goes to the pager; the ticket receiver gets bond1 only.
    webhook.wait("/am/pager", "SparewatchGroupFailed", "firing", t0, WAIT);
    let (n, _) = webhook.wait(
        "/am/tickets",
        "SparewatchRedundancyLost",
        "firing",
        t0,
        WAIT,
    );
    let groups: Vec<_> = n
        .alerts("SparewatchRedundancyLost", "firing")
        .iter()
        .map(|a| a["labels"]["group"].clone())
        .collect();
    assert_eq!(groups, vec![serde_json::json!("bond:bond1")]);
}

#[test]
fn post_errors_are_errors_not_panics() {
    let rt = rt();
    let mut tracker = Tracker::new("web1", Duration::from_secs(60));
    let out = tracker.update(
        &[group("bond:bond0", GroupState::Failed)],
        SystemTime::now(),
    );
    // nobody listens
    let ep = endpoint(&format!("http://127.0.0.1:{}", free_port())).expect("endpoint");
    match rt.block_on(post(&ep, &out, Duration::from_secs(5))) {
        Err(PostError::Connect(..)) => {}
        other => panic!("expected a connect error, got {other:?}"),
    }
    // a listener that never answers: the timeout holds
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let ep = endpoint(&format!(
        "http://127.0.0.1:{}",
        silent.local_addr().expect("addr").port()
    ))
    .expect("endpoint");
    let t = Instant::now();
    match rt.block_on(post(&ep, &out, Duration::from_millis(300))) {
        Err(PostError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// The direct path needs no Prometheus: the agent alone pages through Alertmanager, and
/// resolves when the fault is gone. A second Alertmanager that accepts connections but never
/// answers is listed first: each Alertmanager has its own sender, so it holds back neither
/// the page nor the resolve for its 10 s timeout. (Resends every 2 s: a resolve by expiry
/// would take 8 s, so a fast resolve is the agent's.)
#[test]
fn agent_pages_through_alertmanager_without_prometheus() {
    let (tmp, _am, am_port, webhook) = alertmanager_with_webhook();
    let tree = fixture_copy(tmp.path());
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_port = hung.local_addr().expect("addr").port();
    let (mut agent, agent_port) = start_agent(
        tmp.path(),
        &tree,
        &[
            &format!("http://127.0.0.1:{hung_port}"),
            &format!("http://127.0.0.1:{am_port}"),
        ],
        "2s",
    );
    wait_for("the agent to see bond0 redundant", WAIT, || {
        agent.assert_running();
        let (_, m) = http("GET", agent_port, "/metrics", None)?;
        m.contains(
            r#"sparewatch_group_state{group="bond:bond0",kind="bond",state="redundant",by_design="false"} 1"#,
        )
        .then_some(())
    });
    let t0 = Instant::now();
    set_link(&tree, "eth0", false);
    set_link(&tree, "eth1", false);
    let (n, alert) = webhook.wait("/am/pager", "SparewatchGroupFailed", "firing", t0, WAIT);
    assert_eq!(alert["labels"]["group"], "bond:bond0");
    assert_eq!(alert["labels"]["severity"], "page");
    let fired = n.at - t0;
    assert!(
        fired < Duration::from_secs(8),
        "the hung Alertmanager held the page back: {fired:?}"
    );
    let t1 = Instant::now();
    set_link(&tree, "eth0", true);
    set_link(&tree, "eth1", true);
    let (n, _) = webhook.wait("/am/pager", "SparewatchGroupFailed", "resolved", t1, WAIT);
    assert!(
        n.at - t1 < Duration::from_secs(6),
        "the resolve was not posted (Alertmanager expired the alert instead): {:?}",
        n.at - t1
    );
    println!(
        "direct push without Prometheus: page after {:?}, resolved after {:?} (group_wait 1s, hold-down 1s)",
        fired,
        n.at - t1
    );
}
