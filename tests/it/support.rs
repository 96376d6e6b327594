//! Shared helpers: fixture paths, one-shot collection at a fixed clock, golden files,
//! running the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// The fixed clock of golden files: 2026-01-01T00:00:00Z.
pub fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    let p = repo().join("tests/fixtures").join(name);
    assert!(p.is_dir(), "fixture {} missing", p.display());
    p
}

/// `--path.*` flags pointing at a fixture tree (`sys/`, `proc/`, rootfs = the tree), plus
/// `--config.file` when the scenario has a `config.yml`.
pub fn fixture_args(dir: &Path) -> Vec<String> {
    let mut a = vec![
        "--path.sysfs".to_string(),
        dir.join("sys").display().to_string(),
        "--path.procfs".to_string(),
        dir.join("proc").display().to_string(),
        "--path.rootfs".to_string(),
        dir.display().to_string(),
    ];
    if dir.join("config.yml").is_file() {
        a.push("--config.file".into());
        a.push(dir.join("config.yml").display().to_string());
    }
    a
}

/// One-shot collection of a fixture with only `collectors` enabled, at the fixed clock.
pub fn snapshot(fixture_name: &str, collectors: &[&str]) -> sparewatch::snapshot::Snapshot {
    let dir = fixture(fixture_name);
    let mut args = vec![
        "sparewatch".to_string(),
        "--collector.disable-defaults".into(),
    ];
    args.extend(fixture_args(&dir));
    args.extend(collectors.iter().map(|c| format!("--collector.{c}")));
    sparewatch::collect_with_args(args, fixed_now()).expect("collects")
}

/// The `/metrics` text with the values that vary between runs (durations) masked.
pub fn normalized_metrics(snap: &sparewatch::snapshot::Snapshot) -> String {
    let text = String::from_utf8_lossy(&snap.metrics_text);
    text.lines()
        .map(|l| {
            if l.starts_with("sparewatch_collector_duration_seconds{") {
                match l.rsplit_once(' ') {
                    Some((k, _)) => format!("{k} <duration>"),
                    None => l.to_string(),
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Compares with `tests/golden/<name>.prom`; `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(format!("{name}.prom"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "{} differs (UPDATE_GOLDEN=1 to accept):\n{}\n(lines: expected {}, actual {})",
            path.display(),
            diff.join("\n"),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

/// Runs the built `sparewatch` binary.
pub fn sparewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(args)
        .output()
        .expect("runs sparewatch")
}

/// `promtool check metrics` on a text; promtool is installed by scripts/test.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: install the Debian package `prometheus` (scripts/test does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the one series whose line starts with `selector` (`name{labels}`).
pub fn metric_value(text: &str, selector: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(selector) && l[selector.len()..].starts_with(' '))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// The engine around one collector, with a controllable clock: one collection, then the
/// evaluation, as the agent does it (tests of the ups and redfish collectors).
pub struct Rig {
    pub engine: sparewatch::engine::Engine,
    pub now: SystemTime,
    name: &'static str,
}

impl Rig {
    pub fn new(name: &'static str, interval: Duration, hold_down: Duration) -> Rig {
        use sparewatch::engine::{CollectorInfo, Engine, EngineConfig};
        Rig {
            engine: Engine::new(
                EngineConfig {
                    hold_down,
                    ..EngineConfig::default()
                },
                vec![CollectorInfo {
                    name,
                    interval,
                    timeout: Duration::from_secs(20),
                }],
                None,
            ),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            name,
        }
    }

    /// The clock moves by `advance`, then one collection and the evaluation.
    pub fn cycle(
        &mut self,
        c: &mut dyn sparewatch_collectors::Collector,
        advance: Duration,
    ) -> sparewatch::snapshot::Snapshot {
        self.now += advance;
        let result = c.collect().map_err(|e| e.to_string());
        self.engine
            .finished(self.name, result, Duration::from_millis(10), self.now);
        sparewatch::app::evaluate_and_render(&mut self.engine, self.now, None, false)
    }
}

/// A loopback port nobody listens on right now, for a server a test starts soon after.
///
/// Never the same port twice in one run: ports are handed out in turn from 20000–32767,
/// below the kernel's ephemeral range (32768–60999), each checked bindable first. The OS's
/// own pick (`bind` to port 0) was not enough: with tests in parallel, two of them could be
/// given the same port before either server bound it, and one test then scraped the other
/// test's agent.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_768;
    // Start at an offset of this process, so two test binaries run one after the other
    // (or a port left in TIME_WAIT by the previous run) do not meet.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(port).expect("below 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000-32767");
}

/// The agent binary tests run: `SPAREWATCH_BIN` (another build, e.g. the release or the
/// static one), else the one cargo built for the tests.
pub fn agent_bin() -> PathBuf {
    std::env::var_os("SPAREWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sparewatch")))
}

/// A running agent, listening on a free loopback port, its stderr in a log file; killed
/// and reaped when dropped (also when the test panics).
pub struct RunningAgent {
    pub child: std::process::Child,
    pub port: u16,
    pub log: PathBuf,
    /// Lines of `/metrics` containing this are shown when a wait times out.
    show: String,
}

impl RunningAgent {
    /// Starts `sparewatch ARGS --web.listen-address=…`, logging into `log_dir`.
    pub fn start(args: &[String], log_dir: &Path, show: &str) -> RunningAgent {
        Self::start_via(Command::new(agent_bin()), args, log_dir, show)
    }

    /// As [`RunningAgent::start`], through `launcher` (e.g. a shell that sets limits and
    /// `exec`s the agent: the child's pid stays the agent's).
    pub fn start_via(
        mut launcher: Command,
        args: &[String],
        log_dir: &Path,
        show: &str,
    ) -> RunningAgent {
        let port = free_port();
        let log = log_dir.join(format!("agent-{port}.log"));
        let child = launcher
            .args(args)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("starts sparewatch");
        RunningAgent {
            child,
            port,
            log,
            show: show.to_string(),
        }
    }

    /// `/metrics` (empty when the agent does not answer).
    pub fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Scrapes until `ok` holds (10 s at most); panics with the log otherwise.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(what, Duration::from_secs(10), ok)
    }

    /// Scrapes until `ok` holds (`limit` at most); panics with the log otherwise.
    pub fn wait_for_within(
        &self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let t = std::time::Instant::now();
        let mut last = String::new();
        while t.elapsed() < limit {
            last = self.scrape();
            if ok(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; last scrape:\n{}\nlog:\n{}",
            last.lines()
                .filter(|l| l.contains(&self.show) || l.contains("collector_up"))
                .collect::<Vec<_>>()
                .join("\n"),
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as systemd stops it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
