//! Runs an external program (teamdctl, smartctl, storcli) with a fixed argument list (no
//! shell), a timeout, and bounded output. An absent binary is reported apart, so the
//! collector can say "not present" instead of "broken". Each program runs in a process
//! group of its own, and a timeout kills the whole group: a wrapper script's children
//! (or a hung `smartctl` under it) do not outlive the pass.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::CollectError;

/// Output is cut at this size: a misbehaving tool cannot make the agent grow without bound.
const MAX_OUTPUT: u64 = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct CommandOutput {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// `Ok(None)` when the binary does not exist.
pub fn run(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<Option<CommandOutput>, CollectError> {
    let shown = || format!("{} {}", program.display(), args.join(" "));
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Tools get no secrets of ours (BMC passwords may sit in the environment): only a
        // fixed PATH and the C locale, so their output parses the same everywhere.
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C")
        // Its own process group (pgid = its pid), so a timeout can kill all it started.
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CollectError::Command {
                command: shown(),
                detail: e.to_string(),
            })
        }
    };
    // Readers hand their bytes over a channel: a grandchild that keeps the pipe open after
    // the tool exited must not block us past the deadline (a join would).
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(CollectError::Command {
                    command: shown(),
                    detail: format!("no answer within {timeout:?}, killed"),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(CollectError::Command {
                    command: shown(),
                    detail: e.to_string(),
                })
            }
        }
    };
    Ok(Some(CommandOutput {
        status,
        stdout: out
            .recv_timeout(timeout.saturating_sub(start.elapsed()))
            .unwrap_or_default(),
        stderr: err
            .recv_timeout(timeout.saturating_sub(start.elapsed()))
            .unwrap_or_default(),
    }))
}

/// SIGKILL to the process group led by `pid` (the child started with `process_group(0)`).
fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: `killpg` takes two integers and touches no memory of ours. `pgid` is the id
    // of our not yet reaped child, which leads its own group (process_group(0)), so the
    // id cannot have been reused by an unrelated group.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

impl CommandOutput {
    /// The standard output of a run that exited 0; otherwise an error naming the command,
    /// its exit status and what it printed on stderr.
    pub fn success_stdout(self, program: &Path, args: &[&str]) -> Result<Vec<u8>, CollectError> {
        if self.status.success() {
            return Ok(self.stdout);
        }
        Err(CollectError::Command {
            command: format!("{} {}", program.display(), args.join(" ")),
            detail: format!(
                "{}: {}",
                self.status,
                String::from_utf8_lossy(&self.stderr).trim()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_binary_is_none() {
        let r = run(Path::new("/nonexistent/x"), &[], Duration::from_secs(1));
        assert!(matches!(r, Ok(None)));
    }

    #[test]
    fn captures_output() {
        let r = run(Path::new("/bin/echo"), &["hi"], Duration::from_secs(5))
            .expect("runs")
            .expect("present");
        assert_eq!(r.stdout, b"hi\n");
        assert!(r.status.success());
    }

    #[test]
    fn a_failing_command_is_an_error_naming_it() {
        let args = ["-c", "echo oops >&2; exit 3"];
        let out = run(Path::new("/bin/sh"), &args, Duration::from_secs(5))
            .expect("runs")
            .expect("present");
        let err = out
            .success_stdout(Path::new("/bin/sh"), &args)
            .expect_err("fails");
        let msg = err.to_string();
        assert!(
            msg.contains("/bin/sh -c") && msg.contains("oops") && msg.contains('3'),
            "{msg}"
        );
    }

    #[test]
    fn environment_is_not_passed_on() {
        std::env::set_var("SPAREWATCH_TEST_SECRET", "hunter2");
        let r = run(Path::new("/usr/bin/env"), &[], Duration::from_secs(5))
            .expect("runs")
            .expect("present");
        let env = String::from_utf8_lossy(&r.stdout);
        assert!(!env.contains("hunter2"), "{env}");
        assert!(env.contains("LC_ALL=C"), "{env}");
    }

    #[test]
    fn a_grandchild_holding_stdout_does_not_block_past_the_deadline() {
        let start = std::time::Instant::now();
        let r = run(
            Path::new("/bin/sh"),
            &["-c", "sleep 3 & echo started"],
            Duration::from_millis(500),
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let r = run(
            Path::new("/bin/sh"),
            &["-c", &script],
            Duration::from_millis(300),
        );
        assert!(matches!(r, Err(CollectError::Command { .. })), "{r:?}");
        let pid = std::fs::read_to_string(&pidfile).expect("pid written");
        let stat = Path::new("/proc").join(pid.trim()).join("stat");
        // Gone, or a zombie waiting for its new parent to reap it: not running.
        let t = Instant::now();
        loop {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().chars().next()))
                .flatten();
            if matches!(state, None | Some('Z') | Some('X')) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "grandchild {pid} still {state:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn kills_a_command_that_never_exits() {
        let r = run(Path::new("/bin/sleep"), &["30"], Duration::from_millis(100));
        assert!(matches!(r, Err(CollectError::Command { .. })), "{r:?}");
    }
}
