//! Event source for md: `poll()` for POLLPRI/POLLERR on sysfs attributes and
//! `/proc/mdstat`, the kernel's way to say "this file changed, read it again".
//!
//! sysfs (kernfs) attributes that the kernel notifies (md's `array_state`, `degraded`,
//! `sync_action`, `dev-*/state`) and `/proc/mdstat` (`md_seq_poll`) report POLLPRI|POLLERR
//! once the value changed after the last read. Regular files (fixture trees) never report
//! POLLPRI, so the thread just sleeps until its rescan timeout there.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::Wake;

/// Opens `path` and reads it once, which arms the kernel's change notification.
fn open_armed(path: &PathBuf) -> Option<File> {
    let mut f = File::open(path).ok()?;
    let mut buf = [0u8; 4096];
    // Read until EOF: seq_file (mdstat) sets its event mark while printing.
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    let _ = f.seek(SeekFrom::Start(0));
    Some(f)
}

/// Waits for POLLPRI/POLLERR on the files `paths()` lists and wakes on each change. After
/// every change, and at least every `rescan`, the list is built anew (arrays and members
/// come and go). At most `max_files` of them are held open (the first ones: `paths()` puts
/// the most telling first); a longer list is logged once. Returns once the thread is
/// started.
pub fn spawn_poll_watcher(
    name: &str,
    wake: Wake,
    rescan: Duration,
    max_files: usize,
    paths: impl Fn() -> Vec<PathBuf> + Send + 'static,
) -> std::io::Result<()> {
    let who = name.to_string();
    let timeout = Timespec {
        tv_sec: rescan.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: rescan.subsec_nanos() as _,
    };
    thread::Builder::new()
        .name(format!("watch-{name}"))
        .spawn(move || {
            let mut changed = false;
            let mut warned = false;
            loop {
                // Arm first, wake second: a change after this read reports on the next
                // poll, and the collection the wake starts sees at least what was armed.
                let mut list = paths();
                if list.len() > max_files {
                    if !warned {
                        tracing::warn!(collector = %who, files = list.len(), watched = max_files,
                            "more files to watch than the descriptor budget; watching the first ones, the rest wait for those or the interval");
                        warned = true;
                    }
                    list.truncate(max_files);
                }
                let files: Vec<File> = list.iter().filter_map(open_armed).collect();
                if changed {
                    wake.wake();
                    changed = false;
                }
                if files.is_empty() {
                    thread::sleep(rescan);
                    continue;
                }
                let mut fds: Vec<PollFd<'_>> = files
                    .iter()
                    .map(|f| PollFd::new(f, PollFlags::PRI | PollFlags::ERR))
                    .collect();
                match poll(&mut fds, Some(&timeout)) {
                    Ok(0) => {}
                    Ok(_) => {
                        changed = fds.iter().any(|fd| {
                            fd.revents()
                                .intersects(PollFlags::PRI | PollFlags::ERR | PollFlags::NVAL)
                        });
                        // A file that keeps reporting without a change (a removed device's
                        // attribute reports POLLERR for good) must not spin the thread;
                        // the pause also lets a burst of md events settle into one wake.
                        thread::sleep(Duration::from_millis(20));
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "md poll failed; interval polling only");
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn counter() -> (Arc<AtomicUsize>, Wake) {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        (
            n,
            Wake::new(move || {
                n2.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn regular_files_never_wake() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("array_state");
        std::fs::write(&p, "clean\n").unwrap();
        let (n, wake) = counter();
        spawn_poll_watcher(
            "test-regular",
            wake,
            Duration::from_millis(100),
            8,
            move || vec![p.clone()],
        )
        .unwrap();
        thread::sleep(Duration::from_millis(400));
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }

    /// The same kernel mechanism md uses (seq_file poll with POLLPRI|POLLERR) on a file
    /// this host's kernel has: `/proc/<pid>/mounts` of a process in its own mount
    /// namespace reports a change when that process mounts something.
    #[test]
    fn wakes_on_a_real_kernel_poll_event() {
        let mut child = std::process::Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "sleep 0.5; mount -t tmpfs sparewatch-test /mnt; sleep 5",
            ])
            .spawn()
            .expect("unshare (util-linux) must be installed and mount namespaces allowed");
        // Wait until the child runs in its own mount namespace, so the file we watch is
        // that namespace's mount table.
        let ns = |pid: String| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let own = ns("self".into());
        let start = Instant::now();
        while ns(child.id().to_string()) == own && start.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(
            ns(child.id().to_string()),
            own,
            "child never left our mount namespace"
        );
        let mounts = PathBuf::from(format!("/proc/{}/mounts", child.id()));
        let (n, wake) = counter();
        // Budget 1: the file that changes is the first of the list; the second (a regular
        // file that never reports) is beyond the budget and not opened.
        let never = std::env::temp_dir().join("sparewatch-never-opened");
        spawn_poll_watcher("test-mounts", wake, Duration::from_secs(30), 1, move || {
            vec![mounts.clone(), never.clone()]
        })
        .unwrap();
        // The child mounts 0.5 s after it started: nothing may wake before.
        thread::sleep(Duration::from_millis(200));
        assert_eq!(n.load(Ordering::SeqCst), 0, "woke before anything changed");
        let start = Instant::now();
        while n.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(4) {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            n.load(Ordering::SeqCst) >= 1,
            "no wake within 4 s of a mount in the watched namespace"
        );
    }
}
