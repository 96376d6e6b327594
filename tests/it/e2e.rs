//! The whole chain with the real programs: the agent on a fixture tree → a real Prometheus
//! (scraping every second, the shipped rules with `for:` shortened) → two real Alertmanagers
//! with the shipped routing → a webhook receiver in this test.
//!
//! - Alertmanager "rules" gets alerts from Prometheus only: the rule path.
//! - Alertmanager "push" gets the agent's own posts (`--alertmanager.url`) *and* Prometheus'
//!   alerts: the direct path, and the proof that both paths deduplicate into one alert.
//!
//! Faults: bond0's standby slave goes down (no_redundancy → ticket), then its active slave
//! too (failed → page), then both come back (resolved). The time from each fault to each
//! notification is printed for both paths. Finally every panel query of the shipped Grafana
//! dashboards runs against this Prometheus and must parse and return data.
//!
//! The power panels get their data from real parts too: the agent also reads a real NUT
//! upsd with two dummy-ups UPSes (one is put on battery before the dashboards are checked)
//! and a real Redfish service (sushy-static serving the iDRAC-shaped deprecated-schema
//! mockup: two PSUs, stated redundancy, capacity and load; stopped with SIGSTOP at the end,
//! so the fleet's "Hosts on battery" and "BMCs down" are seen counting, not only at 0).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::monitoring::{
    alertmanager_test_config, am_alerts, fixture_copy, free_port, get_json, rules_test_copy,
    set_link, start_agent_with, start_alertmanager, urlencode, wait_for, Proc, Webhook,
};
use crate::redfish::sushy::Sushy;
use crate::support::{metric_value, promtool_check_metrics, repo};
use crate::ups::upsd::Upsd;

const DEADLINE: Duration = Duration::from_secs(60);

fn prom_query(port: u16, expr: &str) -> Option<Vec<Value>> {
    let v = get_json(port, &format!("/api/v1/query?query={}", urlencode(expr)))?;
    v["data"]["result"].as_array().cloned()
}

