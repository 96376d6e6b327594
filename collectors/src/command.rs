//! Runs an external program (teamdctl, smartctl, storcli) with a fixed argument list (no
//! shell), a timeout, and bounded output. An absent binary is reported apart, so the
//! collector can say "not present" instead of "broken".

use std::io::Read;
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
        .env("LC_ALL", "C")
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
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            buf
        })
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
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }))
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
    fn kills_a_command_that_never_exits() {
        let r = run(Path::new("/bin/sleep"), &["30"], Duration::from_millis(100));
        assert!(matches!(r, Err(CollectError::Command { .. })), "{r:?}");
    }
}
