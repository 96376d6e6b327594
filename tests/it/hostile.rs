//! Broken and hostile input outside the parsers: a file that answers EIO, a collector whose
//! settings are wrong, a corrupt state file, an unreadable config. Each gives a clear error
//! on its own collector (or a clear startup error when nothing can be right), and the other
//! collectors keep reporting. (A command that never exits and broken tool output are
//! covered in smart.rs and storage.rs.)

use std::path::Path;
use std::time::Duration;

use sparewatch::fixture::SysTree;

use crate::support::{fixed_now, metric_value, sparewatch};

/// A tree with one bond (net) and one healthy md mirror.
fn tree(dir: &Path) -> SysTree {
    let t = SysTree::new(dir).expect("tree");
    t.nic("eth0").expect("nic");
    t.nic("eth1").expect("nic");
    t.bond("bond0", "active-backup 1", &["eth0", "eth1"], 0)
        .expect("bond");
    std::fs::write(
        dir.join("proc/mdstat"),
        "Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n      \
         1046528 blocks super 1.2 [2/2] [UU]\n\nunused devices: <none>\n",
    )
    .expect("mdstat");
    t
}

fn args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "sparewatch".into(),
        "--collector.disable-defaults".into(),
        "--collector.net".into(),
        "--collector.md".into(),
        format!("--path.sysfs={}", dir.join("sys").display()),
        format!("--path.procfs={}", dir.join("proc").display()),
        format!("--path.rootfs={}", dir.display()),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn up(text: &str, collector: &str) -> Option<f64> {
    metric_value(
        text,
        &format!("sparewatch_collector_up{{collector=\"{collector}\"}}"),
    )
}

/// Collects once with `extra` flags; asserts `down` is down and `up_one` up; returns the
/// metrics text and `down`'s error.
fn only_down(dir: &Path, extra: &[&str], down: &str, up_one: &str) -> (String, String) {
    let snap = sparewatch::collect_with_args(args(dir, extra), fixed_now())
        .expect("one bad collector does not stop the agent");
    let text = String::from_utf8_lossy(&snap.metrics_text).into_owned();
    assert_eq!(up(&text, down), Some(0.0), "{text}");
    assert_eq!(up(&text, up_one), Some(1.0), "{text}");
    let err = snap
        .collectors
        .iter()
        .find(|c| c.name == down)
        .and_then(|c| c.last_error.clone())
        .unwrap_or_default();
    (text, err)
}

/// `/proc/self/mem` read from offset 0 fails with EIO (nothing is mapped at address 0): a
/// real kernel EIO without a special file system. The link resolves in the reading process.
fn make_eio(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::os::unix::fs::symlink("/proc/self/mem", path).expect("symlink");
    let err = std::fs::read(path).expect_err("reading /proc/self/mem at 0 fails");
    assert_eq!(err.raw_os_error(), Some(libc_eio()), "{err}");
}

fn libc_eio() -> i32 {
    5 // EIO on Linux
}

#[test]
fn eio_on_mdstat_marks_only_md_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    make_eio(&dir.path().join("proc/mdstat"));
    let (text, err) = only_down(dir.path(), &[], "md", "net");
    assert!(
        err.contains("mdstat") && err.contains("Input/output error"),
        "md error should name the file and EIO: {err:?}"
    );
    assert!(
        text.contains("sparewatch_group_state{group=\"bond:bond0\",kind=\"bond\",state=\"redundant\",by_design=\"false\"} 1"),
        "the bond is still reported: {text}"
    );
}

#[test]
fn eio_on_a_link_attribute_costs_only_that_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    make_eio(&t.net("eth1").join("carrier"));
    let snap = sparewatch::collect_with_args(args(dir.path(), &[]), fixed_now())
        .expect("one bad file does not stop the agent");
    let text = String::from_utf8_lossy(&snap.metrics_text).into_owned();
    // The collector stays up: one unreadable interface is unknown, the rest is reported.
    assert_eq!(up(&text, "net"), Some(1.0), "{text}");
    assert_eq!(up(&text, "md"), Some(1.0), "{text}");
    assert!(
        !text.contains("sparewatch_net_link_carrier{device=\"eth1\"}"),
        "{text}"
    );
    assert!(
        text.contains("sparewatch_net_link_carrier{device=\"eth0\"} 1"),
        "{text}"
    );
    // The bond's own view of its slaves (bonding_slave/mii_status) is still readable.
    assert!(text.contains("group=\"bond:bond0\""), "{text}");
    assert!(text.contains("group=\"md:md0\""), "{text}");
}

#[test]
fn a_collector_with_bad_settings_is_down_and_the_others_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, "collectors:\n  net:\n    groups: not-a-list\n").expect("write");
    let cfg_flag = format!("--config.file={}", cfg.display());
    let (_, err) = only_down(dir.path(), &[&cfg_flag], "net", "md");
    assert!(err.contains("net"), "{err:?}");
    // A bad flag value of one collector: the same.
    let (_, err) = only_down(
        dir.path(),
        &["--collector.net.device-include=("],
        "net",
        "md",
    );
    assert!(err.contains("device-include"), "{err:?}");
}