fn labels(alert: &Value) -> Value {
    alert["labels"].clone()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn fault_to_notification_through_prometheus_and_alertmanager() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let tree = fixture_copy(dir);
    let webhook = Webhook::start();

    // Two Alertmanagers with the shipped routing.
    let (mut am_rules, am_rules_port) = start_alertmanager(
        dir,
        "alertmanager-rules",
        &alertmanager_test_config(webhook.port, "rules"),
    );
    let (mut am_push, am_push_port) = start_alertmanager(
        dir,
        "alertmanager-push",
        &alertmanager_test_config(webhook.port, "push"),
    );

    // The power parts: upsd with two UPSes on line, a Redfish BMC with two redundant PSUs.
    let upsd = Upsd::start(&["ups-a", "ups-b"]);
    let bmc = Sushy::mockup("idrac-power-thermal", false);

    // The agent: the net collector polls the fixture every 500 ms, 1 s hold-down, posts to
    // the "push" Alertmanager and re-posts every 2 s; ups and redfish every second.
    let (mut agent, agent_port) = start_agent_with(
        dir,
        &tree,
        &[&format!("http://127.0.0.1:{am_push_port}")],
        "2s",
        "  ups:\n    interval: 1s\n    timeout: 1s\n\
         \x20 redfish:\n    interval: 1s\n    timeout: 2s\n    request_timeout: 1s\n    retries: 0\n",
        &[
            "--collector.ups".into(),
            "--ups.nut-address".into(),
            upsd.address(),
            "--collector.redfish".into(),
            "--redfish.url".into(),
            bmc.url(),
        ],
    );

    // Prometheus: scrape and evaluate every second, alerts to both Alertmanagers.
    let prom_port = free_port();
    let rule_files = rules_test_copy(dir, "0s");
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{}\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_rules_port}', '127.0.0.1:{am_push_port}']\n\
         scrape_configs:\n  - job_name: sparewatch\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n",
        rule_files
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect::<String>()
    );
    std::fs::write(dir.join("prometheus.yml"), prom_cfg).expect("write prometheus.yml");
    let mut prom = Proc::spawn(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=warn".into(),
        ],
        dir.join("prometheus.log"),
    );
    let started = SystemTime::now();

    // Ready: Prometheus scraped the agent and the rules see bond0 redundant.
    let hostname = wait_for("Prometheus to see bond:bond0 redundant", DEADLINE, || {
        prom.assert_running();
        agent.assert_running();
        let r = prom_query(
            prom_port,
            r#"sparewatch:group_state:current{group="bond:bond0",state="redundant"}"#,
        )?;
        r.first()?["metric"]["hostname"].as_str().map(String::from)
    });
    assert!(!hostname.is_empty(), "agent exports an empty hostname");
    let identity = |alertname: &str, severity: &str| {
        serde_json::json!({
            "alertname": alertname, "severity": severity, "hostname": hostname,
            "group": "bond:bond0", "kind": "bond",
        })
    };

    // --- Fault 1: the standby slave eth1 goes down: no_redundancy → ticket.
    let t1 = Instant::now();
    set_link(&tree, "eth1", false);
    let (rule_n, rule_alert) = webhook.wait(
        "/rules/tickets",
        "SparewatchRedundancyLost",
        "firing",
        t1,
        DEADLINE,
    );
    let (push_n, push_alert) = webhook.wait(
        "/push/tickets",
        "SparewatchRedundancyLost",
        "firing",
        t1,
        DEADLINE,
    );
    assert_eq!(
        labels(&rule_alert),
        identity("SparewatchRedundancyLost", "ticket")
    );
    assert_eq!(
        labels(&push_alert),
        identity("SparewatchRedundancyLost", "ticket")
    );
    let desc = rule_alert["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        desc.contains("spare 0. Failed members: eth1 (standby)."),
        "rule description: {desc}"
    );
    assert!(
        rule_alert["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/docs/runbooks/SparewatchRedundancyLost.md")),
        "runbook_url: {}",
        rule_alert["annotations"]["runbook_url"]
    );
    let rule_ticket = rule_n.at - t1;
    let push_ticket = push_n.at - t1;
    // Both paths reach the "push" Alertmanager: one alert, not two.
    wait_for(
        "the rule path's alert to reach the push Alertmanager too",
        DEADLINE,
        || {
            let a = am_alerts(am_push_port, "SparewatchRedundancyLost");
            let from_prometheus = a.iter().any(|x| {
                x["generatorURL"]
                    .as_str()
                    .is_some_and(|u| u.contains(&prom_port.to_string()))
            });
            (from_prometheus || rule_n.at.elapsed() > Duration::from_secs(3)).then_some(())
        },
    );
    let merged = am_alerts(am_push_port, "SparewatchRedundancyLost");
    assert_eq!(
        merged.len(),
        1,
        "push and rule path must deduplicate into one alert: {merged:#?}"
    );

    // --- Fault 2: the active slave eth0 goes down too: failed → page.
    let t2 = Instant::now();
    set_link(&tree, "eth0", false);
    let (rule_n, rule_alert) = webhook.wait(
        "/rules/pager",
        "SparewatchGroupFailed",
        "firing",
        t2,
        DEADLINE,
    );
    let (push_n, push_alert) = webhook.wait(
        "/push/pager",
        "SparewatchGroupFailed",
        "firing",
        t2,
        DEADLINE,
    );
    assert_eq!(
        labels(&rule_alert),
        identity("SparewatchGroupFailed", "page")
    );
    assert_eq!(
        labels(&push_alert),
        identity("SparewatchGroupFailed", "page")
    );
    let desc = rule_alert["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        desc.contains("spare -1. Failed members: eth0 (active), eth1 (standby)."),
        "rule description: {desc}"
    );
    let rule_page = rule_n.at - t2;
    let push_page = push_n.at - t2;
    // Pages never go to the ticket receiver.
    assert!(
        webhook.all().iter().all(|n| !n.path.ends_with("/tickets")
            || n.alerts("SparewatchGroupFailed", "firing").is_empty()),
        "a page was routed to the ticket receiver"
    );

    // --- Repair: both slaves back: resolved notifications on both paths.
    let t3 = Instant::now();
    set_link(&tree, "eth0", true);
    set_link(&tree, "eth1", true);
    let (rule_n, _) = webhook.wait(
        "/rules/pager",
        "SparewatchGroupFailed",
        "resolved",
        t3,
        DEADLINE,
    );
    let (push_n, _) = webhook.wait(
        "/push/pager",
        "SparewatchGroupFailed",
        "resolved",
        t3,
        DEADLINE,
    );
    let rule_resolve = rule_n.at - t3;
    let push_resolve = push_n.at - t3;
    wait_for(
        "no active SparewatchGroupFailed left in either Alertmanager",
        DEADLINE,
        || {
            let left = am_alerts(am_rules_port, "SparewatchGroupFailed")
                .into_iter()
                .chain(am_alerts(am_push_port, "SparewatchGroupFailed"))
                .filter(|a| a["status"]["state"] == "active")
                .count();
            (left == 0).then_some(())
        },
    );

    println!(
        "e2e latency, fault -> webhook notification (scrape 1s, eval 1s, for: 0s, group_wait 1s, collector interval 500ms, hold-down 1s):\n\
         \x20 ticket (standby slave down):  rule path {}   direct push {}\n\
         \x20 page   (active slave down):   rule path {}   direct push {}\n\
         \x20 resolved (both slaves back):  rule path {}   direct push {}",
        ms(rule_ticket),
        ms(push_ticket),
        ms(rule_page),
        ms(push_page),
        ms(rule_resolve),
        ms(push_resolve)
    );

    // The push's own series: every post went through, nothing left firing; the whole
    // output with them passes promtool's lint.
    let metrics = crate::monitoring::http("GET", agent_port, "/metrics", None)
        .map(|(_, b)| b)
        .unwrap_or_default();
    let am = format!("http://127.0.0.1:{am_push_port}/api/v2/alerts");
    let posts = |result: &str| {
        metric_value(
            &metrics,
            &format!(
                "sparewatch_alertmanager_posts_total{{alertmanager=\"{am}\",result=\"{result}\"}}"
            ),
        )
    };
    assert!(
        posts("success").is_some_and(|n| n >= 4.0),
        "fire, fire, resolve and resends must have been posted:\n{metrics}"
    );
    assert_eq!(posts("error"), Some(0.0));
    wait_for("the push to hold no firing alert", DEADLINE, || {
        let m = crate::monitoring::http("GET", agent_port, "/metrics", None)?.1;
        (metric_value(&m, "sparewatch_alertmanager_alerts_active") == Some(0.0)).then_some(())
    });
    promtool_check_metrics(&metrics);

    // --- Power: the BMC's PSUs redundant, then ups-b loses its utility (the alert checks
    // above are done: its ticket does not mix with bond0's).
    wait_for(
        "Prometheus to see psu:System.Embedded.1 redundant",
        DEADLINE,
        || {
            let r = prom_query(
                prom_port,
                r#"sparewatch:group_state:current{group="psu:System.Embedded.1",state="redundant"}"#,
            )?;
            (!r.is_empty()).then_some(())
        },
    );
    upsd.set(
        "ups-b",
        "ups.status: OB DISCHRG\nbattery.charge: 80\nbattery.runtime: 1200\nups.load: 40\ninput.voltage: 0\n",
    );
    let t4 = Instant::now();
    wait_for(
        "Prometheus to see ups:ups-b no_redundancy",
        DEADLINE,
        || {
            prom.assert_running();
            let r = prom_query(
                prom_port,
                r#"sparewatch:group_state:current{group="ups:ups-b",state="no_redundancy"}"#,
            )?;
            (!r.is_empty()).then_some(())
        },
    );
    println!(
        "e2e: ups-b on battery (dev file rewritten) -> no_redundancy in Prometheus: {}",
        ms(t4.elapsed())
    );
    let a = prom_query(
        prom_port,
        r#"sparewatch:group_state:current{group="ups:ups-a",state="redundant"}"#,
    );
    assert!(
        a.is_some_and(|r| !r.is_empty()),
        "ups-a must stay redundant"
    );
    wait_for(
        "the fleet's \"Hosts on battery\" to count this host",
        DEADLINE,
        || (fleet_stat(prom_port, "Hosts on battery")? == 1.0).then_some(()),
    );

    // The BMC stops answering (SIGSTOP): with its only BMC silent the redfish collector is
    // down and its series gone; the fleet's "BMCs down" still counts it.
    assert_eq!(fleet_stat(prom_port, "BMCs down"), Some(0.0));
    bmc.signal("-STOP");
    let t5 = Instant::now();
    wait_for(
        "the fleet's \"BMCs down\" to count the stopped BMC",
        DEADLINE,
        || {
            prom.assert_running();
            (fleet_stat(prom_port, "BMCs down")? == 1.0).then_some(())
        },
    );
    println!(
        "e2e: BMC stopped (SIGSTOP) -> counted in the fleet's BMCs down: {}",
        ms(t5.elapsed())
    );
    bmc.signal("-CONT");

    // --- Every dashboard query against this Prometheus, over the whole test.
    check_dashboards(prom_port, &format!("127.0.0.1:{agent_port}"), started);

    am_rules.assert_running();
    am_push.assert_running();
    agent.assert_running();
    drop(bmc);
    drop(upsd);
}

