//! The one store of everything the agent persists in `--state.dir` (group since and
//! transitions, remembered members, vanished groups).
//!
//! - **One writer, off the evaluation path**: the engine hands a new image to [`Writer`]
//!   (latest wins, never blocks); a thread of its own writes it. A FIFO or a hung mount at
//!   the path stalls only that thread.
//! - **Atomic writes**: a temp file with a random name, opened `O_CREAT|O_EXCL|O_NOFOLLOW`
//!   (nothing planted in the directory is followed or truncated), fsync, rename over the
//!   file, fsync of the directory. A crash leaves the old or the new file, never half.
//! - **A lock**: the agent holds `flock` on `lock` in the directory for its whole life; a
//!   second agent on the same directory exits with a message naming it. `status`, `check`
//!   and `forget` (while an agent runs) never write the store.
//! - **Collector memory**: each collector's own memory (hwmon's fans seen spinning) is a
//!   section of the same file; the collector gets it through a
//!   [`CollectorMemory`](sparewatch_collectors::CollectorMemory) built by [`Sections`], and
//!   its updates reach the same writer thread. A collector's old file of its own
//!   ([`LEGACY_FILES`]) is migrated into its section on load, and left in place.
//! - **Forget requests**: `sparewatch forget` drops a file into `forget/`; the writer
//!   thread picks it up within a second and the engine applies it.

pub mod format;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
pub use format::{parse, Persisted, PersistedGroup, RememberedMember};

pub const FILE_NAME: &str = "groups.json";
const LOCK_NAME: &str = "lock";
const FORGET_DIR: &str = "forget";
/// A state file larger than this is not ours (it is refused, not read whole).
const MAX_BYTES: u64 = 64 << 20;
/// A load that takes longer (hung mount) is given up: the agent starts without memory.
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Files collectors kept themselves before the store held their memory: `(collector,
/// file)`. When the store has no section for the collector, the file's JSON becomes it (the
/// collector's shape is unchanged); the file is left as it was, readable by an older release.
pub const LEGACY_FILES: &[(&str, &str)] = &[("hwmon", "hwmon.json")];
/// The store format version that holds the collectors' sections: files written in it or
/// later have migrated the [`LEGACY_FILES`] already.
const COLLECTORS_SINCE: u32 = 3;

/// Reads one regular file (no FIFO, no device, at most `MAX_BYTES`); `None` when absent.
fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match sparewatch_collectors::roots::read_bounded(path, MAX_BYTES) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Loads the store of `dir` read-only. Any problem is logged and yields an empty store;
/// a load that hangs is abandoned after a few seconds.
pub fn load(dir: &Path) -> Persisted {
    load_checked(dir).unwrap_or_default()
}

/// Like [`load`], but says whether the file could be read (`None`: unreadable or corrupt).
pub fn load_checked(dir: &Path) -> Option<Persisted> {
    let path = dir.join(FILE_NAME);
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    let legacy_dir = dir.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("store-load".into())
        .spawn(move || {
            let _ = tx.send(read_bounded(&p).map(|b| (b, read_legacy(&legacy_dir))));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the store loader; starting fresh");
        return None;
    }
    match rx.recv_timeout(LOAD_TIMEOUT) {
        Ok(Ok((None, legacy))) => Some(migrate(Persisted::default(), legacy)),
        // A file this release wrote has already migrated whatever there was (an operator
        // who removed a section there does not get the old file back).
        Ok(Ok((Some(bytes), legacy))) => match format::parse_versioned(&bytes) {
            Ok((p, COLLECTORS_SINCE..)) => Some(p),
            Ok((p, _)) => Some(migrate(p, legacy)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "corrupt state file ignored; starting fresh");
                None
            }
        },
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read state file; starting fresh");
            None
        }
        Err(_) => {
            tracing::warn!(path = %path.display(), "reading the state file hangs; starting fresh");
            None
        }
    }
}

/// The collectors' old files that parse as JSON, by collector; unreadable ones are logged.
fn read_legacy(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (collector, file) in LEGACY_FILES {
        let path = dir.join(file);
        let parsed = match read_bounded(&path) {
            Ok(None) => continue,
            Ok(Some(b)) => serde_json::from_slice(&b).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(v) => out.push((collector.to_string(), v)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "old collector state file not migrated")
            }
        }
    }
    out
}

/// Old files become the collectors' sections of a store written before it had them.
fn migrate(mut p: Persisted, legacy: Vec<(String, serde_json::Value)>) -> Persisted {
    for (collector, v) in legacy {
        if let std::collections::btree_map::Entry::Vacant(e) = p.collectors.entry(collector) {
            tracing::info!(collector = %e.key(), "collector memory migrated into the store");
            e.insert(v);
        }
    }
    p
}

