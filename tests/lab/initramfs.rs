//! Builds the guest's initramfs once per run: busybox, the kernel modules in dependency
//! order, mdadm/dmsetup/ipmitool with their libraries, the static agent and the lab's guest
//! scripts, packed as a newc cpio archive.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::host::tool;

/// Modules the scenarios need; `modprobe --show-depends` adds their dependencies.
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "bonding",
    "raid1",
    "raid456",
    "dm_multipath",
    "dm_round_robin",
    "virtio_scsi",
    "sd_mod",
    "virtio_blk",
    "ipmi_si",
    "ipmi_devintf",
    "9p",
    "9pnet_virtio",
];

/// Host tools copied into the guest with their shared libraries: (binary, Debian package).
const TOOLS: &[(&str, &str)] = &[
    ("mdadm", "mdadm"),
    ("dmsetup", "dmsetup"),
];

const GUEST_FILES: &[(&str, &str, u32)] = &[
    ("init", include_str!("guest/init"), 0o755),
    ("bin/lab-lib.sh", include_str!("guest/lab-lib.sh"), 0o644),
    ("bin/lab-mark", include_str!("guest/lab-mark"), 0o755),
    ("bin/lab-wait", include_str!("guest/lab-wait"), 0o755),
    ("bin/lab-scrape", include_str!("guest/lab-scrape"), 0o755),
    ("bin/lab-ready", include_str!("guest/lab-ready"), 0o755),
];

pub struct Initramfs {
    pub path: PathBuf,
    pub bytes: u64,
    pub modules: usize,
}

/// Builds `<dir>/initramfs.cpio` for kernel `kver` with `agent` as /bin/sparewatch.
pub fn build(dir: &Path, kver: &str, agent: &Path) -> Result<Initramfs> {
    let root = dir.join("root");
    fs::create_dir_all(&root)?;
    for d in ["bin", "sbin", "etc/lab", "proc", "sys", "dev", "tmp", "run", "lab"] {
        fs::create_dir_all(root.join(d))?;
    }

    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox not found: install the Debian package busybox-static");
    }
    copy_with_libs(busybox, &root, Path::new("bin/busybox"))?;

    let modules = module_list(kver)?;
    for ko in &modules {
        let dst = root.join(ko.strip_prefix("/").unwrap_or(ko));
        fs::create_dir_all(dst.parent().expect("module path has a parent"))?;
        fs::copy(ko, &dst).with_context(|| format!("copy {}", ko.display()))?;
    }
    let list: String = modules.iter().map(|m| format!("{}\n", m.display())).collect();
    fs::write(root.join("etc/lab/modules"), list)?;

    for (name, package) in TOOLS {
        let p = tool(name, package)?;
        copy_with_libs(&p, &root, &Path::new("sbin").join(name))?;
    }
    copy_with_libs(agent, &root, Path::new("bin/sparewatch"))?;

    for (rel, text, mode) in GUEST_FILES {
        let p = root.join(rel);
        fs::write(&p, text)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
    }
    // busybox --install in /init makes the applets; `sh` must exist before it runs.
    symlink("busybox", root.join("bin/sh"))?;

    let path = dir.join("initramfs.cpio");
    pack(&root, &path)?;
    fs::remove_dir_all(&root)?;
    Ok(Initramfs {
        bytes: fs::metadata(&path)?.len(),
        path,
        modules: modules.len(),
    })
}

/// `insmod` paths of MODULES and their dependencies, dependencies first, each once.
fn module_list(kver: &str) -> Result<Vec<PathBuf>> {
    let modprobe = tool("modprobe", "kmod")?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in MODULES {
        let o = Command::new(&modprobe)
            .args(["-S", kver, "--show-depends", m])
            .output()
            .context("run modprobe")?;
        if !o.status.success() {
            bail!(
                "modprobe -S {kver} --show-depends {m}: {} (install linux-image-amd64 for this kernel)",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            // "insmod /lib/modules/.../x.ko [params]"; "builtin x" needs nothing.
            let mut w = line.split_whitespace();
            if w.next() != Some("insmod") {
                continue;
            }
            let Some(p) = w.next() else { continue };
            if p.ends_with(".ko.xz") || p.ends_with(".ko.zst") || p.ends_with(".ko.gz") {
                bail!("{p}: compressed modules are not supported by busybox insmod here");
            }
            if seen.insert(p.to_string()) {
                out.push(PathBuf::from(p));
            }
        }
    }
    Ok(out)
}

/// Copies `bin` to `root/rel` and every shared library `ldd` names to the same path in root.
fn copy_with_libs(bin: &Path, root: &Path, rel: &Path) -> Result<()> {
    let dst = root.join(rel);
    fs::create_dir_all(dst.parent().expect("relative path has a parent"))?;
    fs::copy(bin, &dst).with_context(|| format!("copy {}", bin.display()))?;
    let o = Command::new("ldd").arg(bin).output().context("run ldd")?;
    // Static binaries: ldd says "not a dynamic executable" / "statically linked" and
    // lists nothing to copy.
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(p) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let d = root.join(p.trim_start_matches('/'));
        if d.exists() {
            continue;
        }
        fs::create_dir_all(d.parent().expect("absolute path has a parent"))?;
        fs::copy(p, &d).with_context(|| format!("copy library {p}"))?;
    }
    Ok(())
}

/// Packs `root` as a newc archive with `cpio` (entries sorted, parents first).
fn pack(root: &Path, out: &Path) -> Result<()> {
    let mut entries = Vec::new();
    walk(root, root, &mut entries)?;
    entries.sort();
    let file = fs::File::create(out)?;
    let mut child = Command::new(tool("cpio", "cpio")?)
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("run cpio")?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for e in &entries {
            writeln!(stdin, "{e}")?;
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("cpio failed: {st}");
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
        out.push(rel);
        if e.file_type()?.is_dir() {
            walk(root, &p, out)?;
        }
    }
    Ok(())
}
