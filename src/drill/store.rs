//! Where a drill keeps what must outlive it: the journal of the drill in progress (also the
//! lock: it exists while a drill runs) and the history of results. Behind [`DrillStore`] so
//! the persistent store can take both over later; [`FileStore`] keeps them as two JSON files
//! in `--state.dir`, each written atomically (temp file opened `O_EXCL|O_NOFOLLOW`, fsync,
//! rename, fsync of the directory).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const JOURNAL_FILE: &str = "drill-journal.json";
pub const HISTORY_FILE: &str = "drill-history.json";
/// Results kept per group; older ones are dropped (the newest per result is what is shown).
const HISTORY_PER_GROUP: usize = 20;

/// One change a drill made, and how it is undone. Written to the journal *before* the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undo {
    /// Write this slave back into `bonding/active_slave`.
    ActiveSlave { bond: String, slave: String },
    /// `ip link set <dev> up`.
    LinkUp { dev: String },
    /// `dmsetup message <map> 0 reinstate_path <path>`.
    ReinstatePath { map: String, path: String },
    /// `dmsetup message <map> 0 switch_group <group>`.
    SwitchGroup { map: String, group: u32 },
    /// `idle` into `md/sync_action` (stops a check the drill started).
    SyncIdle { md: String },
}

/// The drill in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub pid: u32,
    /// The process's start time (field 22 of /proc/PID/stat), so a reused PID is not taken
    /// for the drill's process.
    pub pid_start: u64,
    pub group: String,
    pub kind: String,
    /// Unix seconds.
    pub started: f64,
    /// Undone last-first.
    pub undo: Vec<Undo>,
}

/// One finished (or aborted) drill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub group: String,
    pub kind: String,
    /// `passed`, `failed` (the standby did not carry, or a step timed out; rolled back) or
    /// `aborted` (interrupted: SIGINT, or found in the journal after a crash; rolled back).
    pub result: String,
    /// Unix seconds when it ended.
    pub finished: f64,
    #[serde(default)]
    pub failover_seconds: Option<f64>,
    #[serde(default)]
    pub failback_seconds: Option<f64>,
    #[serde(default)]
    pub probes_lost: Option<u64>,
    #[serde(default)]
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub version: u32,
    pub records: Vec<Record>,
}

/// The boundary the persistent store will implement.
pub trait DrillStore {
    /// Creates the journal; fails with `AlreadyExists` when one is there (a drill runs or
    /// was interrupted): this is the drill lock.
    fn create_journal(&self, j: &Journal) -> std::io::Result<()>;
    /// Replaces the journal (after each step that adds an undo).
    fn update_journal(&self, j: &Journal) -> std::io::Result<()>;
    /// The journal, if one exists; `Err` when it exists but cannot be read or parsed.
    fn load_journal(&self) -> std::io::Result<Option<Journal>>;
    fn remove_journal(&self) -> std::io::Result<()>;
    fn load_history(&self) -> History;
    fn append_history(&self, r: Record) -> std::io::Result<()>;
}

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: &Path) -> Self {
        FileStore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn history_path(&self) -> PathBuf {
        self.dir.join(HISTORY_FILE)
    }
}

/// A new file, exclusive, never through a symlink, mode 0640, owned like its directory: a
/// drill run by root from the CLI in the agent's state dir leaves files the agent (its own
/// user) can read, to render the results and roll back after a crash.
fn open_new(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(dir) {
            // Only root may give a file away; for anyone else the owner already is right
            // or cannot be changed, and the file stays theirs.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
    }
    Ok(f)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Temp file (exclusive, no symlink followed) + fsync + rename + directory fsync.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A temp file left by a crash of this very PID: it is ours, and never a symlink we follow.
    let _ = std::fs::remove_file(&tmp);
    let mut f = open_new(&tmp)?;
    let r = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dir.join(name))?;
    fsync_dir(dir)
}

