//! One QEMU (TCG) guest: serial console for commands, QMP for faults, a 9p share for files.
//! Dropping a `Vm` kills QEMU and removes its directory; when the VM was not finished
//! cleanly the console, command and agent logs are printed first.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::host::{guarded, tool, wait_until, Proc};
use crate::metrics::Metrics;
use crate::Lab;

/// Where the agent listens inside the guest.
pub const AGENT_ADDR: &str = "127.0.0.1:9856";

struct Console {
    buf: Mutex<Vec<u8>>,
    cv: Condvar,
}

pub struct Vm {
    pub name: String,
    dir: PathBuf,
    qemu: Proc,
    stdin: ChildStdin,
    console: Arc<Console>,
    qmp: Qmp,
    seq: u64,
    /// From QEMU's start to the guest's `LAB_READY`.
    pub boot: Duration,
    clean: bool,
}

impl Vm {
    /// Boots the lab kernel with the shared initramfs, the module sets `modules` (see
    /// `initramfs::MODULE_SETS`) and `args` (devices) added.
    pub fn boot(
        lab: &Lab,
        name: &str,
        modules: &[&str],
        mem_mb: u32,
        args: &[String],
    ) -> Result<Vm> {
        let dir = lab.dir.path().join(format!("vm-{name}"));
        fs::create_dir_all(dir.join("share/out"))?;
        let qmp_path = dir.join("qmp.sock");
        let mut cmd = guarded(&tool("qemu-system-x86_64", "qemu-system-x86")?)?;
        cmd.args(["-accel", "tcg", "-m", &mem_mb.to_string(), "-smp", "1"])
            .args(["-nodefaults", "-no-user-config", "-no-reboot"])
            .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
            .arg("-kernel")
            .arg(&lab.kernel)
            .arg("-initrd")
            .arg(&lab.initramfs.path)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 quiet rdinit=/init edd=off lab.modules={}",
                modules.join(",")
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=lab,security_model=none,id=lab",
                dir.join("share").display()
            ))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.join("qemu.stderr"))?);
        let start = Instant::now();
        let mut child = cmd.spawn().context("start qemu-system-x86_64")?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut qemu = Proc::from_child(&format!("qemu {name}"), child);

        let console = Arc::new(Console {
            buf: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        });
        spawn_console_reader(stdout, console.clone(), dir.join("console.log"))?;

        let qmp = match Qmp::connect(&qmp_path, Duration::from_secs(20)) {
            Ok(q) => q,
            Err(e) => {
                qemu.check_running()
                    .with_context(|| read_tail(&dir.join("qemu.stderr"), 20))?;
                return Err(e);
            }
        };
        let mut vm = Vm {
            name: name.to_string(),
            dir,
            qemu,
            stdin,
            console,
            qmp,
            seq: 0,
            boot: Duration::ZERO,
            clean: false,
        };
        vm.wait_console("LAB_READY", 0, Duration::from_secs(90))
            .context("guest did not reach LAB_READY")?;
        vm.boot = start.elapsed();
        if vm.console_text().contains("LAB_FATAL") {
            bail!("guest init failed (see console)");
        }
        let detail = vm.sh_ok("cat /tmp/boot.log /tmp/insmod.log 2>/dev/null; true")?;
        println!(
            "lab: {name}: guest ready {:.1} s after QEMU started ({})",
            vm.boot.as_secs_f64(),
            detail.trim().replace('\n', "; ")
        );
        Ok(vm)
    }

    /// The host side of the 9p share (`/lab` in the guest).
    pub fn share(&self) -> PathBuf {
        self.dir.join("share")
    }

    fn console_text(&self) -> String {
        let b = self.console.buf.lock().expect("console lock");
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Waits until `needle` appears in the console output after byte `from`; returns the
    /// offset just past it.
    fn wait_console(&self, needle: &str, from: usize, timeout: Duration) -> Result<usize> {
        let end = Instant::now() + timeout;
        let mut b = self.console.buf.lock().expect("console lock");
        loop {
            if let Some(i) = find(&b[from.min(b.len())..], needle.as_bytes()) {
                return Ok(from + i + needle.len());
            }
            let now = Instant::now();
            if now >= end {
                bail!("timed out after {timeout:?} waiting for {needle:?} on the console");
            }
            b = self
                .console
                .cv
                .wait_timeout(b, end - now)
                .expect("console lock")
                .0;
        }
    }

    /// Runs one shell line in the guest; returns its exit status and output. The line is
    /// evaluated by the guest's PID 1: it must never `exit` (use a script or a subshell).
    pub fn sh(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
        if cmd.contains('\n') {
            bail!("guest commands are one line each: {cmd:?}");
        }
        self.seq += 1;
        let n = self.seq;
        let start = self.console.buf.lock().expect("console lock").len();
        append(&self.dir.join("commands.log"), &format!("$ {cmd}\n"));
        // The marker is split by "" so an echo of the command line can never match it.
        write!(self.stdin, "{cmd}\necho \"__LAB\"\"END_{n}:$LAB_RC\"\n")?;
        self.stdin.flush()?;
        let marker = format!("__LABEND_{n}:");
        let after = self
            .wait_console(&marker, start, timeout)
            .with_context(|| format!("guest command {cmd:?}"))?;
        let end_line = self.wait_console("\n", after, Duration::from_secs(5))?;
        let b = self.console.buf.lock().expect("console lock");
        let status: i32 = String::from_utf8_lossy(&b[after..end_line])
            .trim()
            .parse()
            .map_err(|_| anyhow!("bad status after marker"))?;
        let out = String::from_utf8_lossy(&b[start..after - marker.len()]).replace('\r', "");
        Ok((status, out))
    }

    /// Runs one shell line; fails unless it exits 0.
    pub fn sh_ok(&mut self, cmd: &str) -> Result<String> {
        let (st, out) = self.sh(cmd, Duration::from_secs(60))?;
        if st != 0 {
            bail!("guest command {cmd:?} exited {st}: {}", out.trim());
        }
        Ok(out)
    }

    pub fn qmp(&mut self, execute: &str, args: Value) -> Result<Value> {
        append(
            &self.dir.join("commands.log"),
            &format!("qmp {execute} {args}\n"),
        );
        self.qmp.execute(execute, args)
    }

    pub fn wait_qmp_event(&mut self, event: &str, timeout: Duration) -> Result<Value> {
        self.qmp.wait_event(event, timeout)
    }

    /// Starts `sparewatch run` in the background with `config` (YAML) and waits until its
    /// /metrics answers.
    pub fn start_agent(&mut self, config: &str) -> Result<()> {
        fs::write(self.share().join("sparewatch.yml"), config)?;
        self.sh_ok(&format!(
            "sparewatch run --config.file /lab/sparewatch.yml --web.listen-address {AGENT_ADDR} \
             --state.dir /var/lib/sparewatch --log.level debug >/lab/out/agent.log 2>&1 &"
        ))?;
        let (st, out) = self.sh("lab-ready 60", Duration::from_secs(90))?;
        if st != 0 {
            bail!("the agent's /metrics never answered: {out}");
        }
        Ok(())
    }

    /// Notes the guest clock: the next `wait_*` measures from here (call it right before a
    /// fault is injected).
    pub fn mark(&mut self) -> Result<()> {
        self.sh_ok("lab-mark").map(|_| ())
    }

    /// Polls the agent until a sample of `metric` with all `labels` equals `value`.
    /// Returns the guest-clock milliseconds since the last `mark` and that scrape.
    pub fn wait_metric(
        &mut self,
        timeout_s: u32,
        metric: &str,
        value: f64,
        labels: &[(&str, &str)],
    ) -> Result<(u64, Metrics)> {
        let subs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("'{k}=\"{v}\"'"))
            .collect();
        let (st, out) = self.sh(
            &format!("lab-wait {timeout_s} {metric} {value} {}", subs.join(" ")),
            Duration::from_secs(u64::from(timeout_s) + 30),
        )?;
        let m = fs::read_to_string(self.share().join("out/metrics.prom"))
            .map_err(|e| anyhow!("no scrape left by lab-wait: {e}"))
            .and_then(|t| Metrics::parse(&t));
        let ms = out
            .lines()
            .find_map(|l| {
                l.strip_prefix("LAB_DETECTED ")
                    .or_else(|| l.strip_prefix("LAB_TIMEOUT "))
            })
            .and_then(|v| v.trim().parse::<u64>().ok());
        if st != 0 {
            let now = m
                .as_ref()
                .map(|m| describe(m, metric, labels))
                .unwrap_or_else(|e| format!("(no scrape: {e})"));
            bail!(
                "after {timeout_s} s the agent still does not report {metric}{labels:?} = {value}; \
                 last scrape: {now}"
            );
        }
        Ok((
            ms.ok_or_else(|| anyhow!("lab-wait printed no time: {out:?}"))?,
            m?,
        ))
    }

    /// Waits until the agent reports `group` in `state`, then re-checks it in the parsed
    /// scrape (exactly one state series at 1, and it is `state`).
    pub fn wait_state(
        &mut self,
        group: &str,
        state: &str,
        timeout_s: u32,
    ) -> Result<(u64, Metrics)> {
        let (ms, m) = self.wait_metric(
            timeout_s,
            "sparewatch_group_state",
            1.0,
            &[("group", group), ("state", state)],
        )?;
        let got = m.group_state(group)?;
        if got != state {
            bail!("group {group}: agent reports {got}, expected {state}");
        }
        Ok((ms, m))
    }

    /// With `SPAREWATCH_LAB_CAPTURE=DIR`: runs `cmd` in the guest and keeps its output as
    /// `DIR/<vm>-<label>.txt`, what the real kernel showed, to hold against fixture trees.
    pub fn capture(&mut self, label: &str, cmd: &str) -> Result<()> {
        let Some(dir) = std::env::var_os("SPAREWATCH_LAB_CAPTURE") else {
            return Ok(());
        };
        let out = self.sh_ok(cmd)?;
        fs::create_dir_all(&dir)?;
        fs::write(
            Path::new(&dir).join(format!("{}-{label}.txt", self.name)),
            out,
        )?;
        Ok(())
    }

    /// Powers the guest off and marks the run clean (no log dump on drop).
    pub fn finish(mut self) -> Result<()> {
        self.clean = true;
        let _ = writeln!(self.stdin, "poweroff -f");
        let _ = self.stdin.flush();
        self.qemu.kill()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if !self.clean {
            eprintln!("---- vm {}: last console lines ----", self.name);
            eprintln!("{}", read_tail(&self.dir.join("console.log"), 40));
            eprintln!("---- vm {}: last guest commands ----", self.name);
            eprintln!("{}", read_tail(&self.dir.join("commands.log"), 15));
            eprintln!("---- vm {}: agent log ----", self.name);
            eprintln!("{}", read_tail(&self.dir.join("share/out/agent.log"), 40));
            eprintln!("---- vm {}: qemu stderr ----", self.name);
            eprintln!("{}", read_tail(&self.dir.join("qemu.stderr"), 10));
        }
        let _ = self.qemu.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn describe(m: &Metrics, metric: &str, labels: &[(&str, &str)]) -> String {
    if metric == "sparewatch_group_state" {
        if let Some((_, g)) = labels.iter().find(|(k, _)| *k == "group") {
            return match m.group_state(g) {
                Ok(s) => format!("{g} is {s}"),
                Err(e) => e.to_string(),
            };
        }
    }
    let lines: Vec<_> = m.text.lines().filter(|l| l.starts_with(metric)).collect();
    lines.join("; ")
}

fn spawn_console_reader(
    mut stdout: impl Read + Send + 'static,
    console: Arc<Console>,
    log: PathBuf,
) -> Result<()> {
    let mut file = fs::File::create(&log)?;
    let verbose = std::env::var_os("SPAREWATCH_LAB_VERBOSE").is_some();
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = file.write_all(&chunk[..n]);
                        if verbose {
                            eprint!("{}", String::from_utf8_lossy(&chunk[..n]));
                        }
                        console
                            .buf
                            .lock()
                            .expect("console lock")
                            .extend_from_slice(&chunk[..n]);
                        console.cv.notify_all();
                    }
                }
            }
        })?;
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn append(path: &Path, text: &str) {
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

/// The last `n` lines of a file, for diagnostics.
pub fn read_tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b).replace('\r', "");
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// QMP: newline-delimited JSON on a unix socket.
struct Qmp {
    stream: BufReader<UnixStream>,
    pending: String,
    events: Vec<Value>,
}

