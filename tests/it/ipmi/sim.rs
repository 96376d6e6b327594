//! A running OpenIPMI `ipmi_sim` for tests and benchmarks: the BMC set-up of
//! `tests/lab/ipmi_sim/` (SDRs compiled with `sdrcomp` when it starts), free loopback ports,
//! faults through its console, killed when dropped (also when a test panics).
//! Used by tests/it/ipmi.rs and by the collectors crate's `ipmi_cycle` benchmark.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sparewatch_collectors::ipmi::{Bmc, IpmiCollector};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "swpass";

/// The lab set-up, found from the package being built (the workspace root or a member).
fn lab_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("tests/lab/ipmi_sim"),
        here.join("../tests/lab/ipmi_sim"),
    ]
    .into_iter()
    .find(|p| p.join("bmc.sdrs").exists())
    .expect("tests/lab/ipmi_sim not found")
}

pub fn need(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} not found: install the Debian package {package} (scripts/deps/apt-ipmi.txt)");
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.local_addr().expect("addr").port()
}

fn free_tcp_port() -> u16 {
    let s = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    s.local_addr().expect("addr").port()
}

/// Compiles bmc.sdrs with sdrcomp and returns the emulator command file with the records
/// spliced in as `main_sdr_add` lines.
fn emulator_commands(out: &Path) -> String {
    let sdrcomp = need("sdrcomp", "openipmi");
    let raw_path = out.join("bmc.raw");
    let st = Command::new(sdrcomp)
        .current_dir(lab_dir())
        .args(["-8", "-r", "-o"])
        .arg(&raw_path)
        .arg("bmc.sdrs")
        .status()
        .expect("run sdrcomp");
    assert!(st.success(), "sdrcomp failed");
    let raw = std::fs::read(&raw_path).expect("read compiled SDRs");
    let mut lines = Vec::new();
    let mut i = 0;
    while i + 5 <= raw.len() {
        let n = 5 + raw[i + 4] as usize;
        let bytes: Vec<String> = raw[i..i + n].iter().map(|b| format!("{b:#04x}")).collect();
        lines.push(format!("main_sdr_add 0x20 {}", bytes.join(" ")));
        i += n;
    }
    assert_eq!(i, raw.len(), "compiled SDRs end in the middle of a record");
    let emu = std::fs::read_to_string(lab_dir().join("bmc.emu")).expect("bmc.emu");
    assert!(emu.contains("# @SDRS@"));
    emu.replace("# @SDRS@", &lines.join("\n"))
}

/// One running simulator; killed on drop.
pub struct Sim {
    child: Option<Child>,
    /// Port of the "VM" serial interface for a QEMU guest's in-band IPMI, if any.
    pub vm_port: Option<u16>,
    console: Option<Console>,
    pub dir: tempfile::TempDir,
    pub lan_port: u16,
    console_port: u16,
}

/// The one console connection of a simulator, kept open for its whole life: ipmi_sim dies
/// of SIGPIPE when it writes to a console connection a client has closed (its greeting, or
/// a log line about a stale session after a restart), so the harness never closes one
/// while the simulator runs. A thread drains everything it writes.
struct Console {
    stream: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

fn prompts(b: &[u8]) -> usize {
    b.windows(2).filter(|w| w == b"> ").count()
}

impl Console {
    fn connect(port: u16) -> Option<Console> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let mut reader = stream.try_clone().ok()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(k) = reader.read(&mut buf) {
                if k == 0 {
                    break;
                }
                sink.lock()
                    .expect("console buffer")
                    .extend_from_slice(&buf[..k]);
            }
        });
        Some(Console { stream, seen })
    }

    fn prompts(&self) -> usize {
        prompts(&self.seen.lock().expect("console buffer"))
    }

    fn wait_prompts(&self, n: usize, deadline: Instant) -> bool {
        while self.prompts() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("console buffer")).into_owned()
    }
}

impl Sim {
    pub fn start() -> Sim {
        Sim::start_with(None, None)
    }

    /// With a System Event Log of `entries` entries instead of the set-up's 1000 (to fill it
    /// in a test).
    pub fn start_with_sel_size(entries: u16) -> Sim {
        Sim::start_with(None, Some(entries))
    }

    /// Also serves a QEMU guest: `-chardev socket,id=ipmi0,host=127.0.0.1,port=<vm_port>,
    /// reconnect=10 -device ipmi-bmc-extern,id=bmc0,chardev=ipmi0 -device
    /// isa-ipmi-kcs,bmc=bmc0` gives the guest `/dev/ipmi0` on this BMC.
    pub fn start_for_vm() -> Sim {
        Sim::start_with(Some(free_tcp_port()), None)
    }

