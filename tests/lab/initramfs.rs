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

/// Modules by set: `base` is always loaded, a VM names the other sets it needs (loading
/// all of them costs ~3 s of boot under TCG). `modprobe --show-depends` adds dependencies.
pub const MODULE_SETS: &[(&str, &[&str])] = &[
    ("base", &["virtio_pci", "9p", "9pnet_virtio"]),
    ("net", &["virtio_net", "bonding"]),
    ("md", &["virtio_blk", "raid1", "raid456"]),
    (
        "mpath",
        &["virtio_scsi", "sd_mod", "dm_multipath", "dm_round_robin"],
    ),
    ("ipmi", &["ipmi_si", "ipmi_devintf"]),
    ("nvme", &["nvme"]),
    ("ahci", &["ahci", "sd_mod"]),
    (
        "drill",
        &[
            "virtio_net",
            "bonding",
            "virtio_blk",
            "raid1",
            "dm_multipath",
            "dm_round_robin",
        ],
    ),
];

/// Host tools copied into the guest with their shared libraries: (binary, Debian package).
const TOOLS: &[(&str, &str)] = &[
    ("mdadm", "mdadm"),
    ("dmsetup", "dmsetup"),
    ("smartctl", "smartmontools"),
];

const GUEST_FILES: &[(&str, &str, u32)] = &[
    ("init", include_str!("guest/init"), 0o755),
    ("bin/lab-lib.sh", include_str!("guest/lab-lib.sh"), 0o644),
    ("bin/lab-mark", include_str!("guest/lab-mark"), 0o755),
    ("bin/lab-wait", include_str!("guest/lab-wait"), 0o755),
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
    for d in [
        "bin", "sbin", "etc/lab", "proc", "sys", "dev", "tmp", "run", "lab",
    ] {
        fs::create_dir_all(root.join(d))?;
    }

    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox not found: install the Debian package busybox-static");
    }
    copy_with_libs(busybox, &root, Path::new("bin/busybox"))?;

    let mut all = BTreeSet::new();
    for (set, mods) in MODULE_SETS {
        let list = module_list(kver, mods)?;
        for ko in &list {
            if all.insert(ko.clone()) {
                let dst = root.join(ko.strip_prefix("/").unwrap_or(ko));
                fs::create_dir_all(dst.parent().expect("module path has a parent"))?;
                fs::copy(ko, &dst).with_context(|| format!("copy {}", ko.display()))?;
            }
        }
        let text: String = list.iter().map(|m| format!("{}\n", m.display())).collect();
        fs::write(root.join(format!("etc/lab/modules.{set}")), text)?;
    }

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
        modules: all.len(),
    })
}

/// `insmod` paths of `modules` and their dependencies, dependencies first, each once.
fn module_list(kver: &str, modules: &[&str]) -> Result<Vec<PathBuf>> {
    let modprobe = tool("modprobe", "kmod")?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in modules {
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

/// The kernel as QEMU should boot it. Debian ships an XZ-compressed bzImage whose
/// decompression alone takes ~5 s under TCG; the uncompressed ELF inside it boots through
/// PVH (CONFIG_PVH) at once. Falls back to the bzImage when there is no XZ payload.
pub fn kernel_image(bzimage: &Path, dir: &Path) -> Result<PathBuf> {
    let data = fs::read(bzimage).with_context(|| format!("read {}", bzimage.display()))?;
    const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
    let Some(off) = data.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC) else {
        return Ok(bzimage.to_path_buf());
    };
    let out_path = dir.join("vmlinux");
    let mut child = Command::new(tool("xz", "xz-utils")?)
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out_path)?)
        .stderr(Stdio::null())
        .spawn()
        .context("run xz")?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        // xz stops reading after the stream; the rest of the bzImage is not its business.
        let _ = stdin.write_all(&data[off..]);
    }
    child.wait()?;
    let head = fs::read(&out_path).map(|d| d.get(..4) == Some(b"\x7fELF"))?;
    if !head {
        fs::remove_file(&out_path)?;
        return Ok(bzimage.to_path_buf());
    }
    Ok(out_path)
}