impl DrillStore for FileStore {
    fn create_journal(&self, j: &Journal) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(JOURNAL_FILE);
        let mut f = open_new(&path)?;
        let bytes = serde_json::to_vec_pretty(j).map_err(std::io::Error::other)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fsync_dir(&self.dir)
    }

    fn update_journal(&self, j: &Journal) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(j).map_err(std::io::Error::other)?;
        write_atomic(&self.dir, JOURNAL_FILE, &bytes)
    }

    fn load_journal(&self) -> std::io::Result<Option<Journal>> {
        let path = self.dir.join(JOURNAL_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn remove_journal(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(JOURNAL_FILE)) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn load_history(&self) -> History {
        match std::fs::read(self.history_path()) {
            Ok(b) => parse_history(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "corrupt drill history ignored");
                History::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => History::default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the drill history");
                History::default()
            }
        }
    }

    fn append_history(&self, r: Record) -> std::io::Result<()> {
        let mut h = self.load_history();
        h.version = 1;
        h.records.push(r);
        trim(&mut h);
        let bytes = serde_json::to_vec_pretty(&h).map_err(std::io::Error::other)?;
        write_atomic(&self.dir, HISTORY_FILE, &bytes)
    }
}

/// Parses a history file; records with impossible timestamps are dropped.
pub fn parse_history(bytes: &[u8]) -> Result<History, serde_json::Error> {
    let mut h: History = serde_json::from_slice(bytes)?;
    h.records
        .retain(|r| crate::snapshot::from_unix(r.finished).is_some());
    Ok(h)
}

/// Keeps the newest [`HISTORY_PER_GROUP`] records of each group.
fn trim(h: &mut History) {
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut keep = vec![false; h.records.len()];
    for (i, r) in h.records.iter().enumerate().rev() {
        let n = seen.entry(r.group.clone()).or_default();
        *n += 1;
        keep[i] = *n <= HISTORY_PER_GROUP;
    }
    let mut i = 0;
    h.records.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal {
            version: 1,
            pid: 1,
            pid_start: 2,
            group: "bond:bond0".into(),
            kind: "bond".into(),
            started: 1000.0,
            undo: vec![Undo::ActiveSlave {
                bond: "bond0".into(),
                slave: "eth0".into(),
            }],
        }
    }

    #[test]
    fn journal_is_a_lock_and_round_trips() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = FileStore::new(d.path());
        assert_eq!(s.load_journal().expect("load"), None);
        s.create_journal(&journal()).expect("create");
        let e = s.create_journal(&journal()).expect_err("second create");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        let mut j = journal();
        j.undo.push(Undo::LinkUp { dev: "eth1".into() });
        s.update_journal(&j).expect("update");
        assert_eq!(s.load_journal().expect("load"), Some(j));
        s.remove_journal().expect("remove");
        assert_eq!(s.load_journal().expect("load"), None);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 0);
    }

    #[test]
    fn journal_never_follows_a_symlink() {
        let d = tempfile::tempdir().expect("tempdir");
        let target = d.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, d.path().join(JOURNAL_FILE)).expect("symlink");
        let s = FileStore::new(d.path());
        assert!(s.create_journal(&journal()).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn history_keeps_the_newest_per_group_and_survives_garbage() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = FileStore::new(d.path());
        for i in 0..(HISTORY_PER_GROUP + 5) {
            for g in ["bond:bond0", "md:md0"] {
                s.append_history(Record {
                    group: g.into(),
                    kind: "bond".into(),
                    result: "passed".into(),
                    finished: 1000.0 + i as f64,
                    failover_seconds: None,
                    failback_seconds: None,
                    probes_lost: None,
                    detail: String::new(),
                })
                .expect("append");
            }
        }
        let h = s.load_history();
        assert_eq!(h.records.len(), 2 * HISTORY_PER_GROUP);
        assert_eq!(h.records.last().map(|r| r.finished), Some(1024.0));
        std::fs::write(s.history_path(), b"{nope").expect("write");
        assert_eq!(s.load_history(), History::default());
    }

    proptest::proptest! {
        #[test]
        fn history_parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_history(&bytes);
        }
    }
}
