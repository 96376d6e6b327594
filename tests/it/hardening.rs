//! The agent hardened against its own inputs (issue 17), each probe against the built
//! binary on loopback: a slow bcrypt hash, a wrong-password flood, signals, hostile config
//! files, TLS files that are not what they seem, and clients that hog connection slots.
//! Attack clients use other loopback addresses (127.0.0.2, …) than the client that must
//! still be served, as they would from other hosts.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A cost-17 bcrypt hash (the highest `htpasswd -B` makes) of `cost17-s3cret`, made once
/// with the bcrypt crate so the test does not spend its time hashing.
const COST17_HASH: &str = "$2b$17$ZDXjDccVFoNSSrSQQ2VZ1.JmNRefEuPZaJ74Xi9W.grFbQDzsHROq";

/// The built agent, its log in a file so it can be read while it runs.
struct Agent {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Starts `sparewatch run` on an empty tree (no hardware: collectors not present).
    fn start(extra: &[String]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["sys", "proc"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let port = crate::support::free_port();
        let log = dir.path().join("agent.log");
        let mut args = vec![
            "run".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--path.sysfs={}", dir.path().join("sys").display()),
            format!("--path.procfs={}", dir.path().join("proc").display()),
            format!("--path.rootfs={}", dir.path().display()),
            "--collector.disable-defaults".into(),
            "--collector.md".into(),
        ];
        args.extend(extra.iter().cloned());
        let child = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("starts sparewatch");
        Agent {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `what` (true) or `within` passed (false).
    fn wait_log(&self, what: &str, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if self.log().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of a child this test started and has not reaped yet,
        // so the pid cannot belong to another process; no memory is involved.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill({sig})");
    }

    /// Exit status within `within`, or `None` if still running.
    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// A connection to the agent from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    s.connect(to).await
}

fn status_of(text: &str) -> u16 {
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// One GET on a fresh connection from `from`: (status, response, time taken).
async fn get_from(
    from: Ipv4Addr,
    to: SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, String, Duration) {
    let t = Instant::now();
    let Ok(mut s) = connect_from(from, to).await else {
        return (0, String::new(), t.elapsed());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new(), t.elapsed());
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    (status_of(&text), text, t.elapsed())
}

const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// Waits until the agent answers `/healthz` (any status).
async fn wait_up(agent: &Agent) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        let (code, _, _) = get_from(LOCAL, agent.addr(), "/healthz", "").await;
        if code != 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("agent did not come up: {}", agent.log());
}

fn write_web_yml(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("web.yml");
    std::fs::write(&p, body).expect("write web.yml");
    p
}

fn metric(text: &str, selector: &str) -> Option<f64> {
    crate::support::metric_value(text, selector)
}

// ---------- bcrypt as a lock-out ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_17_hash_works_after_its_first_slow_check() {
    // Before: the request timeout dropped the verification before its result was cached,
    // so the right password got 503 after 10 s every time.
    let dir = tempfile::tempdir().expect("tempdir");
    let web = write_web_yml(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: {COST17_HASH}\n"),
    );
    let agent = Agent::start(&[format!("--web.config.file={}", web.display())]);
    wait_up(&agent).await;
    let good = basic("prometheus:cost17-s3cret");
    let t = Instant::now();
    let mut codes = Vec::new();
    // The first check takes ~10 s on an idle machine; much longer on a busy one.
    let first_ok = loop {
        let (code, _, _) = get_from(LOCAL, agent.addr(), "/metrics", &good).await;
        codes.push(code);
        if code == 200 {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "never accepted: {codes:?}\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Afterwards it is cached: answered at once, every time.
    for _ in 0..3 {
        let (code, text, took) = get_from(LOCAL, agent.addr(), "/metrics", &good).await;
        assert_eq!(code, 200, "{text}");
        assert!(took < Duration::from_secs(2), "cached check took {took:?}");
    }
    eprintln!("cost 17: first 200 after {first_ok:?}, statuses before it {codes:?}");
}

#[test]
fn bcrypt_cost_above_the_maximum_is_a_startup_error() {
    // Before: a cost-31 hash passed validation and the agent spun at start-up for days.
    let dir = tempfile::tempdir().expect("tempdir");
    let web = write_web_yml(
        dir.path(),
        "basic_auth_users:\n  prometheus: $2y$31$ZDXjDccVFoNSSrSQQ2VZ1.JmNRefEuPZaJ74Xi9W.grFbQDzsHROq\n",
    );
    let mut agent = Agent::start(&[format!("--web.config.file={}", web.display())]);
    let status = agent.wait_exit(Duration::from_secs(20));
    let log = agent.log();
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{log}");
    assert!(
        log.contains("bcrypt cost 31 is above the maximum of 17"),
        "{log}"
    );
}

// ---------- wrong-password flood ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_password_flood_leaves_a_new_valid_client_answered() {
    // 32 keep-alive connections from one address send wrong passwords; a client from another
    // address whose credentials are not cached yet (the first scrape after a restart) must be
    // answered within a second. Before: it queued behind the flood.
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt::hash("s3cret", 10).expect("hash");
    let web = write_web_yml(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: {hash}\n"),
    );
    let agent = Agent::start(&[format!("--web.config.file={}", web.display())]);
    wait_up(&agent).await;
    let addr = agent.addr();
    let until = Instant::now() + Duration::from_secs(4);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut flood = Vec::new();
    for i in 0..32u32 {
        flood.push(tokio::spawn(async move {
            let mut answers = std::collections::BTreeMap::<u16, u32>::new();
            let Ok(mut s) = connect_from(attacker, addr).await else {
                return answers;
            };
            let mut n = 0u32;
            while Instant::now() < until {
                n += 1;
                let req = format!(
                    "GET /metrics HTTP/1.1\r\nHost: x\r\n{}\r\n",
                    basic(&format!("prometheus:wrong-{i}-{n}"))
                );
                if s.write_all(req.as_bytes()).await.is_err() {
                    break;
                }
                // Read one response head plus its (small) body.
                let mut buf = vec![0u8; 4096];
                let Ok(Ok(len)) =
                    tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await
                else {
                    break;
                };
                if len == 0 {
                    break;
                }
                let code = status_of(&String::from_utf8_lossy(&buf[..len]));
                *answers.entry(code).or_default() += 1;
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, text, took) = get_from(
        Ipv4Addr::new(127, 0, 0, 3),
        addr,
        "/metrics",
        &basic("prometheus:s3cret"),
    )
    .await;
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for f in flood {
        for (c, n) in f.await.expect("flooder") {
            *answers.entry(c).or_default() += n;
        }
    }
    eprintln!("flood answers {answers:?}; new valid client: {code} in {took:?}");
    assert_eq!(code, 200, "{text}");
    assert!(
        took < Duration::from_secs(1),
        "new valid client waited {took:?}"
    );
    assert!(!answers.contains_key(&200), "{answers:?}");
    assert!(
        answers.get(&429).copied().unwrap_or(0) > 0,
        "flood not throttled: {answers:?}"
    );
    // The refusals are counted.
    let (_, text, _) = get_from(LOCAL, addr, "/metrics", &basic("prometheus:s3cret")).await;
    assert!(
        metric(&text, "sparewatch_web_auth_failures_total").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    let throttled: f64 = ["auth_busy", "auth_rate", "auth_queue"]
        .iter()
        .filter_map(|r| {
            metric(
                &text,
                &format!("sparewatch_web_requests_throttled_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert!(throttled > 0.0, "{text}");
}

// ---------- signals ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_logged_and_sighup_reloads_the_web_config() {
    // Before: SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT ended the agent without a log line.
    let dir = tempfile::tempdir().expect("tempdir");
    let old = bcrypt::hash("old-pass", 4).expect("hash");
    let new = bcrypt::hash("new-pass", 4).expect("hash");
    let web = write_web_yml(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: {old}\n"),
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, "hold_down: 1s\n").expect("write config");
    let mut agent = Agent::start(&[
        format!("--web.config.file={}", web.display()),
        format!("--config.file={}", cfg.display()),
    ]);
    wait_up(&agent).await;
    let addr = agent.addr();
    let (code, _, _) = get_from(LOCAL, addr, "/metrics", &basic("prometheus:old-pass")).await;
    assert_eq!(code, 200, "{}", agent.log());
    // A keep-alive connection opened before the reload.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    let one = |auth: String| format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    kept.write_all(one(basic("prometheus:old-pass")).as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.expect("read");
    assert!(n > 0);

    for (sig, name) in [(libc::SIGUSR2, "SIGUSR2"), (libc::SIGALRM, "SIGALRM")] {
        agent.signal(sig);
        assert!(
            agent.wait_log(&format!("signal=\"{name}\""), Duration::from_secs(10)),
            "no log line for {name}: {}",
            agent.log()
        );
        assert!(
            agent.child.try_wait().expect("wait").is_none(),
            "{name} ended the agent"
        );
    }
    agent.signal(libc::SIGUSR1);
    assert!(
        agent.wait_log("state dump", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    assert!(
        agent.wait_log("state dump: collector", Duration::from_secs(10)),
        "{}",
        agent.log()
    );

    // SIGHUP: the new password works, the old one not, the open connection stays.
    write_web_yml(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: {new}\n"),
    );
    std::fs::write(&cfg, "groups: {\"bond:bond0\": {required: 0}}\n").expect("write config");
    agent.signal(libc::SIGHUP);
    assert!(
        agent.wait_log("web config reloaded", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    assert!(
        agent.wait_log("config file is invalid", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "SIGHUP ended the agent"
    );
    let (code, _, _) = get_from(LOCAL, addr, "/metrics", &basic("prometheus:new-pass")).await;
    assert_eq!(code, 200);
    let (code, _, _) = get_from(LOCAL, addr, "/metrics", &basic("prometheus:old-pass")).await;
    assert_eq!(code, 401);
    kept.write_all(one(basic("prometheus:new-pass")).as_bytes())
        .await
        .expect("the connection from before the reload is still open");
    let n = kept.read(&mut buf).await.expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    // A broken web config on SIGHUP: logged, the old one stays.
    write_web_yml(dir.path(), "basic_auth_users:\n  prometheus: not-a-hash\n");
    agent.signal(libc::SIGHUP);
    assert!(
        agent.wait_log("web config not reloaded", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    let (code, _, _) = get_from(LOCAL, addr, "/metrics", &basic("prometheus:new-pass")).await;
    assert_eq!(code, 200);

    // SIGQUIT ends the agent as a failure (so systemd restarts it), saying why.
    agent.signal(libc::SIGQUIT);
    let status = agent.wait_exit(Duration::from_secs(15));
    let log = agent.log();
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{log}");
    assert!(log.contains("signal=\"SIGQUIT\""), "{log}");
    assert!(log.contains("stopped by SIGQUIT"), "{log}");
}

#[test]
fn sigterm_is_an_operator_stop_with_a_log_line() {
    let mut agent = Agent::start(&[]);
    assert!(
        agent.wait_log("serving metrics", Duration::from_secs(30)),
        "{}",
        agent.log()
    );
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(15));
    let log = agent.log();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(log.contains("signal=\"SIGTERM\""), "{log}");
}

// ---------- config limits and validation ----------

/// `sparewatch check-config FILE`: (exit code, stderr, peak RSS in KiB).
// The child is reaped by wait4 (to get its peak RSS), not by std.
#[allow(clippy::zombie_processes)]
fn check_config(file: &Path) -> (i32, String, i64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(["check-config"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child, with valid pointers to locals that outlive
    // the call; `child` is not waited on through std afterwards.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, err, usage.ru_maxrss)
}

#[test]
fn check_config_names_the_key_of_every_mistake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        // Before: accepted; a bond with both slaves down then read no_redundancy.
        ("groups:\n  \"bond:bond0\": {required: 0}\n", "groups.bond:bond0.required: must be at least 1"),
        // Before: accepted; duplicate series.
        (
            "collectors:\n  net:\n    groups:\n      - {name: uplinks, members: [eth0, eth1]}\n      - {name: uplinks, members: [eth2, eth3]}\n",
            "collectors.net.groups[1].name: duplicate group name \"uplinks\"",
        ),
        // Before: accepted.
        ("collectors:\n  md:\n    timeout: 0s\n", "collectors.md.timeout: must be above zero"),
        ("collectors:\n  net:\n    groups: 5\n", "net"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("c{i}.yml"));
        std::fs::write(&f, text).expect("write");
        let (code, err, _) = check_config(&f);
        assert_eq!(code, 1, "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
    let ok = dir.path().join("ok.yml");
    std::fs::write(
        &ok,
        "hold_down: 5s\ncollectors:\n  net:\n    groups:\n      - {name: uplinks, members: [eth0, eth1]}\ngroups:\n  \"psu:chassis\": {required: 2}\n",
    )
    .expect("write");
    let (code, err, _) = check_config(&ok);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused_quickly_and_small() {
    // Before: a 2.2 MB file of aliases took 11 s and 2.5 GB to load; a 200 KB deeply nested
    // flow document took 41 s to reject. The exact times are in benches/attack.rs; here a
    // generous bound only catches a return of the blow-up.
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "hold_down: 1s\ngroups:\n  x:\n    a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    b:\n";
    let row = "      - [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
    let big = format!("{head}{}", row.repeat(2_200_000 / row.len()));
    let under_cap = format!("{head}{}", row.repeat(900_000 / row.len()));
    let mut laughs = String::from("groups:\n  x:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        laughs.push_str(&format!(
            "    l{i}: &l{i} [{}]\n",
            vec![format!("*l{}", i - 1); 10].join(", ")
        ));
    }
    let nested = format!(
        "hold_down: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let dashes = format!("hold_down:\n{}x\n", "- ".repeat(100_000));
    for (name, text, want) in [
        ("big", big, "more than the limit of 1048576"),
        ("under_cap", under_cap, "nodes once aliases are expanded"),
        ("laughs", laughs, "nodes once aliases are expanded"),
        ("nested", nested, "nested deeper than 64"),
        ("dashes", dashes, "nested deeper than 256"),
    ] {
        let f = dir.path().join(format!("{name}.yml"));
        std::fs::write(&f, &text).expect("write");
        let t = Instant::now();
        let (code, err, rss_kib) = check_config(&f);
        let took = t.elapsed();
        eprintln!(
            "{name}: {} bytes refused in {took:?}, peak RSS {rss_kib} KiB",
            text.len()
        );
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
        assert!(rss_kib < 256 * 1024, "{name} used {rss_kib} KiB");
    }
}

// ---------- TLS files ----------

fn cert_pem(not_after: Option<(i32, u8, u8)>) -> (String, String, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params");
    if let Some((y, m, d)) = not_after {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

#[test]
fn a_fifo_as_cert_file_is_a_startup_error() {
    // Before: start-up hung silently, waiting for a writer.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, key, _) = cert_pem(None);
    std::fs::write(dir.path().join("server.key"), key).expect("write");
    let fifo = dir.path().join("server.crt");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo with a valid NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let web = write_web_yml(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let mut agent = Agent::start(&[format!("--web.config.file={}", web.display())]);
    let status = agent.wait_exit(Duration::from_secs(20));
    let log = agent.log();
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{log}");
    assert!(log.contains("not a regular file (a FIFO)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_and_expired_certificates_are_warned_about_and_exported() {
    // Before: an expired certificate was served with no warning.
    let now_year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            / 31_556_952) as i32;
    for (name, not_after, warning) in [
        (
            "expired",
            (now_year - 1, 1, 1),
            "the TLS certificate has expired",
        ),
        ("valid", (now_year + 5, 1, 1), ""),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, der) = cert_pem(Some(not_after));
        std::fs::write(dir.path().join("server.crt"), cert).expect("write");
        std::fs::write(dir.path().join("server.key"), key).expect("write");
        let web = write_web_yml(
            dir.path(),
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        );
        let agent = Agent::start(&[
            format!("--web.config.file={}", web.display()),
            // Ten years: the valid certificate is "expiring soon" too.
            "--web.tls-expiry-warning=3650d".into(),
        ]);
        assert!(
            agent.wait_log("serving metrics", Duration::from_secs(30)),
            "{}",
            agent.log()
        );
        let log = agent.log();
        if warning.is_empty() {
            assert!(
                log.contains("the TLS certificate expires soon"),
                "{name}: {log}"
            );
        } else {
            assert!(log.contains(warning), "{name}: {log}");
        }
        if name == "valid" {
            let text = tls_metrics(agent.addr(), der).await;
            let got = metric(&text, "sparewatch_web_tls_cert_not_after_timestamp_seconds");
            let expected = {
                let (y, _, _) = not_after;
                // 1 January of year y, 00:00 UTC.
                let days: i64 = (1970..y)
                    .map(|yr| {
                        if (yr % 4 == 0 && yr % 100 != 0) || yr % 400 == 0 {
                            366
                        } else {
                            365
                        }
                    })
                    .sum();
                days * 86400
            };
            assert_eq!(got, Some(expected as f64), "{text}");
        }
    }
}

fn der_of(b: &[u8]) -> rustls::pki_types::CertificateDer<'static> {
    rustls::pki_types::CertificateDer::from(b.to_vec())
}

/// GET /metrics over TLS, trusting exactly the certificate `der`.
async fn tls_metrics(addr: SocketAddr, der: Vec<u8>) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der_of(&der)).expect("root");
    let cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut s = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .expect("handshake");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------- connection slots ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_bad_clients_cannot_hold_every_slot() {
    // 300 slow-loris connections from one address against 64 slots: before, they held every
    // slot and a scrape waited for the header timeout (5 s); now that address gets 16 and the
    // rest are closed at once.
    let agent = Agent::start(&["--web.max-connections=64".into()]);
    wait_up(&agent).await;
    let addr = agent.addr();
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut s) = connect_from(attacker, addr).await {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let (code, text, took) = get_from(LOCAL, addr, "/metrics", "").await;
        assert_eq!(code, 200, "{text}");
        worst = worst.max(took);
    }
    let (_, text, _) = get_from(LOCAL, addr, "/metrics", "").await;
    drop(held);
    eprintln!("slow-loris x300 from one address: worst scrape {worst:?}");
    assert!(worst < Duration::from_secs(2), "scrape took {worst:?}");
    let refused = metric(
        &text,
        "sparewatch_web_connections_refused_total{reason=\"per_client_limit\"}",
    );
    assert!(refused.unwrap_or(0.0) >= 200.0, "{text}");
    // The web server's metrics appended to the agent's are still valid exposition text.
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(
        body.contains("sparewatch_web_auth_failures_total"),
        "{body}"
    );
    crate::support::promtool_check_metrics(body);
}
