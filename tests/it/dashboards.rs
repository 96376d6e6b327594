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