pub use sparewatch_collectors::roots::write_atomic;

/// The collectors' sections of the store, shared by their [`CollectorMemory`] handles and
/// the writer thread: an update replaces the collector's section and marks it for writing.
///
/// [`CollectorMemory`]: sparewatch_collectors::CollectorMemory
#[derive(Clone, Default)]
pub struct Sections {
    inner: Arc<Mutex<(BTreeMap<String, serde_json::Value>, bool)>>,
}

impl Sections {
    /// Starts from the sections loaded from the store.
    pub fn new(loaded: BTreeMap<String, serde_json::Value>) -> Self {
        Sections {
            inner: Arc::new(Mutex::new((loaded, false))),
        }
    }

    /// The handle `collector` is built with: its loaded section, and (unless `read_only`)
    /// a sink into these sections.
    pub fn memory_for(
        &self,
        collector: &'static str,
        read_only: bool,
    ) -> sparewatch_collectors::CollectorMemory {
        let loaded = self
            .inner
            .lock()
            .ok()
            .and_then(|g| g.0.get(collector).cloned());
        let sink = (!read_only).then(|| {
            let inner = self.inner.clone();
            move |v: serde_json::Value| {
                if let Ok(mut g) = inner.lock() {
                    g.0.insert(collector.to_string(), v);
                    g.1 = true;
                }
            }
        });
        sparewatch_collectors::CollectorMemory::new(loaded, sink)
    }

    /// All sections, and whether any changed since the last call.
    fn take(&self) -> (BTreeMap<String, serde_json::Value>, bool) {
        match self.inner.lock() {
            Ok(mut g) => {
                let changed = std::mem::replace(&mut g.1, false);
                (g.0.clone(), changed)
            }
            Err(_) => (BTreeMap::new(), false),
        }
    }
}

fn random_suffix() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Temp files a killed writer left behind (only ever removed under the lock).
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        // `.groups.json.<random>.tmp`, `.hwmon.json.<random>.tmp`
        if name.starts_with('.') && name.ends_with(".tmp") && name.contains(".json.") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The agent's hold on a state directory: the lock plus what was loaded.
pub struct Store {
    dir: PathBuf,
    _lock: File,
    /// What was loaded: written back (with the collectors' sections) until the engine
    /// hands over its first image.
    loaded: Persisted,
}

impl Store {
    /// Takes the directory's lock (creating the directory), or fails naming who holds it.
    pub fn open(dir: &Path) -> anyhow::Result<(Store, Persisted)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let lock = try_lock(dir)?.ok_or_else(|| {
            anyhow::anyhow!(
                "state directory {} is in use by another sparewatch agent (it holds the lock on {}); \
                 run one agent per --state.dir",
                dir.display(),
                dir.join(LOCK_NAME).display()
            )
        })?;
        remove_stale_temps(dir);
        let persisted = load(dir);
        Ok((
            Store {
                dir: dir.to_path_buf(),
                _lock: lock,
                loaded: persisted.clone(),
            },
            persisted,
        ))
    }

    /// Starts the writer thread, which writes the engine's images and the collectors'
    /// `sections`; forget requests found in the directory are passed to `on_forget` (which
    /// hands them to the engine).
    pub fn spawn_writer(
        self,
        sections: Sections,
        on_forget: impl Fn(Vec<String>) -> bool + Send + 'static,
    ) -> std::io::Result<Writer> {
        let shared = Arc::new((Mutex::new(None::<Persisted>), Condvar::new()));
        let w = Writer {
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || self.writer_loop(&shared, &sections, on_forget))?;
        Ok(w)
    }

    fn writer_loop(
        self,
        shared: &(Mutex<Option<Persisted>>, Condvar),
        sections: &Sections,
        on_forget: impl Fn(Vec<String>) -> bool,
    ) {
        let (lock, cv) = shared;
        let mut failing = false;
        let mut last = self.loaded.clone();
        loop {
            let next = {
                let Ok(guard) = lock.lock() else { return };
                let Ok((mut guard, _)) =
                    cv.wait_timeout_while(guard, Duration::from_millis(500), |p| p.is_none())
                else {
                    return;
                };
                guard.take()
            };
            let (collectors, sections_changed) = sections.take();
            let next = match next {
                Some(p) => Some(p),
                None if sections_changed => Some(last.clone()),
                None => None,
            };
            if let Some(mut p) = next {
                last = p.clone();
                p.collectors = collectors;
                let bytes = match serde_json::to_vec_pretty(&p) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot serialize the store");
                        continue;
                    }
                };
                match write_atomic(&self.dir, FILE_NAME, &bytes) {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(dir = %self.dir.display(), "state written again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot persist group states (retried on the next change)");
                    }
                    Err(_) => {}
                }
            }
            for targets in take_forget_requests(&self.dir) {
                if !on_forget(targets) {
                    return;
                }
            }
        }
    }
}

