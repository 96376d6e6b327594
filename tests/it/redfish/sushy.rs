//! Real Redfish services for tests, from sushy-tools (PyPI): `sushy-static` serving a mockup
//! tree copied from `tests/fixtures/redfish/<name>` into a temporary directory (a test
//! rewrites a file there to inject a fault; sushy-static re-reads it on every GET), or
//! `sushy-emulator` with basic auth. Free loopback ports, optional HTTPS with a self-signed
//! certificate, `setpriv --pdeathsig KILL`, killed when the guard drops (also on panic).
//!
//! sushy-tools lives in a Python venv the test scripts create (`need_sushy_tools` in
//! scripts/lib.sh, default `target/sushy-venv`, or `$SPAREWATCH_SUSHY_VENV`): a missing one
//! fails the test, naming how to install it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::repo;

fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("SPAREWATCH_SUSHY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/sushy-venv"));
    let p = venv.join("bin").join(tool);
    assert!(
        p.is_file(),
        "{} not found: run scripts/test (need_sushy_tools) or `python3 -m venv {v} && {v}/bin/pip install sushy-tools`",
        p.display(),
        v = venv.display()
    );
    p
}

fn setpriv() -> Command {
    let p = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("setpriv not found: install the Debian package util-linux");
    let mut c = Command::new(p);
    c.args(["--pdeathsig", "KILL", "--"]);
    c
}

pub struct Sushy {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// PEM certificate of the HTTPS server, when started with TLS.
    pub ca_file: Option<PathBuf>,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).expect("copy");
        }
    }
}

impl Sushy {
    /// `sushy-static` serving a copy of `tests/fixtures/redfish/<mockup>`.
    pub fn mockup(mockup: &str, tls: bool) -> Sushy {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(
            &repo().join("tests/fixtures/redfish").join(mockup),
            &dir.path().join("mockup"),
        );
        let mut s = Sushy {
            child: None,
            dir,
            port: crate::support::free_port(),
            ca_file: None,
        };
        let mut args: Vec<String> = vec![
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            s.port.to_string(),
            "-m".into(),
            s.dir.path().join("mockup").to_string_lossy().into_owned(),
        ];
        if tls {
            let (cert, key) = s.certificate();
            args.extend(["-c".into(), cert, "-k".into(), key]);
        }
        s.spawn(&venv_bin("sushy-static"), &args);
        s
    }

    /// `sushy-emulator` with the fake driver and basic auth for `user` / `password`.
    pub fn emulator(user: &str, password: &str) -> Sushy {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::support::free_port();
        // htpasswd line with a bcrypt hash, as sushy-emulator's basic auth reads it.
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).expect("htpasswd");
        std::fs::write(
            dir.path().join("emulator.conf"),
            format!(
                "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\nSUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_FAKE_DRIVER = True\n",
                dir.path().join("htpasswd").display()
            ),
        )
        .expect("config");
        let mut s = Sushy {
            child: None,
            dir,
            port,
            ca_file: None,
        };
        let conf = s.dir.path().join("emulator.conf");
        s.spawn(
            &venv_bin("sushy-emulator"),
            &[
                "--config".into(),
                conf.to_string_lossy().into_owned(),
                "--fake".into(),
            ],
        );
        s
    }

    fn certificate(&mut self) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("cert");
        let cert = self.dir.path().join("bmc.crt");
        let key = self.dir.path().join("bmc.key");
        std::fs::write(&cert, ck.cert.pem()).expect("cert");
        std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
        self.ca_file = Some(cert.clone());
        (
            cert.to_string_lossy().into_owned(),
            key.to_string_lossy().into_owned(),
        )
    }

    fn spawn(&mut self, program: &Path, args: &[String]) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log");
        let child = setpriv()
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sushy");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {st}: {}", program.display(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sushy did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            if self.ca_file.is_some() {
                "https"
            } else {
                "http"
            },
            self.port
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Path of a mockup resource file (`Chassis/chassis/PowerSubsystem`).
    pub fn resource(&self, path: &str) -> PathBuf {
        self.dir.path().join("mockup").join(path).join("index.json")
    }

    /// Edits a JSON resource of the mockup in place (atomically).
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut serde_json::Value)) {
        let file = self.resource(path);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read resource")).expect("json");
        f(&mut v);
        self.write_raw(
            path,
            serde_json::to_vec_pretty(&v).expect("json").as_slice(),
        );
    }

    pub fn write_raw(&self, path: &str, bytes: &[u8]) {
        let file = self.resource(path);
        let tmp = file.with_extension("new");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
    }

    pub fn signal(&self, sig: &str) {
        // The service is the child of setpriv (exec'd into it, same pid).
        let st = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
