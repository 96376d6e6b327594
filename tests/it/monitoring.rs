//! Helpers for the tests that run the real monitoring chain: free loopback ports, child
//! processes killed on drop, a tiny HTTP client, a webhook receiver, and test copies of the
//! shipped Prometheus rules and Alertmanager config with their waiting times shortened.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::repo;

pub use crate::support::free_port;

/// A child process killed (and reaped) when the test ends, however it ends. Its output goes
/// to a log file that failure messages quote.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, program: &str, args: &[String], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} could not be started ({e}): install the Debian packages prometheus and prometheus-alertmanager (scripts/test does)")
            });
        Proc { name, child, log }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!("--- {} log ---\n{}", self.name, lines[from..].join("\n"))
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited: {status}\n{}", self.name, self.log_tail());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
pub fn http(method: &str, port: u16, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, rest) = resp.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn get_json(port: u16, path: &str) -> Option<Value> {
    match http("GET", port, path, None)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One notification a webhook receiver got.
#[derive(Clone, Debug)]
pub struct Notification {
    pub path: String,
    pub at: Instant,
    pub body: Value,
}

impl Notification {
    /// The alerts of the notification with `alertname` and `status` ("firing"/"resolved").
    pub fn alerts(&self, alertname: &str, status: &str) -> Vec<Value> {
        self.body["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["labels"]["alertname"] == alertname && x["status"] == status)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The on-call side: an HTTP server on a loopback port recording every POST it receives.
pub struct Webhook {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Notification>>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let store = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || serve_webhook(conn, &store));
            }
        });
        Webhook { port, got }
    }

    pub fn all(&self) -> Vec<Notification> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Waits for the first notification on `path` (received after `since`) that carries
    /// `alertname` with `status`; returns it and that alert.
    pub fn wait(
        &self,
        path: &str,
        alertname: &str,
        status: &str,
        since: Instant,
        timeout: Duration,
    ) -> (Notification, Value) {
        wait_for(
            &format!("{status} {alertname} on webhook {path}"),
            timeout,
            || {
                self.all()
                    .into_iter()
                    .filter(|n| n.path == path && n.at >= since)
                    .find_map(|n| n.alerts(alertname, status).first().cloned().map(|a| (n, a)))
            },
        )
    }
}

/// Keep-alive HTTP/1.1: Alertmanager reuses its connections.
fn serve_webhook(conn: TcpStream, store: &Mutex<Vec<Notification>>) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Ok(mut g) = store.lock() {
            g.push(Notification { path, at, body });
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// The shipped Alertmanager example with its receivers pointed at `webhook` under
/// `/<prefix>/<receiver>` and its waits shortened (the routing tree, matchers and
/// inhibitions are kept as shipped).
pub fn alertmanager_test_config(webhook: u16, prefix: &str) -> String {
    let path = repo().join("dashboards/alertmanager/alertmanager.yml");
    let text = std::fs::read_to_string(&path).expect("read alertmanager.yml");
    let mut cfg: serde_norway::Value =
        serde_norway::from_str(&text).expect("alertmanager.yml parses");
    shorten_route(&mut cfg["route"]);
    if let Some(receivers) = cfg["receivers"].as_sequence_mut() {
        for r in receivers {
            let name = r["name"].as_str().expect("receiver name").to_string();
            if let Some(hooks) = r["webhook_configs"].as_sequence_mut() {
                for h in hooks {
                    h["url"] = format!("http://127.0.0.1:{webhook}/{prefix}/{name}").into();
                }
            }
        }
    }
    serde_norway::to_string(&cfg).expect("yaml")
}

fn shorten_route(route: &mut serde_norway::Value) {
    if let Some(m) = route.as_mapping_mut() {
        for key in ["group_wait", "group_interval"] {
            m.insert(key.into(), "1s".into());
        }
        if let Some(routes) = m.get_mut("routes").and_then(|r| r.as_sequence_mut()) {
            for r in routes {
                shorten_route(r);
            }
        }
    }
}

/// A real Alertmanager on a free loopback port (clustering off), ready to take alerts.
pub fn start_alertmanager(dir: &Path, name: &'static str, config: &str) -> (Proc, u16) {
    let port = free_port();
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, config).expect("write alertmanager config");
    let data = dir.join(format!("{name}-data"));
    std::fs::create_dir_all(&data).expect("mkdir");
    let mut p = Proc::spawn(
        name,
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
            "--log.level=warn".into(),
        ],
        dir.join(format!("{name}.log")),
    );
    wait_for(&format!("{name} ready"), Duration::from_secs(30), || {
        p.assert_running();
        http("GET", port, "/-/ready", None).filter(|(s, _)| *s == 200)
    });
    (p, port)
}

