//! Host-side helpers: processes that die with their guard, tool lookup, free ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A child process killed and reaped when the guard drops, so a failing step leaves nothing
/// running behind it.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd` with stdout/stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
        })
    }

    pub fn from_child(name: &str, child: Child) -> Proc {
        Proc {
            name: name.to_string(),
            child: Some(child),
        }
    }

    /// Fails when the process has already exited (it should be serving).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(st) = c.try_wait()? {
                bail!("{} exited early: {st}", self.name);
            }
        }
        Ok(())
    }

    /// SIGKILL and reap (the fault "backend dies").
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().with_context(|| format!("reap {}", self.name))?;
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A command for `program` that dies with the harness even when the harness itself is
/// killed (a CI timeout): `setpriv --pdeathsig KILL` runs it with a parent-death signal,
/// which no drop guard could give.
pub fn guarded(program: &Path) -> Result<Command> {
    let mut c = Command::new(tool("setpriv", "util-linux")?);
    c.args(["--pdeathsig", "KILL", "--"]).arg(program);
    Ok(c)
}

/// The path of a tool from the lab's apt packages, or an error naming the package.
pub fn tool(name: &str, package: &str) -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/libexec"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{name} not found: install the Debian package {package} (scripts/deps/apt-lab.txt)")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Waits until `cond` holds, polling every 20 ms.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(anyhow!("timed out after {timeout:?} waiting for {what}"))
}

/// Processes whose parent is this process: after teardown there must be none.
pub fn children_of_self() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let (_state, ppid) = (rest.next(), rest.next());
        if ppid == Some(me.as_str()) {
            let comm = stat
                .find('(')
                .map(|o| stat[o + 1..close].to_string())
                .unwrap_or_default();
            out.push(format!("{} ({comm})", e.file_name().to_string_lossy()));
        }
    }
    out
}
