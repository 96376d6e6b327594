//! The real smartctl against a real NVMe controller: QEMU's emulated NVMe device under a
//! real Linux kernel (TCG), its SMART critical warning injected from the host through QMP
//! (`smart_critical_warning`). What the guest's smartctl prints is parsed by the collector's
//! parser: healthy first, at risk after the injection.
//!
//! Needs the Debian packages qemu-system-x86, linux-image-amd64, busybox-static,
//! smartmontools, kmod and cpio (scripts/deps/apt-smart.txt installs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sparewatch_collectors::smart::report::{parse_report, risk_reasons, Limits};

fn need(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} not found: install the Debian package `{package}` (scripts/test does)"
    );
    p
}

/// The newest installed kernel: (vmlinuz, version).
fn kernel() -> (PathBuf, String) {
    let mut kernels: Vec<String> = std::fs::read_dir("/boot")
        .expect("/boot")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .filter(|v| Path::new("/lib/modules").join(v).is_dir())
        .collect();
    kernels.sort();
    let v = kernels
        .pop()
        .expect("no /boot/vmlinuz-* with modules: install the Debian package `linux-image-amd64`");
    (PathBuf::from(format!("/boot/vmlinuz-{v}")), v)
}

fn copy_into(root: &Path, file: &Path) {
    let dest = root.join(file.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
}

/// The guest's init: load the NVMe driver, print smartctl's output between markers, wait
/// for a line from the host (after it injected the fault), print it again, power off.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
dmesg -n 1
stty -echo 2>/dev/null
while read -r m; do insmod "$m" 2>/dev/null; done < /modules.list
i=0; while [ ! -e /dev/nvme0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
q() { echo "@@BEGIN $1"; smartctl --json=c -a -n standby -d nvme /dev/nvme0; rc=$?; echo; echo "@@RC $rc"; }
echo "@@SCAN"; smartctl --json=c --scan-open; echo
q first
read -r go
q second
poweroff -f
"#;

fn build_initramfs(dir: &Path, kver: &str) -> PathBuf {
    let root = dir.join("initramfs");
    for d in ["bin", "proc", "sys", "dev", "usr/sbin"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let busybox = need("/bin/busybox", "busybox-static");
    std::fs::copy(&busybox, root.join("bin/busybox")).expect("busybox");
    for applet in [
        "sh", "mount", "insmod", "sleep", "cat", "echo", "dmesg", "stty", "poweroff",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("link");
    }
    let smartctl = need("/usr/sbin/smartctl", "smartmontools");
    copy_into(&root, &smartctl);
    let ldd = Command::new("ldd").arg(&smartctl).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = lib {
            copy_into(&root, &lib);
        }
    }
    let deps = Command::new("modprobe")
        .args(["-S", kver, "--show-depends", "nvme"])
        .output()
        .expect("modprobe not found: install the Debian package `kmod`");
    assert!(deps.status.success(), "modprobe --show-depends nvme failed");
    let mut modules: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&deps.stdout).lines() {
        if let Some(m) = line.strip_prefix("insmod ") {
            let m = m.trim().to_string();
            if !modules.contains(&m) {
                copy_into(&root, Path::new(&m));
                modules.push(m);
            }
        }
    }
    std::fs::write(root.join("modules.list"), modules.join("\n") + "\n").expect("list");
    std::fs::write(root.join("init"), INIT).expect("init");
    std::fs::set_permissions(
        root.join("init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let image = dir.join("initramfs.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
            root.display(),
            image.display()
        ))
        .status()
        .expect("cpio not found: install the Debian package `cpio`");
    assert!(status.success(), "building the initramfs failed");
    image
}

struct Guest {
    child: Child,
    lines: mpsc::Receiver<String>,
    qmp: PathBuf,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guest {
    /// Lines of the serial console up to (and including) one starting with `marker`.
    fn until(&self, marker: &str, deadline: Instant) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.starts_with(marker);
                    out.push(l);
                    if done {
                        return out;
                    }
                }
                Err(_) => panic!(
                    "guest did not print {marker:?} in time; console so far:\n{}",
                    out.join("\n")
                ),
            }
        }
    }

    fn qmp(&self, commands: &[&str]) {
        let mut s = UnixStream::connect(&self.qmp).expect("QMP socket");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut greeting = String::new();
        r.read_line(&mut greeting).expect("QMP greeting");
        for c in std::iter::once(&r#"{"execute":"qmp_capabilities"}"#).chain(commands) {
            s.write_all(c.as_bytes()).expect("QMP write");
            s.write_all(b"\n").expect("QMP write");
            loop {
                let mut line = String::new();
                r.read_line(&mut line).expect("QMP answer");
                if line.contains("\"return\"") {
                    break;
                }
                assert!(!line.contains("\"error\""), "QMP {c}: {line}");
            }
        }
    }
}

