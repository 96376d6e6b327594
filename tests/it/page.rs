//! The status page as a real browser renders it: headless Chromium (Debian package
//! `chromium`) driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: the
//! browser reads commands on fd 3 and answers on fd 4, each message ended by a NUL byte),
//! against the built agent on a fixture tree that the test changes while the page is open.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::monitoring::{copy_tree, get_json, set_link, start_agent, wait_for, Proc};
use crate::support::{fixture, repo};
use sparewatch::drill::store::{DrillStore, FileStore, Record};

const CHROMIUM: &str = "chromium";

/// A headless Chromium with a fresh profile, killed when dropped.
struct Browser {
    child: Child,
    commands: ChildStdin,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(log: PathBuf) -> Browser {
        let version = Command::new(CHROMIUM).arg("--version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "{CHROMIUM} --version failed ({version:?}): install the Debian package chromium (scripts/deps/apt-base.txt)"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let err = std::fs::File::create(&log).expect("browser log");
        // The shell hands our stdin/stdout to the browser as fds 3 and 4, then exits into it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                "--window-size=1100,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("sh starts chromium");
        let commands = child.stdin.take().expect("stdin");
        let out = child.stdout.take().expect("stdout");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            loop {
                let mut buf = Vec::new();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Browser {
            child,
            commands,
            replies,
            next_id: 1,
            session: None,
            log,
            _profile: profile,
        }
    }

    fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Sends one command (to the page's session once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        if let Err(e) = self
            .commands
            .write_all(&bytes)
            .and_then(|()| self.commands.flush())
        {
            panic!("writing to chromium: {e}\n{}", self.log_tail());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(v) if v["id"] == json!(id) => {
                    if let Some(e) = v.get("error") {
                        panic!("{method}: {e}");
                    }
                    return v["result"].clone();
                }
                Ok(_) => {} // an event, or an answer to an earlier command
                Err(e) => panic!(
                    "no answer to {method} from chromium ({e})\n{}",
                    self.log_tail()
                ),
            }
        }
    }

    /// Opens `url` in a new tab and attaches to it; later commands go to that tab.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({ "url": url }));
        let id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": id, "flatten": true }),
        );
        self.session = Some(
            attached["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_string(),
        );
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expr} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page; returns how long that took.
    fn wait_until(&mut self, what: &str, expr: &str, timeout: Duration) -> Duration {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.eval(expr) == json!(true) {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = self.eval("document.body.innerText");
        panic!("page never showed {what} within {timeout:?}; it shows:\n{text}");
    }

    fn screenshot(&mut self, to: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("data"))
            .expect("base64 png");
        std::fs::write(to, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built agent on `tree` (net collector every 500 ms, 1 s hold-down), once it serves
/// its first evaluation.
fn agent(dir: &Path, tree: &Path) -> (Proc, u16) {
    let (mut p, port) = start_agent(dir, tree, &[], "1m");
    wait_for(
        "the agent's first evaluation",
        Duration::from_secs(10),
        || {
            p.assert_running();
            get_json(port, "/api/v1/status")
                .filter(|v| v["groups"].as_array().is_some_and(|g| !g.is_empty()))
        },
    );
    (p, port)
}

/// A JS expression: the text of a member row's cell, by group and member.
fn cell(group: &str, member: &str, class: &str) -> String {
    format!(
        "(document.querySelector('article[data-group={g}] tr[data-member={m}] td.{class}') || {{}}).textContent",
        g = serde_json::to_string(group).expect("json"),
        m = serde_json::to_string(member).expect("json"),
    )
}

#[test]
fn page_shows_the_failed_standby_and_turns_green_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    copy_tree(&fixture("net-healthy"), &tree);
    set_link(&tree, "eth1", false); // bond0's standby (active-backup, eth0 active)
                                    // A drill of bond0 last week, in the agent's --state.dir, as the drill records it.
    let drills = FileStore::new(&dir.path().join("state"));
    let week_ago = sparewatch::snapshot::unix(std::time::SystemTime::now()) - 7.0 * 86400.0;
    drills
        .append_history(drill_record("passed", week_ago, Some(0.42)))
        .expect("drill history");
    let (_agent, port) = agent(dir.path(), &tree);
    let mut b = Browser::start(dir.path().join("chromium.log"));
    b.open(&format!("http://127.0.0.1:{port}/"));
    let bond0 = "document.querySelector('article[data-group=\"bond:bond0\"]')";
    b.wait_until(
        "bond:bond0 without redundancy",
        &format!("!!{bond0} && {bond0}.dataset.state === 'no_redundancy'"),
        Duration::from_secs(15),
    );
    assert_eq!(b.eval(&cell("bond:bond0", "eth1", "member")), json!("eth1"));
    assert_eq!(
        b.eval(&cell("bond:bond0", "eth1", "role")),
        json!("standby")
    );
    assert_eq!(
        b.eval(&cell("bond:bond0", "eth1", "reason")),
        json!("mii down")
    );
    assert_eq!(
        b.eval(&cell("bond:bond0", "eth1", "health-cell")),
        json!("unhealthy")
    );
    let text = b.eval("document.body.innerText");
    let text = text.as_str().expect("text");
    assert!(text.contains("1 group running on its last spare"), "{text}");
    assert!(
        text.contains("Bring back or replace eth1 (standby)"),
        "{text}"
    );
    assert!(text.contains("net — up"), "{text}");
    // The group's history: its transitions and its last drill, from the state dir.
    let drill = format!("{bond0}.querySelector('.drill').textContent");
    assert_eq!(
        b.eval(&drill),
        json!("last drill: bond passed 7d ago (takeover 0.42s, 0 probes lost)")
    );
    let transitions = b.eval(&format!(
        "{bond0}.querySelector('.history .state-changes').textContent"
    ));
    assert!(
        transitions
            .as_str()
            .is_some_and(|t| t.ends_with("state change") || t.ends_with("state changes")),
        "{transitions}"
    );
    // The host name and version the API reports are in the heading.
    let api = get_json(port, "/api/v1/status").expect("api");
    let heading = b.eval("document.querySelector('h1').textContent");
    let heading = heading.as_str().expect("heading");
    assert!(
        heading.contains(api["host"]["hostname"].as_str().expect("hostname"))
            && heading.contains(env!("CARGO_PKG_VERSION")),
        "{heading}"
    );
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        b.screenshot(&repo().join("docs/images/status-page.png"));
    }
    // Mark the document: a reload would lose the mark, so seeing it later proves none happened.
    b.eval("window.__sparewatchNoReload = true");
    set_link(&tree, "eth1", true);
    let took = b.wait_until(
        "bond:bond0 redundant again",
        &format!(
            "{bond0}.dataset.state === 'redundant' && document.body.dataset.worst === 'redundant'"
        ),
        Duration::from_secs(20),
    );
    assert_eq!(
        b.eval("window.__sparewatchNoReload === true"),
        json!(true),
        "the page reloaded"
    );
    assert_eq!(
        b.eval(&cell("bond:bond0", "eth1", "health-cell")),
        json!("healthy")
    );
    // Green as rendered: the group's border colour is the page's colour for redundant.
    let colour = b.eval(&format!("getComputedStyle({bond0}).borderLeftColor"));
    assert_eq!(colour, json!("rgb(30, 123, 52)"));
    eprintln!("page turned green {took:?} after the fixture recovered (hold-down 1 s, poll 2 s)");
    // A drill that fails while the page is open shows without a reload too.
    drills
        .append_history(drill_record("failed", week_ago + 86400.0, None))
        .expect("drill history");
    let took = b.wait_until(
        "the new drill result",
        &format!("{drill}.startsWith('last drill: bond failed 6d ago')"),
        Duration::from_secs(10),
    );
    assert_eq!(
        b.eval(&format!("{bond0}.querySelector('.drill').className")),
        json!("drill failed")
    );
    assert_eq!(b.eval("window.__sparewatchNoReload === true"), json!(true));
    eprintln!("page showed the new drill result {took:?} after it was recorded (poll 2 s)");
}

fn drill_record(result: &str, finished: f64, takeover: Option<f64>) -> Record {
    Record {
        group: "bond:bond0".into(),
        kind: "bond".into(),
        result: result.into(),
        finished,
        failover_seconds: takeover,
        failback_seconds: None,
        probes_lost: takeover.map(|_| 0),
        detail: "probe through bond0 to the gateway".into(),
    }
}

#[test]
fn hardware_strings_are_shown_as_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    copy_tree(&fixture("net-healthy"), &tree);
    // Linux allows '<' and '>' in interface names (not '/', ':' or blanks): a slave of
    // bond1 named `<script>`, down, so its name also shows in the reasons.
    let net = tree.join("sys/class/net");
    std::fs::rename(net.join("eth3"), net.join("<script>")).expect("rename");
    std::fs::write(net.join("bond1/bonding/slaves"), "eth2 <script>\n").expect("slaves");
    set_link(&tree, "<script>", false);
    let (_agent, port) = agent(dir.path(), &tree);
    let mut b = Browser::start(dir.path().join("chromium.log"));
    b.open(&format!("http://127.0.0.1:{port}/"));
    b.wait_until(
        "bond1's members",
        "!!document.querySelector('article[data-group=\"bond:bond1\"] tr[data-member=\"<script>\"]')",
        Duration::from_secs(15),
    );
    assert_eq!(
        b.eval(&cell("bond:bond1", "<script>", "member")),
        json!("<script>")
    );
    // Only the page's own script element exists: the name became text, not an element.
    assert_eq!(b.eval("document.scripts.length"), json!(1));
    // Readable on a phone: at 390 px wide nothing makes the page scroll sideways.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
    );
    b.wait_until(
        "the page within a phone's width",
        "window.innerWidth === 390 && document.documentElement.scrollWidth <= 390",
        Duration::from_secs(5),
    );
    let text = b.eval("document.body.innerText");
    assert!(
        text.as_str().is_some_and(|t| t.contains("<script> (")),
        "{text}"
    );
}

