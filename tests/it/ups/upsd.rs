//! A real NUT `upsd` with `dummy-ups` drivers for tests: a temporary `NUT_CONFPATH` /
//! `NUT_STATEPATH`, a free loopback port, one `.dev` file per UPS that a test rewrites to
//! inject a fault, everything in the foreground under `setpriv --pdeathsig KILL` and killed
//! when the guard drops (also when a test panics). Needs the Debian packages `nut-server`
//! and `nut-client` (scripts/deps/apt-ups.txt): a missing one fails the test, naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "monuser";
pub const PASSWORD: &str = "mon pass \"q\"";

pub fn need(tool: &str, package: &str) -> PathBuf {
    for dir in [
        "/lib/nut",
        "/usr/lib/nut",
        "/sbin",
        "/usr/sbin",
        "/bin",
        "/usr/bin",
    ] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("{tool} not found: install the Debian package {package} (scripts/deps/apt-ups.txt)");
}

/// A healthy UPS on line with a full battery, in the `.dev` format dummy-ups reads.
pub const ON_LINE: &str = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nups.load: 31\ninput.voltage: 230.5\n";

pub struct Upsd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    upsd: Option<Child>,
    drivers: HashMap<String, Child>,
}

impl Upsd {
    /// upsd serving these UPSes, each with a dummy-ups driver started on `ON_LINE`.
    pub fn start(upses: &[&str]) -> Upsd {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("conf");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&conf).expect("conf dir");
        std::fs::create_dir_all(&state).expect("state dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let mut ups_conf = String::new();
        for u in upses {
            let dev = dir.path().join(format!("{u}.dev"));
            std::fs::write(&dev, ON_LINE).expect("dev file");
            ups_conf.push_str(&format!(
                "[{u}]\n  driver = dummy-ups\n  port = {}\n  desc = \"test {u}\"\n",
                dev.display()
            ));
        }
        std::fs::write(conf.join("ups.conf"), ups_conf).expect("ups.conf");
        std::fs::write(
            conf.join("upsd.users"),
            format!(
                "[{USER}]\n  password = \"{}\"\n  upsmon secondary\n",
                PASSWORD.replace('"', "\\\"")
            ),
        )
        .expect("upsd.users");
        let port = crate::support::free_port();
        let mut u = Upsd {
            dir,
            port,
            upsd: None,
            drivers: HashMap::new(),
        };
        u.write_listen();
        for name in upses {
            u.start_driver(name);
        }
        u.start_upsd();
        u
    }

    fn write_listen(&self) {
        std::fs::write(
            self.dir.path().join("conf/upsd.conf"),
            format!("LISTEN 127.0.0.1 {}\n", self.port),
        )
        .expect("upsd.conf");
    }

    fn command(&self, program: &Path) -> Command {
        let setpriv = need("setpriv", "util-linux");
        let mut c = Command::new(setpriv);
        c.args(["--pdeathsig", "KILL", "--"]).arg(program);
        c.env("NUT_CONFPATH", self.dir.path().join("conf"))
            .env("NUT_STATEPATH", self.dir.path().join("state"))
            .env("NUT_ALTPIDPATH", self.dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    pub fn start_driver(&mut self, ups: &str) {
        let child = self
            .command(&need("dummy-ups", "nut-server"))
            .args(["-F", "-a", ups, "-u", "root"])
            .spawn()
            .expect("start dummy-ups");
        self.drivers.insert(ups.to_string(), child);
    }

    pub fn stop_driver(&mut self, ups: &str) {
        if let Some(mut c) = self.drivers.remove(ups) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn start_upsd(&mut self) {
        let child = self
            .command(&need("upsd", "nut-server"))
            .args(["-F", "-u", "root"])
            .spawn()
            .expect("start upsd");
        self.upsd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "upsd did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_upsd(&mut self) {
        if let Some(mut c) = self.upsd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Rewrites the UPS's `.dev` file: dummy-ups serves the new values within seconds.
    pub fn set(&self, ups: &str, contents: &str) {
        let dev = self.dir.path().join(format!("{ups}.dev"));
        let tmp = self.dir.path().join(format!("{ups}.dev.new"));
        std::fs::write(&tmp, contents).expect("write dev");
        // dummy-ups re-reads the file when its mtime (whole seconds) changed: make sure it
        // did, also for two writes within one second.
        let old = std::fs::metadata(&dev)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        let mtime = std::time::SystemTime::now().max(old + Duration::from_secs(2));
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
        std::fs::rename(&tmp, &dev).expect("rename dev");
    }

    /// `upsc UPS@127.0.0.1:PORT VAR`, the cross-check; `None` when upsc fails.
    pub fn upsc(&self, ups: &str, var: &str) -> Option<String> {
        let out = Command::new(need("upsc", "nut-client"))
            .arg(format!("{ups}@127.0.0.1:{}", self.port))
            .arg(var)
            .stderr(Stdio::null())
            .output()
            .expect("run upsc");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until upsc shows `value` for `var` (the driver re-read its file).
    pub fn wait_for(&self, ups: &str, var: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.upsc(ups, var).as_deref() == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "upsc {ups} {var} never became {value:?} (now {:?})",
                self.upsc(ups, var)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Upsd {
    fn drop(&mut self) {
        self.stop_upsd();
        let names: Vec<String> = self.drivers.keys().cloned().collect();
        for n in names {
            self.stop_driver(&n);
        }
    }
}