/// The value of a single-target stat panel of the fleet dashboard, evaluated now.
fn fleet_stat(prom_port: u16, title: &str) -> Option<f64> {
    let path = repo().join("dashboards/grafana/sparewatch-fleet.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read"))
        .expect("dashboard JSON parses");
    let panel = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no fleet panel {title:?}"));
    let expr = panel["targets"][0]["expr"]
        .as_str()
        .expect("expr")
        .replace("$job", "sparewatch");
    let r = prom_query(prom_port, &expr)?;
    r.first()?["value"][1].as_str()?.parse().ok()
}

/// Runs every panel target and every variable query of the shipped dashboards, variables
/// substituted, as a range query over the test; each must succeed and return data.
fn check_dashboards(prom_port: u16, instance: &str, started: SystemTime) {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (start, end) = (secs(started), secs(SystemTime::now()) + 1);
    let subst = |e: &str| {
        e.replace("$job", "sparewatch")
            .replace("$instance", instance)
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "1s")
            .replace("$__range", "5m")
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in ["sparewatch-fleet.json", "sparewatch-host.json"] {
        let path = repo().join("dashboards/grafana").join(file);
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .expect("dashboard JSON parses");
        for var in dash["templating"]["list"].as_array().expect("templating") {
            let Some(q) = var["definition"].as_str() else {
                continue;
            };
            // label_values(<selector>, <label>)
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .expect("variable queries are label_values(selector, label)");
            let (selector, label) = inner.rsplit_once(',').expect("selector, label");
            let path = format!(
                "/api/v1/label/{}/values?match[]={}&start={start}&end={end}",
                label.trim(),
                urlencode(&subst(selector.trim()))
            );
            checked += 1;
            match get_json(prom_port, &path) {
                Some(v) if v["data"].as_array().is_some_and(|a| !a.is_empty()) => {}
                other => {
                    failures.push(format!("{file} variable {}: {q} -> {other:?}", var["name"]))
                }
            }
        }
        // Panel targets and annotation queries alike.
        let annotations = dash["annotations"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let queries = dash["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|p| {
                let title = p["title"].clone();
                p["targets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |t| (title.clone(), t))
            })
            .chain(
                annotations
                    .into_iter()
                    .filter(|a| a["expr"].is_string())
                    .map(|a| (a["name"].clone(), a)),
            );
        for (title, target) in queries {
            let expr = subst(target["expr"].as_str().expect("expr"));
            checked += 1;
            let path = format!(
                "/api/v1/query_range?query={}&start={start}&end={end}&step=1",
                urlencode(&expr)
            );
            let resp = crate::monitoring::http("GET", prom_port, &path, None);
            let ok = match &resp {
                Some((200, body)) => serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|v| v["data"]["result"].as_array().map(|a| !a.is_empty()))
                    .unwrap_or(false),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{file} {title} {}: {expr}\n  -> {resp:?}",
                    target["refId"]
                ));
            }
        }
    }
    println!("dashboards: {checked} queries checked against Prometheus");
    assert!(
        failures.is_empty(),
        "dashboard queries failing or without data:\n{}",
        failures.join("\n")
    );
}
