//! The store's on-disk format (`groups.json`), versioned.
//!
//! Version 1 (the previous release) held `state`, `since` and `transitions` per group.
//! Version 2 adds what the agent remembers about each group: the collector and kind that
//! reported it, its remembered members (every member seen healthy, by stable name, with
//! the moment it went absent) and the moment the whole group vanished. A version-1 file
//! loads as version 2 with those fields empty (serde defaults): nothing to convert.
//! Version 3 adds `collectors`: each collector's own memory, one section per collector
//! (hwmon's fans seen spinning and group sizes, formerly `hwmon.json`; see
//! [`super::LEGACY_FILES`] for how such a file is migrated). A version-2 file has none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    pub version: u32,
    pub groups: BTreeMap<String, PersistedGroup>,
    /// Each collector's memory, by collector name, in the collector's own shape.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collectors: BTreeMap<String, serde_json::Value>,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted {
            version: VERSION,
            groups: BTreeMap::new(),
            collectors: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersistedGroup {
    pub state: String,
    /// Unix seconds.
    pub since: f64,
    pub transitions: u64,
    /// The collector that reported the group (absent in version-1 files until it is seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<u32>,
    /// Every member the group had while healthy, until an operator forgets it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, RememberedMember>,
    /// Unix seconds when the group's collector reported without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vanished_at: Option<f64>,
}

impl PersistedGroup {
    pub fn new(state: &str, since: f64, transitions: u64) -> Self {
        PersistedGroup {
            state: state.to_string(),
            since,
            transitions,
            collector: None,
            kind: None,
            required: None,
            members: BTreeMap::new(),
            vanished_at: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RememberedMember {
    pub role: String,
    /// Unix seconds since the member is missing from its group's readings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent_since: Option<f64>,
}

/// Parses a state file's bytes (any version this release knows). Entries whose timestamps
/// no clock could have written (negative, non-finite, far future) are dropped with a
/// warning: they start fresh.
pub fn parse(bytes: &[u8]) -> Result<Persisted, String> {
    parse_versioned(bytes).map(|(p, _)| p)
}

/// [`parse`], also saying which version the file was written in.
pub fn parse_versioned(bytes: &[u8]) -> Result<(Persisted, u32), String> {
    let mut p: Persisted = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if p.version > VERSION {
        return Err(format!(
            "format version {} is newer than this release understands ({VERSION})",
            p.version
        ));
    }
    let written_in = p.version;
    p.version = VERSION;
    p.groups.retain(|name, g| {
        let ok = crate::snapshot::from_unix(g.since).is_some()
            && g.vanished_at.is_none_or(|t| crate::snapshot::from_unix(t).is_some());
        if !ok {
            tracing::warn!(group = %name, since = g.since, "state file entry with an impossible since-timestamp ignored");
        }
        ok
    });
    for g in p.groups.values_mut() {
        for m in g.members.values_mut() {
            if m.absent_since
                .is_some_and(|t| crate::snapshot::from_unix(t).is_none())
            {
                m.absent_since = None;
            }
        }
    }
    Ok((p, written_in))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_migrates_and_absurd_entries_are_dropped() {
        let absurd = br#"{"version":1,"groups":{"a":{"state":"failed","since":1e300,"transitions":1},
            "b":{"state":"failed","since":-5,"transitions":1},"c":{"state":"failed","since":10,"transitions":1}}}"#;
        let p = parse(absurd).expect("parses");
        assert_eq!(p.groups.keys().collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(p.version, VERSION);
        assert_eq!(p.groups["c"], PersistedGroup::new("failed", 10.0, 1));
        assert!(parse(br#"{"version":99,"groups":{}}"#).is_err());
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn round_trips() {
        let mut p = Persisted::default();
        let mut g = PersistedGroup::new("degraded", 1000.5, 3);
        g.collector = Some("net".into());
        g.members.insert(
            "eth2".into(),
            RememberedMember {
                role: "active".into(),
                absent_since: Some(1001.0),
            },
        );
        p.groups.insert("bond:bond0".into(), g);
        p.collectors
            .insert("hwmon".into(), serde_json::json!({"version": 1}));
        let bytes = serde_json::to_vec(&p).expect("ser");
        assert_eq!(parse(&bytes).expect("parses"), p);
    }

    /// The since-timestamp that came back one f64 step off after a restart in a test run:
    /// serde_json's default float parser is not always exact; `float_roundtrip` is.
    #[test]
    fn a_since_comes_back_to_the_last_bit() {
        let mut p = Persisted::default();
        p.groups.insert(
            "bond:bond0".into(),
            PersistedGroup::new("no_redundancy", 1795994035.6148493, 1),
        );
        let back = parse(&serde_json::to_vec(&p).expect("ser")).expect("parses");
        assert_eq!(
            back.groups["bond:bond0"].since.to_bits(),
            1795994035.6148493f64.to_bits()
        );
    }

    proptest::proptest! {
        /// Any since-timestamp (any f64 the clock can give) is read back bit for bit.
        #[test]
        fn since_round_trips_bit_for_bit(since in 0.0f64..1e11) {
            let mut p = Persisted::default();
            p.groups.insert("g".into(), PersistedGroup::new("redundant", since, 0));
            let back = parse(&serde_json::to_vec(&p).expect("ser")).expect("parses");
            proptest::prop_assert_eq!(back.groups["g"].since.to_bits(), since.to_bits());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
