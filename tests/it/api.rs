//! The status API's JSON Schema (docs/api/status-v1.schema.json) against the API output of
//! every golden fixture, checked by a real validator (python3-jsonschema, Draft 2020-12).

use std::process::Command;

use serde_json::{json, Map, Value};

use crate::support::{fixed_now, fixture_args, repo};

/// The collectors a golden scenario is made for, from its name.
fn collectors_for(scenario: &str) -> Option<&'static [&'static str]> {
    let mut parts = scenario.split('-');
    let mut prefix = parts.next()?;
    if prefix == "domains" {
        // domains-bond-*, domains-md-*, domains-psu-*: by the kind that follows.
        prefix = parts.next()?;
    }
    Some(match prefix {
        "net" | "bond" => &["net"],
        "psu" => &["hwmon"],
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
    // A drilled group whose two members share a card, and a PSU group with a capacity check:
    // the failure domains and the last drill in every shape they take.
    let (snap, drills) = drilled_snapshot();
    let text = sparewatch::api::to_json_with(&snap, &host, &drills, false);
    docs.insert(
        "constructed-domains-drill".into(),
        serde_json::from_str(&text).expect("api json"),
    );
    // The example in docs/api.md is held to the same schema.
    let md = std::fs::read_to_string(repo().join("docs/api.md")).expect("docs/api.md");
    let example = md
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a json example in docs/api.md");
    docs.insert(
        "docs-api-example".into(),
        serde_json::from_str(example).expect("docs/api.md example is JSON"),
    );
    docs
}

/// Two groups with failure domains (one shared card, one PSU capacity check) and the
/// drill history of a `--state.dir`: one passed bond drill, one aborted scrub.
fn drilled_snapshot() -> (sparewatch::snapshot::Snapshot, sparewatch::api::Drills) {
    use sparewatch::domains::{CapacityView, GroupDomains, SharedDomain};
    use sparewatch::drill::store::{DrillStore, FileStore, Record};
    use sparewatch_collectors::FailureDomain;
    let mut snap = unknown_snapshot();
    let mut bond = snap.groups[0].clone();
    bond.name = "bond:bond0".into();
    bond.kind = "bond".into();
    bond.collector = "net".into();
    bond.state = sparewatch_collectors::GroupState::Redundant;
    bond.members[0].unknown = false;
    bond.members[0].healthy = true;
    bond.members[0].reason = None;
    let mut standby = bond.members[0].clone();
    standby.name = "eth1".into();
    standby.role = sparewatch_collectors::Role::Standby;
    bond.members[0].name = "eth0".into();
    bond.members.push(standby);
    bond.members_total = 2;
    bond.members_healthy = 2;
    bond.spare = 1;
    let card = FailureDomain::new("card", "0000:3b:00");
    bond.domains = Some(GroupDomains {
        effective_spare: Some(0),
        shared: vec![SharedDomain {
            kind: "card".into(),
            id: "0000:3b:00".into(),
            healthy_members: 2,
        }],
        unknown: [("switch".to_string(), 2)].into_iter().collect(),
        members: vec![
            (
                "eth0".into(),
                vec![card.clone(), FailureDomain::unknown("switch")],
            ),
            ("eth1".into(), vec![card, FailureDomain::unknown("switch")]),
        ],
        capacity: None,
    });
    let mut psu = bond.clone();
    psu.name = "psu:chassis".into();
    psu.kind = "psu".into();
    psu.collector = "ipmi".into();
    psu.domains = Some(GroupDomains {
        effective_spare: None,
        shared: vec![],
        unknown: Default::default(),
        members: vec![],
        capacity: Some(CapacityView {
            sufficient: Some(false),
            load_watts: Some(1100.0),
            after_loss_watts: Some(800.0),
            reason: "one PSU left carries 800 W of a 1100 W load".into(),
        }),
    });
    snap.groups.extend([bond, psu]);
    // The history as a drill writes it, through the drill store's own API.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(dir.path());
    for (group, kind, result, over, back) in [
        ("bond:bond0", "bond", "passed", Some(0.42), Some(0.38)),
        ("md:md0", "md", "aborted", None, None),
    ] {
        store
            .append_history(Record {
                group: group.into(),
                kind: kind.into(),
                result: result.into(),
                finished: 1_767_220_000.0,
                failover_seconds: over,
                failback_seconds: back,
                probes_lost: over.map(|_| 0),
                detail: String::new(),
            })
            .expect("append");
    }
    let drills = sparewatch::api::last_drills(&store.load_history());
    assert_eq!(drills.len(), 2);
    (snap, drills)
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
            pass_stats: Vec::new(),
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
    // ... and the failure domains (a shared one, a capacity check) and a last drill.
    for key in [
        "\"effective_spare\"",
        "\"shared\":[{",
        "\"capacity\":{",
        "\"last_drill\":{",
    ] {
        assert!(all.contains(key), "no fixture has {key}");
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
    // Inside the new objects too: a domain and a drill take no unknown field either.
    let drilled = &docs["constructed-domains-drill"];
    let at = drilled["groups"]
        .as_array()
        .and_then(|g| {
            g.iter()
                .position(|g| !g["last_drill"].is_null() && !g["domains"].is_null())
        })
        .expect("a drilled group with domains");
    let mut extra = drilled.clone();
    extra["groups"][at]["last_drill"]["undocumented_drill"] = json!(1);
    extra["groups"][at]["domains"]["undocumented_domain"] = json!(1);
    extra["groups"][at]["last_drill"]["result"] = json!("probably_fine");
    bad.insert("drill-extra".into(), extra);
    let mut missing = doc.clone();
    missing["verdict"]
        .as_object_mut()
        .expect("verdict")
        .remove("summary");
    bad.insert(format!("{name}-missing"), missing);
    let (ok, out) = validate(&bad);
    assert!(!ok, "{out}");
    for want in [
        "mostly_fine",
        "undocumented",
        "summary",
        "undocumented_drill",
        "undocumented_domain",
        "probably_fine",
    ] {
        assert!(out.contains(want), "{want} not reported: {out}");
    }
}