impl Qmp {
    fn connect(path: &Path, timeout: Duration) -> Result<Qmp> {
        let mut sock = None;
        wait_until("the QMP socket", timeout, || {
            sock = UnixStream::connect(path).ok();
            sock.is_some()
        })?;
        let sock = sock.expect("connected");
        let mut q = Qmp {
            stream: BufReader::new(sock),
            pending: String::new(),
            events: Vec::new(),
        };
        let greeting = q.read_msg(Duration::from_secs(10))?;
        if greeting.get("QMP").is_none() {
            bail!("not a QMP greeting: {greeting}");
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read_msg(&mut self, timeout: Duration) -> Result<Value> {
        self.stream.get_ref().set_read_timeout(Some(timeout))?;
        loop {
            match self.stream.read_line(&mut self.pending) {
                Ok(0) => bail!("QMP socket closed"),
                Ok(_) if self.pending.ends_with('\n') => {
                    let line = std::mem::take(&mut self.pending);
                    return serde_json::from_str(&line)
                        .with_context(|| format!("QMP sent {line:?}"));
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!("no QMP message within {timeout:?}")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn execute(&mut self, cmd: &str, args: Value) -> Result<Value> {
        let msg = if args.as_object().is_some_and(|o| o.is_empty()) {
            json!({ "execute": cmd })
        } else {
            json!({ "execute": cmd, "arguments": args })
        };
        let mut line = msg.to_string();
        line.push('\n');
        self.stream.get_mut().write_all(line.as_bytes())?;
        loop {
            let m = self.read_msg(Duration::from_secs(30))?;
            if m.get("event").is_some() {
                self.events.push(m);
                continue;
            }
            if let Some(e) = m.get("error") {
                bail!("QMP {cmd} failed: {e}");
            }
            return Ok(m.get("return").cloned().unwrap_or(Value::Null));
        }
    }

    fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return Ok(self.events.remove(i));
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no QMP event {name} within {timeout:?}");
            }
            let m = self.read_msg(left)?;
            if m["event"] == name {
                return Ok(m);
            }
            if m.get("event").is_some() {
                self.events.push(m);
            }
        }
    }
}