fn boot(dir: &Path) -> Guest {
    let (vmlinuz, kver) = kernel();
    let qemu = need("/usr/bin/qemu-system-x86_64", "qemu-system-x86");
    let initrd = build_initramfs(dir, &kver);
    let disk = dir.join("nvme.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(64 << 20))
        .expect("disk image");
    let qmp = dir.join("qmp.sock");
    let mut child = Command::new(qemu)
        .args(["-accel", "tcg", "-m", "512", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet loglevel=0 rdinit=/init",
        ])
        .arg("-drive")
        .arg(format!("file={},if=none,id=d0,format=raw", disk.display()))
        .args(["-device", "nvme,serial=SWNVME0001,drive=d0,id=nvme0"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts qemu");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdout.read(&mut byte) {
            if byte[0] == b'\n' {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\r')
                    .to_string();
                buf.clear();
                if tx.send(line).is_err() {
                    return;
                }
            } else {
                buf.push(byte[0]);
            }
        }
    });
    Guest {
        child,
        lines: rx,
        qmp,
    }
}

/// The JSON document printed between `@@BEGIN <name>` and `@@RC <status>`.
fn report(lines: &[String]) -> (Vec<u8>, i32) {
    let begin = lines
        .iter()
        .position(|l| l.starts_with("@@BEGIN"))
        .expect("begin marker");
    let rc: i32 = lines
        .last()
        .and_then(|l| l.strip_prefix("@@RC "))
        .and_then(|v| v.trim().parse().ok())
        .expect("exit status");
    let json = lines[begin + 1..lines.len() - 1].join("\n");
    (json.into_bytes(), rc)
}

#[test]
fn smart_real_nvme_critical_warning_in_qemu() {
    let dir = tempfile::tempdir().expect("tmp");
    let guest = boot(dir.path());
    let deadline = Instant::now() + Duration::from_secs(180);
    let scan = guest.until("@@BEGIN first", deadline);
    let scan_json = scan
        .iter()
        .find(|l| l.contains("\"devices\""))
        .unwrap_or_else(|| panic!("no scan output:\n{}", scan.join("\n")));
    let devices = sparewatch_collectors::smart::report::parse_scan(scan_json.as_bytes())
        .expect("the real scan output parses");
    assert!(
        devices
            .iter()
            .any(|d| d.name == "/dev/nvme0" && d.dtype == "nvme"),
        "{devices:?}"
    );
    let mut first = vec!["@@BEGIN first".to_string()];
    first.extend(guest.until("@@RC", deadline));
    let (json, rc) = report(&first);
    let healthy = parse_report(&json, rc).expect("the real report parses");
    assert_eq!(healthy.nvme_critical_warning, Some(0));
    assert_eq!(healthy.serial.as_deref(), Some("SWNVME0001"));
    assert!(
        risk_reasons(&healthy, &Limits::default()).is_empty(),
        "{healthy:?}"
    );

    // The controller's reliability degrades (critical warning bit 2), set from outside.
    guest.qmp(&[
        r#"{"execute":"qom-set","arguments":{"path":"/machine/peripheral/nvme0","property":"smart_critical_warning","value":4}}"#,
    ]);
    let mut stdin = guest.child.stdin.as_ref().expect("stdin");
    stdin.write_all(b"go\n").expect("console");
    stdin.flush().expect("flush");
    let second = guest.until("@@RC", deadline);
    let (json, rc) = report(&second);
    let failing = parse_report(&json, rc).expect("the real report parses");
    assert_eq!(failing.nvme_critical_warning, Some(4));
    let why = risk_reasons(&failing, &Limits::default());
    assert!(
        why.iter()
            .any(|w| w.contains("NVM subsystem reliability degraded")),
        "{why:?}"
    );
}