/// Active alerts in an Alertmanager (v2 API) with this alertname.
pub fn am_alerts(port: u16, alertname: &str) -> Vec<Value> {
    let filter = urlencode(&format!("alertname=\"{alertname}\""));
    get_json(port, &format!("/api/v2/alerts?filter={filter}"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// The shipped rule files, with every `for:` rewritten to `for_` (test only: the shipped
/// durations are minutes, the chain is proven the same with seconds).
pub fn rules_test_copy(dir: &Path, for_: &str) -> Vec<PathBuf> {
    let src = repo().join("dashboards/prometheus");
    let mut out = Vec::new();
    for name in [
        "sparewatch-alerts.yml",
        "sparewatch-recording.yml",
        "sparewatch-settings.yml",
    ] {
        let text = std::fs::read_to_string(src.join(name)).expect("read rules");
        let mut rules: serde_norway::Value = serde_norway::from_str(&text).expect("rules parse");
        if let Some(groups) = rules["groups"].as_sequence_mut() {
            for g in groups {
                if let Some(rs) = g["rules"].as_sequence_mut() {
                    for r in rs {
                        if let Some(m) = r.as_mapping_mut() {
                            if m.contains_key("for") {
                                m.insert("for".into(), for_.into());
                            }
                        }
                    }
                }
            }
        }
        let path = dir.join(name);
        std::fs::write(&path, serde_norway::to_string(&rules).expect("yaml")).expect("write rules");
        out.push(path);
    }
    out
}

/// Copies a directory tree, keeping symlinks as symlinks (sysfs fixtures are full of them).
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// A copy of the `net-healthy` fixture (two active-backup bonds) under `dir`, for faults.
pub fn fixture_copy(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    copy_tree(&crate::support::fixture("net-healthy"), &tree);
    tree
}

/// Takes a bond slave of the fixture copy down or up, as the kernel shows it in sysfs.
pub fn set_link(tree: &Path, nic: &str, up: bool) {
    let dir = tree.join("sys/class/net").join(nic);
    let (mii, carrier, oper) = if up {
        ("up", "1", "up")
    } else {
        ("down", "0", "down")
    };
    std::fs::write(dir.join("bonding_slave/mii_status"), format!("{mii}\n")).expect("write");
    std::fs::write(dir.join("carrier"), format!("{carrier}\n")).expect("write");
    std::fs::write(dir.join("operstate"), format!("{oper}\n")).expect("write");
}

/// The built agent on the fixture copy `tree`: net collector only, polling every 500 ms,
/// 1 s hold-down, posting to every one of `alertmanager_urls` every `resend` with no
/// page/ticket delay.
/// Returns it and its port.
pub fn start_agent(
    dir: &Path,
    tree: &Path,
    alertmanager_urls: &[&str],
    resend: &str,
) -> (Proc, u16) {
    start_agent_with(dir, tree, alertmanager_urls, resend, "", &[])
}

/// `start_agent` with more collectors: `config_extra` is appended under `collectors:` of the
/// agent's config file (indented two spaces), `extra` to its arguments.
pub fn start_agent_with(
    dir: &Path,
    tree: &Path,
    alertmanager_urls: &[&str],
    resend: &str,
    config_extra: &str,
    extra: &[String],
) -> (Proc, u16) {
    let port = free_port();
    let config = dir.join("agent.yml");
    std::fs::write(
        &config,
        format!("collectors:\n  net:\n    interval: 500ms\n{config_extra}"),
    )
    .expect("write agent config");
    let args: Vec<String> = [
        "run",
        "--web.listen-address",
        &format!("127.0.0.1:{port}"),
        "--collector.disable-defaults",
        "--collector.net",
        "--path.sysfs",
        &tree.join("sys").display().to_string(),
        "--path.procfs",
        &tree.join("proc").display().to_string(),
        "--path.rootfs",
        &tree.display().to_string(),
        "--config.file",
        &config.display().to_string(),
        "--state.dir",
        &dir.join("state").display().to_string(),
        "--engine.hold-down",
        "1s",
        "--alertmanager.resend-interval",
        resend,
        // as the rules' for: in the test copy: no waiting, the chain is what is measured
        "--alertmanager.ticket-delay",
        "0s",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(
        alertmanager_urls
            .iter()
            .flat_map(|u| ["--alertmanager.url".to_string(), u.to_string()]),
    )
    .chain(extra.iter().cloned())
    .collect();
    let agent = Proc::spawn(
        "sparewatch",
        env!("CARGO_BIN_EXE_sparewatch"),
        &args,
        dir.join("agent.log"),
    );
    (agent, port)
}
