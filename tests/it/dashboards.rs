//! Static checks of the shipped Grafana dashboards (their queries run against a real
//! Prometheus in e2e.rs): importable anywhere — data source as a variable, stable uid, no
//! host written into a query, unique panel ids, a current schema.

use serde_json::Value;

use crate::support::repo;

fn load(name: &str) -> Value {
    let path = repo().join("dashboards/grafana").join(name);
    let text = std::fs::read_to_string(&path).expect("read dashboard");
    serde_json::from_str(&text).expect("dashboard is JSON")
}

fn check(name: &str, uid: &str, needs_instance: bool) {
    let d = load(name);
    assert_eq!(
        d["uid"], uid,
        "{name}: the uid is what links and provisioning use"
    );
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{name}: schemaVersion {} is older than Grafana 9",
        d["schemaVersion"]
    );
    assert!(
        d.get("id").is_none_or(Value::is_null),
        "{name}: an id ties it to one Grafana"
    );
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |n: &str| vars.iter().find(|v| v["name"] == n);
    assert_eq!(
        var("datasource").map(|v| v["type"].clone()),
        Some("datasource".into()),
        "{name}: needs a datasource variable"
    );
    assert!(var("job").is_some(), "{name}: needs a job variable");
    if needs_instance {
        assert!(
            var("instance").is_some(),
            "{name}: needs an instance variable"
        );
    }
    for a in d["annotations"]["list"]
        .as_array()
        .expect("annotations.list")
    {
        if a["expr"].is_string() {
            assert_eq!(
                a["datasource"]["uid"], "${datasource}",
                "{name}: annotation {} must use the datasource variable",
                a["name"]
            );
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64()),
            "{name}: duplicate panel id in {title:?}"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{name}: panel {title:?} must use the datasource variable"
        );
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{name}: {title:?} target must use the datasource variable"
            );
            let expr = t["expr"].as_str().expect("expr");
            for label in ["instance", "hostname"] {
                for op in ["=\"", "=~\""] {
                    if let Some(at) = expr.find(&format!("{label}{op}")) {
                        let value = &expr[at + label.len() + op.len()..];
                        assert!(
                            value.starts_with('$'),
                            "{name}: {title:?} hard-codes a host: {expr}"
                        );
                    }
                }
            }
            assert!(
                !expr.contains("job=\"") || expr.contains("job=\"$job\""),
                "{name}: {title:?} hard-codes a job: {expr}"
            );
        }
    }
}

#[test]
fn fleet_dashboard_is_portable() {
    check("sparewatch-fleet.json", "sparewatch-fleet", false);
}

#[test]
fn host_dashboard_is_portable() {
    check("sparewatch-host.json", "sparewatch-host", true);
}

/// Every series a panel reads exists: agent metrics are documented in docs/metrics.md,
/// recording-rule names (with a colon) are recorded by a shipped rule file. Catches a
/// renamed metric in a dashboard before a Prometheus does.
#[test]
fn every_series_a_panel_reads_is_documented_or_recorded() {
    let metrics_md =
        std::fs::read_to_string(repo().join("docs/metrics.md")).expect("read docs/metrics.md");
    let mut rules = String::new();
    for e in std::fs::read_dir(repo().join("dashboards/prometheus")).expect("rules dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "yml") {
            rules.push_str(&std::fs::read_to_string(&p).expect("read rules"));
        }
    }
    let mut missing = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in ["sparewatch-fleet.json", "sparewatch-host.json"] {
        let d = load(name);
        let exprs = d["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .chain(
                d["annotations"]["list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
            .filter_map(|t| t["expr"].as_str().map(String::from));
        for expr in exprs {
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            {
                let is_rule = token.contains(':') && token.contains("sparewatch");
                let is_metric = token.starts_with("sparewatch_") && token != "sparewatch_";
                if !(is_rule || is_metric) || !seen.insert(token.to_string()) {
                    continue;
                }
                let found = if is_rule {
                    rules.contains(&format!("record: {token}\n"))
                } else {
                    metrics_md.contains(&format!("`{token}`"))
                };
                if !found {
                    missing.push(format!("{name}: {token}"));
                }
            }
        }
    }
    assert!(
        seen.iter().any(|t| t.starts_with("sparewatch_ups_"))
            && seen.iter().any(|t| t.starts_with("sparewatch_redfish_")),
        "the dashboards read no UPS or Redfish series: {seen:?}"
    );
    assert!(
        missing.is_empty(),
        "undocumented or unrecorded: {missing:?}"
    );
}