#[test]
fn corrupt_state_file_is_logged_and_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::write(
        state.join("groups.json"),
        b"{\"version\":1,\"groups\":{\"bond:bond0\":\xff\xfe",
    )
    .expect("write");
    let a = args(dir.path(), &[&format!("--state.dir={}", state.display())]);
    let a: Vec<&str> = a.iter().skip(1).map(String::as_str).collect();
    let mut full = vec!["status"];
    full.extend(a);
    let out = sparewatch(&full);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("corrupt state file ignored") && stderr.contains("groups.json"),
        "a clear log line naming the file: {stderr}"
    );
    assert!(
        stdout.contains("bond:bond0") && stdout.contains("md:md0"),
        "{stdout}"
    );
}

#[test]
fn unreadable_or_broken_config_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory where the file should be: refused before opening (an EACCES cannot be
    // made as root).
    let as_dir = dir.path().join("sparewatch.yml");
    std::fs::create_dir(&as_dir).expect("mkdir");
    // EIO.
    let eio = dir.path().join("eio.yml");
    make_eio(&eio);
    for (path, want) in [
        (&as_dir, "not a regular file (a directory)"),
        (&eio, "Input/output error"),
    ] {
        let out = sparewatch(&["check", "--config.file", path.to_str().expect("utf8")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains(path.to_str().expect("utf8")) && stderr.contains(want),
            "{stderr}"
        );
    }
    // `run` refuses to start (systemd's Restart= retries, the log says why).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args([
            "run",
            "--web.listen-address=127.0.0.1:0",
            "--config.file",
            as_dir.to_str().expect("utf8"),
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn running_agent_survives_a_file_turning_into_eio() {
    // The agent runs; md's file starts failing with EIO; md goes down, net keeps reporting,
    // and md comes back when the file does.
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        "collectors:\n  md:\n    interval: 200ms\n  net:\n    interval: 200ms\n",
    )
    .expect("write");
    let port = crate::support::free_port();
    let mut a = args(dir.path(), &[&format!("--config.file={}", cfg.display())]);
    a[0] = "run".into();
    a.push(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(&a)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let scrape = || -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let wait_for = |md: f64| -> bool {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            let text = scrape();
            if up(&text, "md") == Some(md) && up(&text, "net") == Some(1.0) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    let ok_start = wait_for(1.0);
    let mdstat = dir.path().join("proc/mdstat");
    let good = std::fs::read(&mdstat).expect("read");
    make_eio(&mdstat);
    let ok_down = ok_start && wait_for(0.0);
    std::fs::remove_file(&mdstat).expect("rm");
    std::fs::write(&mdstat, good).expect("restore");
    let ok_back = ok_down && wait_for(1.0);
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(ok_start, "agent did not come up: {log}");
    assert!(
        ok_down,
        "md did not go down on EIO while net stayed up: {log}"
    );
    assert!(ok_back, "md did not come back: {log}");
    assert!(
        log.contains("Input/output error"),
        "a log line says why md is down: {log}"
    );
}

/// A "BMC" on loopback UDP that answers every datagram with junk: half of the answers random
/// bytes, half an RMCP/RMCP+ header with a random payload (so parsing goes past the first
/// check). Stops after `max` answers or when dropped.
struct GarbageBmc {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl GarbageBmc {
    fn start(max: u32) -> GarbageBmc {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut rnd = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut answered = 0;
            let mut buf = [0u8; 2048];
            while answered < max && !s2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((_, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let len = (rnd() % 120) as usize;
                let mut out: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                if answered % 2 == 0 {
                    // RMCP header (version 6, class IPMI) + RMCP+ auth type and payload type.
                    let mut h = vec![0x06, 0x00, 0xff, 0x07, 0x06, (rnd() % 0x13) as u8];
                    h.append(&mut out);
                    out = h;
                }
                let _ = sock.send_to(&out, peer);
                answered += 1;
            }
            answered
        });
        GarbageBmc {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

#[test]
fn bmc_answering_garbage_marks_only_ipmi_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    tree(dir.path());
    let bmc = GarbageBmc::start(2000);
    let mut a = args(
        dir.path(),
        &[
            "--collector.ipmi",
            "--ipmi.host=127.0.0.1",
            &format!("--ipmi.port={}", bmc.port),
            "--ipmi.user=admin",
            "--ipmi.timeout=300ms",
            "--ipmi.retries=1",
            "--format=json",
        ],
    );
    a[0] = "status".into();
    let t = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sparewatch"))
        .args(&a)
        .env("SPAREWATCH_IPMI_PASSWORD", "secret-password")
        .output()
        .expect("runs");
    let took = t.elapsed();
    let answered = bmc.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status json: {e}; stderr: {stderr}"));
    let col = |name: &str| {
        v["collectors"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("collector {name} listed: {v}"))
    };
    let ipmi = col("ipmi");
    assert!(answered > 0, "the garbage BMC was never asked");
    assert_eq!(ipmi["up"], false, "{ipmi}");
    let err = ipmi["last_error"].as_str().unwrap_or("");
    assert!(!err.is_empty(), "ipmi down says why: {ipmi}");
    assert!(
        !err.contains("secret-password") && !stderr.contains("secret-password"),
        "the password must never show: {err} {stderr}"
    );
    assert_eq!(col("net")["up"], true);
    assert_eq!(col("md")["up"], true);
    assert!(
        took < Duration::from_secs(30),
        "bounded by the ipmi timeouts: {took:?}"
    );
    eprintln!("garbage BMC: {answered} junk answers, ipmi down with {err:?} after {took:?}");
}
