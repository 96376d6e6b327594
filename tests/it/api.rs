//! The status API's JSON Schema (docs/api/status-v1.schema.json) against the API output of
//! every golden fixture, checked by a real validator (python3-jsonschema, Draft 2020-12).

use std::process::Command;

use serde_json::{json, Map, Value};

use crate::support::{fixed_now, fixture_args, repo};

/// The collectors a golden scenario is made for, from its name.
fn collectors_for(scenario: &str) -> Option<&'static [&'static str]> {
    let prefix = scenario.split('-').next()?;
    Some(match prefix {
        "net" => &["net"],
        "md" => &["md"],
        "mpath" | "nvme" => &["multipath"],
        "hwmon" => &["hwmon"],
        "smart" => &["smart"],
        "hwraid" => &["hwraid", "smart"],
        _ => return None,
    })
}

/// The API document of every golden scenario that has a fixture tree, by name.
fn golden_documents() -> Map<String, Value> {
    let host = sparewatch::api::Host {
        hostname: "host1".into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut docs = Map::new();
    let mut names: Vec<String> = std::fs::read_dir(repo().join("tests/golden"))
        .expect("golden dir")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".prom"))
                .map(String::from)
        })
        .collect();
    names.sort();
    for name in names {
        let dir = repo().join("tests/fixtures").join(&name);
        let Some(collectors) = collectors_for(&name).filter(|_| dir.is_dir()) else {
            continue; // e.g. ipmi-*: made against the BMC simulator, not a tree
        };
        let mut args = vec![
            "sparewatch".to_string(),
            "--collector.disable-defaults".into(),
        ];
        args.extend(fixture_args(&dir));
        args.extend(collectors.iter().map(|c| format!("--collector.{c}")));
        let snap = sparewatch::collect_with_args(args, fixed_now()).expect("collects");
        let text = sparewatch::api::to_json(&snap, &host, false);
        docs.insert(name, serde_json::from_str(&text).expect("api json"));
    }
    // No fixture tree shows a group `unknown` (that takes a collector failing after it saw
    // the group): one such snapshot, as the engine makes it, stands in for it.
    let unknown = unknown_snapshot();
    let text = sparewatch::api::to_json(&unknown, &host, false);
    docs.insert(
        "constructed-collector-down".into(),
        serde_json::from_str(&text).expect("api json"),
    );
    docs
}

/// A group whose collector went down: state unknown, member unknown with the reason.
fn unknown_snapshot() -> sparewatch::snapshot::Snapshot {
    use sparewatch::snapshot::{CollectorView, GroupView, MemberView, Snapshot};
    Snapshot {
        generated_at: 1_767_225_600.0,
        groups: vec![GroupView {
            name: "md:md0".into(),
            kind: "md".into(),
            collector: "md".into(),
            state: sparewatch_collectors::GroupState::Unknown,
            by_design: false,
            members_total: 1,
            members_healthy: 0,
            members_required: 1,
            spare: 0,
            since: 1_767_225_000.0,
            transitions: 1,
            stated_state: None,
            evidence_disagreement: false,
            members: vec![MemberView {
                name: "sda1".into(),
                role: sparewatch_collectors::Role::Active,
                healthy: false,
                at_risk: false,
                unknown: true,
                reason: Some("collector md down: timed out after 10s".into()),
                transitions: 0,
            }],
            domains: None,
        }],
        collectors: vec![CollectorView {
            name: "md".into(),
            present: true,
            up: false,
            last_success: Some(1_767_225_000.0),
            duration_seconds: 10.0,
            errors_total: 3,
            last_error: Some("timed out after 10s".into()),
        }],
        ..Snapshot::default()
    }
}

const VALIDATE: &str = r#"
import json, sys
try:
    import jsonschema
except ImportError:
    sys.exit("python3 module jsonschema missing: install the Debian package python3-jsonschema")
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
docs = json.load(open(sys.argv[2]))
bad = 0
for name, doc in sorted(docs.items()):
    for e in sorted(v.iter_errors(doc), key=str):
        print(f"{name}: at {list(e.absolute_path)}: {e.message}")
        bad += 1
print(f"checked {len(docs)} documents, {bad} errors")
sys.exit(1 if bad else 0)
"#;

/// Runs the validator; returns whether every document passed, and its output.
fn validate(docs: &Map<String, Value>) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("docs.json");
    std::fs::write(&file, serde_json::to_vec(docs).expect("json")).expect("write");
    // Debian's interpreter, where the package python3-jsonschema installs (a python3 earlier
    // on PATH, such as a pyenv one, would not see it).
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(VALIDATE)
        .arg(repo().join("docs/api/status-v1.schema.json"))
        .arg(&file)
        .output()
        .expect("python3 runs: install the Debian packages python3 and python3-jsonschema");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn schema_matches_every_golden_fixture() {
    let docs = golden_documents();
    assert!(docs.len() >= 30, "only {} golden scenarios", docs.len());
    // The fixtures between them show every state, every role and a collector down.
    let all = Value::Object(docs.clone()).to_string();
    for s in [
        "redundant",
        "degraded",
        "no_redundancy",
        "failed",
        "unknown",
    ] {
        assert!(
            all.contains(&format!("\"state\":\"{s}\"")),
            "no fixture is {s}"
        );
    }
    for r in ["active", "standby", "spare"] {
        assert!(
            all.contains(&format!("\"role\":\"{r}\"")),
            "no member is {r}"
        );
    }
    let (ok, out) = validate(&docs);
    assert!(ok, "{out}");
    eprintln!("{}", out.trim());
}

#[test]
fn schema_rejects_what_it_does_not_describe() {
    let docs = golden_documents();
    let (name, doc) = docs
        .iter()
        .find(|(_, d)| d["groups"].as_array().is_some_and(|g| !g.is_empty()))
        .expect("a scenario with groups");
    let mut bad = Map::new();
    let mut wrong_state = doc.clone();
    wrong_state["groups"][0]["state"] = json!("mostly_fine");
    bad.insert(format!("{name}-state"), wrong_state);
    let mut extra = doc.clone();
    extra["groups"][0]["undocumented"] = json!(1);
    bad.insert(format!("{name}-extra"), extra);
    let mut missing = doc.clone();
    missing["verdict"]
        .as_object_mut()
        .expect("verdict")
        .remove("summary");
    bad.insert(format!("{name}-missing"), missing);
    let (ok, out) = validate(&bad);
    assert!(!ok, "{out}");
    for want in ["mostly_fine", "undocumented", "summary"] {
        assert!(out.contains(want), "{want} not reported: {out}");
    }
}
