//! The drill results as Prometheus series, rendered from the drill history file. The agent
//! points this at its `--state.dir` once at start ([`set_state_dir`]); the renderer calls
//! [`render`] on every evaluation, which re-reads the file only when it changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use super::store::{parse_history, History, HISTORY_FILE};
use crate::render::Families;

struct Cache {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
    history: History,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Renders drill results from `dir`'s history from now on (the agent calls this at start).
pub fn set_state_dir(dir: Option<&std::path::Path>) {
    if let Ok(mut c) = CACHE.lock() {
        *c = dir.map(|d| Cache {
            path: d.join(HISTORY_FILE),
            seen: None,
            history: History::default(),
        });
    }
}

/// The hook in `render::render`.
pub fn render(f: &mut Families) {
    super::schedule::render(f);
    let Ok(mut guard) = CACHE.lock() else {
        return;
    };
    let Some(cache) = guard.as_mut() else {
        return;
    };
    let stamp = std::fs::metadata(&cache.path)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    if stamp != cache.seen {
        cache.seen = stamp;
        cache.history = match std::fs::read(&cache.path) {
            Ok(b) => parse_history(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "corrupt drill history: no drill series rendered");
                History::default()
            }),
            Err(_) => History::default(),
        };
    }
    render_history(f, &cache.history);
}

/// The series of one history (pure; tested on its own).
pub fn render_history(f: &mut Families, h: &History) {
    let mut last: BTreeMap<(&str, &str, &str), f64> = BTreeMap::new();
    let mut newest: BTreeMap<(&str, &str), &super::store::Record> = BTreeMap::new();
    for r in &h.records {
        let k = (r.group.as_str(), r.kind.as_str(), r.result.as_str());
        let e = last.entry(k).or_insert(r.finished);
        *e = e.max(r.finished);
        let n = newest.entry((k.0, k.1)).or_insert(r);
        if r.finished >= n.finished {
            *n = r;
        }
    }
    for ((group, kind, result), t) in &last {
        f.gauge(
            "sparewatch_drill_last_timestamp_seconds",
            "When the last drill of the group with this result ended (Unix time): passed, failed, aborted.",
            &[("group", group), ("kind", kind), ("result", result)],
            *t,
        );
    }
    for ((group, kind), r) in &newest {
        for (phase, v) in [
            ("failover", r.failover_seconds),
            ("failback", r.failback_seconds),
        ] {
            if let Some(v) = v {
                f.gauge(
                    "sparewatch_drill_takeover_seconds",
                    "Measured in the group's newest drill: from the switch until traffic or I/O went through the member taking over.",
                    &[("group", group), ("kind", kind), ("phase", phase)],
                    v,
                );
            }
        }
        if let Some(n) = r.probes_lost {
            f.gauge(
                "sparewatch_drill_probes_lost",
                "Probes (ARP through a bond, direct reads through a multipath map) that got no answer in the group's newest drill.",
                &[("group", group), ("kind", kind)],
                n as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::Record;
    use super::*;

    fn rec(result: &str, finished: f64, fo: Option<f64>) -> Record {
        Record {
            group: "bond:bond0".into(),
            kind: "bond".into(),
            result: result.into(),
            finished,
            failover_seconds: fo,
            failback_seconds: fo.map(|v| v * 2.0),
            probes_lost: Some(1),
            detail: String::new(),
        }
    }

    #[test]
    fn newest_per_result_and_newest_measurements() {
        let h = History {
            version: 1,
            records: vec![
                rec("passed", 100.0, Some(0.5)),
                rec("failed", 200.0, None),
                rec("passed", 300.0, Some(0.25)),
            ],
        };
        let mut f = Families::default();
        render_history(&mut f, &h);
        let text = f.encode();
        assert!(text.contains(
            "sparewatch_drill_last_timestamp_seconds{group=\"bond:bond0\",kind=\"bond\",result=\"passed\"} 300"
        ), "{text}");
        assert!(text.contains("result=\"failed\"} 200"), "{text}");
        assert!(text.contains("phase=\"failover\"} 0.25"), "{text}");
        assert!(text.contains("phase=\"failback\"} 0.5"), "{text}");
        assert!(
            text.contains("sparewatch_drill_probes_lost{group=\"bond:bond0\",kind=\"bond\"} 1"),
            "{text}"
        );
    }
}
