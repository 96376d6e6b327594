//! Persists each group's state and since-timestamp in `--state.dir`, so "running without
//! redundancy for 41 days" survives an agent restart. Writes are atomic (temp + rename);
//! a missing or corrupt file is logged and ignored, never fatal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "groups.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    pub version: u32,
    pub groups: BTreeMap<String, PersistedGroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersistedGroup {
    pub state: String,
    /// Unix seconds.
    pub since: f64,
    pub transitions: u64,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> Self {
        StateFile {
            path: dir.join(FILE_NAME),
        }
    }

    /// Loads the persisted groups; any problem is logged and yields an empty state.
    pub fn load(&self) -> Persisted {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Persisted::default(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read state file; starting fresh");
                return Persisted::default();
            }
        };
        match parse(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "corrupt state file ignored; starting fresh");
                Persisted::default()
            }
        }
    }

    /// Writes atomically: a crash leaves either the old or the new file, never half of one.
    pub fn save(&self, p: &Persisted) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Parses a state file's bytes.
/// Parses a state file's bytes. Entries whose since-timestamp no clock could have written
/// (negative, non-finite, far future) are dropped with a warning: they start fresh.
pub fn parse(bytes: &[u8]) -> Result<Persisted, serde_json::Error> {
    let mut p: Persisted = serde_json::from_slice(bytes)?;
    p.groups.retain(|name, g| {
        let ok = crate::snapshot::from_unix(g.since).is_some();
        if !ok {
            tracing::warn!(group = %name, since = g.since, "state file entry with an impossible since-timestamp ignored");
        }
        ok
    });
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = StateFile::new(dir.path());
        assert_eq!(f.load(), Persisted::default());
        let mut p = Persisted::default();
        p.groups.insert(
            "bond:bond0".into(),
            PersistedGroup {
                state: "no_redundancy".into(),
                since: 1000.5,
                transitions: 3,
            },
        );
        f.save(&p).expect("save");
        assert_eq!(f.load(), p);
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        assert_eq!(f.load(), Persisted::default());
        let absurd = br#"{"version":1,"groups":{"a":{"state":"failed","since":1e300,"transitions":1},
            "b":{"state":"failed","since":-5,"transitions":1},"c":{"state":"failed","since":10,"transitions":1}}}"#;
        let p = parse(absurd).expect("parses");
        assert_eq!(p.groups.keys().collect::<Vec<_>>(), vec!["c"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
