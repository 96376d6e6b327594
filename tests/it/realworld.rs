//! The corpus test (issue 15): every fixture tree of the repository (`tests/fixtures/*/`)
//! through the built binary's `status --format json`, every collector enabled. It fails on
//! any collector error that the tree does not expect, on an expected error that did not
//! happen (so an `expected-errors` file cannot rot), on an unknown member without a reason,
//! and on a panic or a non-JSON answer.
//!
//! A tree that is meant to take a collector down says so in `expected-errors`, one line per
//! collector: `<collector>: <text the error contains>` (`#` starts a comment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{fixture_args, repo, sparewatch};

/// Every directory under tests/fixtures, sorted.
fn fixture_trees() -> Vec<PathBuf> {
    let dir = repo().join("tests/fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// `expected-errors` of a tree: collector → text its error must contain.
fn expected_errors(tree: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(tree.join("expected-errors")) else {
        return BTreeMap::new();
    };
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (c, t) = l.split_once(':').unwrap_or_else(|| {
                panic!(
                    "{}: line {l:?} is not '<collector>: <text>'",
                    tree.display()
                )
            });
            (c.trim().to_string(), t.trim().to_string())
        })
        .collect()
}

/// The problems `status --format json` shows for one tree; empty when it is as expected.
fn problems(tree: &Path) -> Vec<String> {
    let name = tree.file_name().unwrap_or_default().to_string_lossy();
    let mut args = vec!["status".to_string(), "--format".into(), "json".into()];
    args.extend(fixture_args(tree));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sparewatch(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut found = Vec::new();
    if stderr.contains("panicked") {
        found.push(format!("{name}: a thread panicked:\n{stderr}"));
    }
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            found.push(format!(
                "{name}: status printed no JSON ({e}); stderr:\n{stderr}"
            ));
            return found;
        }
    };
    let mut expected = expected_errors(tree);
    let collectors = v["collectors"].as_array().cloned().unwrap_or_default();
    if collectors.is_empty() {
        found.push(format!("{name}: no collector in the answer"));
    }
    for c in &collectors {
        let cname = c["name"].as_str().unwrap_or("?");
        let up = c["up"].as_bool().unwrap_or(false);
        let err = c["last_error"].as_str().unwrap_or("");
        match (up, expected.remove(cname)) {
            (true, None) => {}
            (false, None) => found.push(format!("{name}: collector {cname} down: {err}")),
            (false, Some(want)) if err.contains(&want) => {}
            (false, Some(want)) => found.push(format!(
                "{name}: collector {cname} down with {err:?}, expected an error containing {want:?}"
            )),
            (true, Some(want)) => found.push(format!(
                "{name}: collector {cname} is up, expected-errors says {want:?}"
            )),
        }
    }
    for (cname, want) in expected {
        found.push(format!(
            "{name}: expected-errors names {cname} ({want:?}), which did not run"
        ));
    }
    for g in v["groups"].as_array().into_iter().flatten() {
        for m in g["members"].as_array().into_iter().flatten() {
            let unknown = m["unknown"].as_bool().unwrap_or(false);
            let reason = m["reason"].as_str().unwrap_or("");
            if unknown && reason.trim().is_empty() {
                found.push(format!(
                    "{name}: {} member {} is unknown without a reason",
                    g["name"], m["name"]
                ));
            }
        }
    }
    found
}

#[test]
fn every_fixture_tree_reports_only_the_errors_it_expects() {
    let trees = fixture_trees();
    assert!(
        trees.len() >= 40,
        "only {} fixture trees found",
        trees.len()
    );
    let found: Vec<String> = trees.iter().flat_map(|t| problems(t)).collect();
    assert!(
        found.is_empty(),
        "{} problem(s) in {} fixture trees:\n{}",
        found.len(),
        trees.len(),
        found.join("\n")
    );
}

/// The corpus test can fail: a tree whose collector goes down without an
/// `expected-errors` entry, and an entry for an error that does not happen, are found.
#[test]
fn the_corpus_check_finds_unexpected_and_missing_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sys/block")).expect("mkdir");
    // /proc/mdstat as a directory: md as a whole unreadable, so md is down.
    std::fs::create_dir_all(tree.join("proc/mdstat")).expect("mkdir");
    let found = problems(&tree);
    assert!(
        found.len() == 1 && found[0].contains("collector md down"),
        "{found:?}"
    );
    std::fs::write(
        tree.join("expected-errors"),
        "# the file is a directory\nmd: mdstat\nnet: never happens\n",
    )
    .expect("write");
    let found = problems(&tree);
    assert!(
        found.len() == 1 && found[0].contains("collector net is up"),
        "{found:?}"
    );
}