    fn start_with(vm_port: Option<u16>, sel_entries: Option<u16>) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut emu = emulator_commands(dir.path());
        if let Some(n) = sel_entries {
            assert!(
                emu.contains("sel_enable 0x20 1000 "),
                "bmc.emu has no SEL line"
            );
            emu = emu.replace("sel_enable 0x20 1000 ", &format!("sel_enable 0x20 {n} "));
        }
        std::fs::write(dir.path().join("bmc.emu"), emu).expect("write emu");
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).expect("pw");
        let mut sim = Sim {
            child: None,
            vm_port,
            console: None,
            dir,
            lan_port: free_udp_port(),
            console_port: free_tcp_port(),
        };
        sim.spawn();
        sim
    }

    fn spawn(&mut self) {
        let conf = std::fs::read_to_string(lab_dir().join("lan.conf.in"))
            .expect("lan.conf.in")
            .replace("@LAN_PORT@", &self.lan_port.to_string())
            .replace("@CONSOLE_PORT@", &self.console_port.to_string())
            .replace(
                "@SERIAL@",
                &self
                    .vm_port
                    .map(|p| format!("serial 15 127.0.0.1 {p} codec VM"))
                    .unwrap_or_default(),
            );
        let d = self.dir.path();
        std::fs::write(d.join("lan.conf"), conf).expect("write lan.conf");
        let state = d.join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let child = Command::new(need("ipmi_sim", "openipmi"))
            .arg("-c")
            .arg(d.join("lan.conf"))
            .arg("-f")
            .arg(d.join("bmc.emu"))
            .arg("-s")
            .arg(&state)
            .args(["-n", "-p"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sim.log")).expect("log"))
            .spawn()
            .expect("start ipmi_sim");
        self.child = Some(child);
        // Ready when the console answers with its prompt (the LAN side starts before it).
        let deadline = Instant::now() + Duration::from_secs(10);
        let console = loop {
            assert!(
                Instant::now() < deadline,
                "ipmi_sim did not start: {}",
                std::fs::read_to_string(d.join("sim.log")).unwrap_or_default()
            );
            if let Some(c) = Console::connect(self.console_port) {
                assert!(c.wait_prompts(1, deadline), "no console prompt");
                break c;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.console = Some(console);
        // And the LAN side answers an RMCP presence ping.
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let ping = [
            0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00,
        ];
        loop {
            assert!(
                Instant::now() < deadline,
                "ipmi_sim's LAN side did not start"
            );
            let _ = udp.send_to(&ping, ("127.0.0.1", self.lan_port));
            let mut buf = [0u8; 64];
            if udp.recv(&mut buf).is_ok() {
                break;
            }
        }
    }

    /// How the simulator ended, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// Runs emulator commands on the console and waits for each to be done.
    pub fn cmd(&self, commands: &[&str]) {
        let console = self.console.as_ref().expect("simulator running");
        let before = console.text().len();
        for c in commands {
            let n = console.prompts();
            (&console.stream)
                .write_all(format!("{c}\n").as_bytes())
                .expect("console write");
            assert!(
                console.wait_prompts(n + 1, Instant::now() + Duration::from_secs(5)),
                "console did not answer {c:?}: {}",
                console.text()
            );
        }
        let text = console.text();
        let answer = &text[before.min(text.len())..];
        assert!(
            !answer.contains("**"),
            "emulator command failed: {commands:?}: {answer}"
        );
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// Stops the simulator answering (SIGSTOP) / lets it go on (SIGCONT).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Only now, with the simulator gone, may its console connection close.
        self.console = None;
    }

    /// A BMC restart: the process dies and a fresh one starts on the same LAN port.
    pub fn restart(&mut self) {
        self.kill();
        // Same LAN port; a new console port, as the old one lingers in TIME_WAIT (the
        // simulator closed it first) and ipmi_sim does not set SO_REUSEADDR.
        self.console_port = free_tcp_port();
        self.spawn();
    }

    pub fn bmc(&self, timeout: Duration, retries: u32) -> Bmc {
        self.named_bmc("sim", timeout, retries)
    }

    pub fn named_bmc(&self, name: &str, timeout: Duration, retries: u32) -> Bmc {
        Bmc::lan(
            name,
            "127.0.0.1",
            self.lan_port,
            USER,
            self.password_file(),
            timeout,
            retries,
        )
    }

    /// The command-line flags that point sparewatch at this simulator.
    pub fn flags(&self) -> Vec<String> {
        [
            "--ipmi.host",
            "127.0.0.1",
            "--ipmi.port",
            &self.lan_port.to_string(),
            "--ipmi.user",
            USER,
            "--ipmi.password-file",
            self.password_file().to_str().expect("utf-8"),
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn collector(&self) -> IpmiCollector {
        IpmiCollector::new(vec![self.bmc(Duration::from_secs(1), 1)])
    }

    pub fn ipmitool(&self, args: &[&str]) -> String {
        let port = self.lan_port.to_string();
        let mut all = vec![
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            USER,
            "-P",
            PASSWORD,
        ];
        all.extend_from_slice(args);
        let out = Command::new(need("ipmitool", "ipmitool"))
            .args(&all)
            .output()
            .expect("run ipmitool");
        assert!(out.status.success(), "ipmitool {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ipmi_sensors(&self, extra: &[&str]) -> String {
        let cache = self.dir.path().join("freeipmi-cache");
        std::fs::create_dir_all(&cache).expect("cache dir");
        let out = Command::new(need("ipmi-sensors", "freeipmi-tools"))
            .arg("-h")
            .arg(format!("127.0.0.1:{}", self.lan_port))
            .args(["-u", USER, "-p", PASSWORD, "-D", "LAN_2_0", "-l", "ADMIN"])
            .args(["-W", "opensesspriv", "--quiet-cache"])
            .arg(format!("--sdr-cache-directory={}", cache.display()))
            .args(["--comma-separated-output", "--no-header-output"])
            .args(extra)
            .output()
            .expect("run ipmi-sensors");
        assert!(out.status.success(), "ipmi-sensors failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen simulator must be thawed to die cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}