#[test]
fn page_shows_the_effective_spare_next_to_the_spare() {
    // Both slaves of bond0 on one network card: spare 1, effective spare 0.
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    copy_tree(&fixture("domains-bond-one-card"), &tree);
    let (_agent, port) = agent(dir.path(), &tree);
    let mut b = Browser::start(dir.path().join("chromium.log"));
    b.open(&format!("http://127.0.0.1:{port}/"));
    let bond0 = "document.querySelector('article[data-group=\"bond:bond0\"]')";
    b.wait_until(
        "bond:bond0's facts",
        &format!("!!{bond0} && !!{bond0}.querySelector('.facts .effective')"),
        Duration::from_secs(15),
    );
    assert_eq!(
        b.eval(&format!("{bond0}.querySelector('.facts').textContent")),
        json!("spare 1 · effective 0 (card 0000:3b:00 shared by 2) · 2/2 healthy, needs 1")
    );
    // Lower than the spare: drawn in the colour of no redundancy, not as plain text.
    assert_eq!(
        b.eval(&format!(
            "getComputedStyle({bond0}.querySelector('.effective')).color"
        )),
        json!("rgb(194, 84, 0)")
    );
    assert_eq!(
        b.eval(&format!("{bond0}.querySelector('.drill').textContent")),
        json!("never drilled")
    );
}