fn try_lock(dir: &Path) -> anyhow::Result<Option<File>> {
    let path = dir.join(LOCK_NAME);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` only reads the descriptor number; `f` owns that descriptor and
    // outlives the call, so it is open and ours. No memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e).with_context(|| format!("locking {}", path.display()))
    }
}

/// Whether an agent holds the directory's lock now (`forget` asks before it writes).
pub fn agent_running(dir: &Path) -> anyhow::Result<bool> {
    Ok(try_lock(dir)?.is_none())
}

/// Hands images to the writer thread; never blocks on the disk.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<(Mutex<Option<Persisted>>, Condvar)>,
}

impl Writer {
    /// Queues `p` to be written; a newer image replaces one not yet written.
    pub fn save(&self, p: Persisted) {
        let (lock, cv) = &*self.shared;
        if let Ok(mut g) = lock.lock() {
            *g = Some(p);
            cv.notify_one();
        }
    }
}

/// Drops a forget request for the running agent.
pub fn request_forget(dir: &Path, targets: &[String]) -> std::io::Result<PathBuf> {
    let d = dir.join(FORGET_DIR);
    std::fs::create_dir_all(&d)?;
    let name = format!("{}.req", random_suffix());
    write_atomic(&d, &name, (targets.join("\n") + "\n").as_bytes())?;
    Ok(d.join(name))
}

fn take_forget_requests(dir: &Path) -> Vec<Vec<String>> {
    let d = dir.join(FORGET_DIR);
    let Ok(entries) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".req") || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        match read_bounded(&path) {
            Ok(Some(bytes)) => out.push(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "forget request ignored"),
        }
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// Forgets `target` (`GROUP` or `GROUP/MEMBER`) in `p`; returns what was forgotten, or why not.
pub fn forget(p: &mut Persisted, target: &str) -> Result<String, String> {
    if p.groups.remove(target).is_some() {
        return Ok(format!("group {target}"));
    }
    if let Some((group, member)) = target.rsplit_once('/') {
        if let Some(g) = p.groups.get_mut(group) {
            return match g.members.remove(member) {
                Some(_) => Ok(format!("member {member} of group {group}")),
                None => Err(format!(
                    "group {group} has no remembered member {member} (remembered: {})",
                    g.members.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            };
        }
    }
    Err(format!("no group {target} is remembered"))
}

/// `sparewatch forget`: checks every target against the store first (refusing names it
/// does not know, changing nothing), then either edits the store under its lock (no agent
/// runs) or hands the request to the running agent and waits until it has written the
/// result. Returns one line per forgotten thing.
pub fn forget_cli(dir: &Path, targets: &[String]) -> anyhow::Result<Vec<String>> {
    let path = dir.join(FILE_NAME);
    let mut p = load_checked(dir).ok_or_else(|| {
        anyhow::anyhow!("cannot read {} (see the log line above)", path.display())
    })?;
    let mut done = Vec::new();
    for t in targets {
        done.push(forget(&mut p, t).map_err(|e| anyhow::anyhow!("{e}; nothing forgotten"))?);
    }
    match try_lock(dir)? {
        Some(_lock) => {
            let bytes = serde_json::to_vec_pretty(&p)?;
            write_atomic(dir, FILE_NAME, &bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(done.into_iter().map(|d| format!("forgot {d}")).collect())
        }
        None => {
            let req = request_forget(dir, targets)
                .with_context(|| format!("asking the running agent in {}", dir.display()))?;
            let start = std::time::Instant::now();
            while req.exists() {
                if start.elapsed() > Duration::from_secs(15) {
                    anyhow::bail!(
                        "the running agent has not taken the request within 15s; it stays queued as {}",
                        req.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Taken: wait for the agent's next write to show it.
            let taken = std::time::Instant::now();
            while taken.elapsed() < Duration::from_secs(3) {
                if let Some(mut now) = load_checked(dir) {
                    if targets.iter().all(|t| forget(&mut now, t).is_err()) {
                        return Ok(done
                            .into_iter()
                            .map(|d| format!("forgot {d} (applied by the running agent)"))
                            .collect());
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(done
                .into_iter()
                .map(|d| {
                    format!("forgot {d} (applied by the running agent; still reported, so remembered again)")
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An old `hwmon.json` becomes the `hwmon` section of a missing or pre-3 store, is
    /// left in place, and is never taken in again by a store this release wrote.
    #[test]
    fn old_collector_file_migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = br#"{"version":1,"seen_spinning":["nct6775/fan1"],"max_members":{}}"#;
        std::fs::write(dir.path().join("hwmon.json"), old).expect("write");
        let want: serde_json::Value = serde_json::from_slice(old).expect("json");
        // no store yet, then a version-2 store: both take the old file in
        assert_eq!(load(dir.path()).collectors.get("hwmon"), Some(&want));
        std::fs::write(dir.path().join(FILE_NAME), br#"{"version":2,"groups":{}}"#).expect("write");
        assert_eq!(load(dir.path()).collectors.get("hwmon"), Some(&want));
        // a version-3 store without the section (an operator removed it) stays without
        std::fs::write(dir.path().join(FILE_NAME), br#"{"version":3,"groups":{}}"#).expect("write");
        assert_eq!(load(dir.path()).collectors.get("hwmon"), None);
        assert_eq!(
            std::fs::read(dir.path().join("hwmon.json")).expect("kept"),
            old.to_vec()
        );
        // an old file that is not JSON is not migrated, and the store still loads
        std::fs::remove_file(dir.path().join(FILE_NAME)).expect("rm");
        std::fs::write(dir.path().join("hwmon.json"), b"{not json").expect("write");
        assert!(load_checked(dir.path()).is_some_and(|p| p.collectors.is_empty()));
    }

    /// A read-only handle loads its section and never reaches the store; a writable one
    /// replaces the section and marks it for the writer.
    #[test]
    fn sections_hand_out_memory_and_collect_updates() {
        let mut loaded = BTreeMap::new();
        loaded.insert("hwmon".to_string(), serde_json::json!({"a": 1}));
        let s = Sections::new(loaded);
        let ro = s.memory_for("hwmon", true);
        assert_eq!(
            ro.load::<serde_json::Value>("hwmon"),
            Some(serde_json::json!({"a": 1}))
        );
        ro.save("hwmon", &serde_json::json!({"a": 2}));
        assert!(!s.take().1);
        s.memory_for("hwmon", false)
            .save("hwmon", &serde_json::json!({"a": 3}));
        let (m, changed) = s.take();
        assert!(changed);
        assert_eq!(m["hwmon"], serde_json::json!({"a": 3}));
        assert!(!s.take().1);
    }

    #[test]
    fn atomic_write_never_follows_a_planted_link_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        // A link planted where the old fixed temp name was.
        std::os::unix::fs::symlink(&victim, dir.path().join("groups.json.tmp")).expect("ln");
        let (store, p) = Store::open(dir.path()).expect("open");
        assert_eq!(p, Persisted::default());
        let mut p = Persisted::default();
        p.groups
            .insert("bond:bond0".into(), PersistedGroup::new("degraded", 5.0, 1));
        write_atomic(dir.path(), FILE_NAME, &serde_json::to_vec(&p).expect("ser")).expect("w");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(load(dir.path()), p);
        // A second agent on the same directory is refused, naming the directory.
        let err = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(err.contains("in use by another sparewatch agent"), "{err}");
        drop(store);
        assert!(Store::open(dir.path()).is_ok());
    }

    #[test]
    fn a_fifo_or_corrupt_file_loads_empty_without_hanging() {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::unistd::mkfifo(&dir.path().join(FILE_NAME), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        assert_eq!(load_checked(dir.path()), None);
        std::fs::remove_file(dir.path().join(FILE_NAME)).expect("rm");
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        assert_eq!(load_checked(dir.path()), None);
    }

    #[test]
    fn forget_groups_and_members_refusing_unknown_names() {
        let mut p = Persisted::default();
        let mut g = PersistedGroup::new("degraded", 5.0, 1);
        g.members.insert(
            "eth2".into(),
            RememberedMember {
                role: "active".into(),
                absent_since: None,
            },
        );
        p.groups.insert("bond:bond0".into(), g.clone());
        p.groups.insert("hwraid:c0/v0".into(), g);
        assert!(forget(&mut p, "bond:bond9").is_err());
        assert!(forget(&mut p, "bond:bond0/eth9").is_err());
        assert_eq!(
            forget(&mut p, "bond:bond0/eth2"),
            Ok("member eth2 of group bond:bond0".into())
        );
        assert_eq!(
            forget(&mut p, "hwraid:c0/v0"),
            Ok("group hwraid:c0/v0".into())
        );
        assert_eq!(p.groups.keys().collect::<Vec<_>>(), vec!["bond:bond0"]);
    }
}
