//! Filesystem roots (`--path.sysfs`, `--path.procfs`, `--path.rootfs`): every file a
//! collector reads goes through here, so tests point it at a fixture tree.

use std::io;
use std::path::{Path, PathBuf};

use crate::CollectError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    pub sysfs: PathBuf,
    pub procfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sysfs: PathBuf::from("/sys"),
            procfs: PathBuf::from("/proc"),
            rootfs: PathBuf::from("/"),
        }
    }
}

impl Roots {
    /// All three roots under one directory (`<dir>/sys`, `<dir>/proc`, `<dir>`): fixtures.
    pub fn under(dir: &Path) -> Self {
        Roots {
            sysfs: dir.join("sys"),
            procfs: dir.join("proc"),
            rootfs: dir.to_path_buf(),
        }
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn root(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel.trim_start_matches('/'))
    }

    /// Where an external tool is: the configured path if there is one, else the first of
    /// `candidates` (paths relative to `--path.rootfs`) that exists. `None`: not installed.
    pub fn find_tool(&self, configured: Option<&PathBuf>, candidates: &[&str]) -> Option<PathBuf> {
        if let Some(p) = configured {
            return Some(p.clone());
        }
        candidates.iter().map(|c| self.root(c)).find(|p| p.exists())
    }
}

/// The result of reading one sysfs attribute, keeping "absent" apart from "broken".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr {
    /// The file exists and was read (trailing newline removed).
    Value(String),
    /// The file does not exist.
    Missing,
    /// The kernel refused to answer (EINVAL on `carrier` of an interface that is down,
    /// ENODEV, EOPNOTSUPP on `speed`): the attribute has no meaningful value now.
    Unavailable,
}

impl Attr {
    pub fn value(&self) -> Option<&str> {
        match self {
            Attr::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A sysfs attribute is one page; anything much larger is not an attribute.
const MAX_ATTR: u64 = 64 * 1024;
/// A whole file (`/proc/mdstat`, a tool's config) larger than this is refused.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Reads one regular file, at most `max` bytes. Opened non-blocking and checked with
/// `fstat` before any read: a FIFO, socket or device planted at the path is an error at
/// once (it would block or never end), and a file over `max` (a 100 MB "attribute") is
/// refused without being read. A driver whose read hangs still blocks this thread: that
/// costs only this collector, which the engine marks down when its pass times out.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(if meta.is_dir() {
            "is a directory".to_string()
        } else {
            "not a regular file (FIFO, socket or device)".to_string()
        }));
    }
    if meta.len() > max {
        return Err(io::Error::other(format!(
            "{} bytes, more than the {max} this file can be",
            meta.len()
        )));
    }
    // procfs and sysfs files report size 0 (or one page): read at most `max` + 1 bytes.
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!("more than {max} bytes")));
    }
    Ok(bytes)
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// The one writer of state files (the agent's store, the hwmon memory): `dir/name` is
/// replaced atomically. A temp file with a random name (`.<name>.<random>.tmp`) opened
/// `O_CREAT|O_EXCL|O_NOFOLLOW` (nothing planted in the directory is followed or
/// truncated), fsync, rename, fsync of the directory. A crash leaves the old or the new
/// file, never half of one.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!(".{name}.{}.tmp", random_suffix()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a sysfs attribute (one bounded read, see [`read_bounded`]). Not-found is
/// `Missing`, the errors sysfs uses for "no value now" are `Unavailable`, anything else
/// (EIO, EACCES, a FIFO, an oversized file) is an error of the collector.
pub fn read_attr(path: &Path) -> Result<Attr, CollectError> {
    match read_bounded(path, MAX_ATTR) {
        Ok(bytes) => Ok(Attr::Value(
            String::from_utf8_lossy(&bytes).trim_end().to_string(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Attr::Missing),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL)
                    | Some(libc::ENODEV)
                    | Some(libc::EOPNOTSUPP)
                    | Some(libc::ENXIO)
            ) =>
        {
            Ok(Attr::Unavailable)
        }
        Err(e) => Err(CollectError::io(path, e)),
    }
}

/// A sysfs attribute's value, trimmed; `None` when it is missing, unavailable (see
/// [`read_attr`]) or empty. Errors as [`read_attr`].
pub fn read_value(path: &Path) -> Result<Option<String>, CollectError> {
    Ok(match read_attr(path)? {
        Attr::Value(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ => None,
    })
}

/// Reads a whole file (16 MiB at most, regular files only) to a string; `None` when it
/// does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, CollectError> {
    match read_bounded(path, MAX_FILE) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

/// Lists the entry names of a directory, sorted; an absent directory is empty.
pub fn list_dir(path: &Path) -> Result<Vec<String>, CollectError> {
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CollectError::io(path, e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| CollectError::io(path, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_value_trims_and_keeps_absent_apart_from_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("v"), "  raid5 \n").unwrap();
        std::fs::write(p("blank"), " \n").unwrap();
        assert_eq!(read_value(&p("v")).unwrap().as_deref(), Some("raid5"));
        assert_eq!(read_value(&p("blank")).unwrap(), None);
        assert_eq!(read_value(&p("absent")).unwrap(), None);
        // A directory cannot be read as an attribute: an error, not "absent".
        assert!(read_value(dir.path()).is_err());
    }

    #[test]
    fn a_fifo_or_a_huge_file_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo (coreutils) failed");
        let start = std::time::Instant::now();
        let e = read_attr(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_optional(&fifo).is_err());
        // 100 MB (sparse): refused from its size, not read.
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(100 << 20)
            .unwrap();
        let e = read_attr(&big).unwrap_err().to_string();
        assert!(e.contains("104857600 bytes"), "{e}");
        assert!(read_optional(&big).is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
