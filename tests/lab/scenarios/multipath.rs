//! Scenario 3: dm-multipath with two paths to one disk. Path A is a virtio-scsi disk on the
//! image file; path B reaches the same image through NBD from a `qemu-storage-daemon` on the
//! host. Killing the daemon fails path B at the next I/O (the kernel fails the path on the
//! I/O error); restarting it and reinstating the path once a direct read on it works again
//! (what multipathd's checker does: multipathd itself is not in the guest) restores it.
//!
//! Beside it, `mpathb`: two paths that are two LUNs of ONE virtio-scsi HBA (issue 11): the
//! agent counts it redundant but with effective spare 0, the HBA named as the shared
//! failure domain, while mpatha's paths on two HBAs keep effective spare 1.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::{agent_config, check_hold_down};
use crate::host::{guarded, tool, wait_until, Proc};
use crate::vm::Vm;
use crate::{Lab, Report, STEP_TIMEOUT_S};

const S: &str = "multipath";
const GROUP: &str = "mpath:mpatha";
const WWN: &str = "0x5000c500a1b2c3d4";
/// The map whose two paths leave through one HBA.
const ONE_HBA: &str = "mpath:mpathb";
const WWN_B: &str = "0x5000c500a1b2c3d5";
const DISK_MIB: u64 = 16;
/// Eight separate 4 KiB writes (O_DIRECT): with one I/O per path and turn both paths get some.
const WRITE: &str = "dd if=/dev/zero of=/dev/mapper/mpatha bs=4k count=8 oflag=direct 2>/dev/null";

/// The NBD server behind path B.
fn nbd_server(dir: &Path, image: &Path, sock: &Path) -> Result<Proc> {
    let _ = fs::remove_file(sock);
    let mut cmd = guarded(&tool("qemu-storage-daemon", "qemu-system-common")?)?;
    cmd.arg("--blockdev")
        .arg(format!(
            "driver=file,node-name=img,filename={},locking=off",
            image.display()
        ))
        .arg("--nbd-server")
        .arg(format!("addr.type=unix,addr.path={}", sock.display()))
        .args([
            "--export",
            "type=nbd,id=exp,node-name=img,name=mp,writable=on",
        ]);
    let mut p = Proc::spawn("qemu-storage-daemon", cmd, &dir.join("nbd.log"))?;
    wait_until("the NBD socket", Duration::from_secs(10), || sock.exists())?;
    p.check_running()?;
    Ok(p)
}

pub fn run(lab: &Lab, report: &mut Report) -> Result<()> {
    let dir: PathBuf = lab.dir.path().join("mpath");
    fs::create_dir_all(&dir)?;
    let image = dir.join("mp.img");
    fs::File::create(&image)?.set_len(DISK_MIB << 20)?;
    let image_b = dir.join("mpb.img");
    fs::File::create(&image_b)?.set_len(DISK_MIB << 20)?;
    let sock = dir.join("nbd.sock");
    let result = (|| {
        let mut nbd = nbd_server(&dir, &image, &sock)?;
        let args: Vec<String> = [
            "-blockdev".to_string(),
            format!(
                "driver=file,node-name=pa,filename={},locking=off",
                image.display()
            ),
            "-blockdev".to_string(),
            // reconnect-delay: while the server is gone requests fail after 1 s, and the
            // next request after its return reconnects.
            format!(
                "driver=nbd,node-name=pb,server.type=unix,server.path={},export=mp,reconnect-delay=1",
                sock.display()
            ),
            "-device".to_string(),
            "virtio-scsi-pci,id=hba0".to_string(),
            "-device".to_string(),
            format!("scsi-hd,bus=hba0.0,drive=pa,serial=labmp,wwn={WWN},share-rw=on"),
            "-device".to_string(),
            "virtio-scsi-pci,id=hba1".to_string(),
            "-device".to_string(),
            format!("scsi-hd,bus=hba1.0,drive=pb,serial=labmp,wwn={WWN},share-rw=on"),
            // mpathb: LUNs 0 and 1 of hba2, one image.
            "-blockdev".to_string(),
            format!(
                "driver=file,node-name=pc,filename={},locking=off",
                image_b.display()
            ),
            "-device".to_string(),
            "virtio-scsi-pci,id=hba2".to_string(),
            "-device".to_string(),
            format!(
                "scsi-hd,bus=hba2.0,lun=0,drive=pc,serial=labmpb,wwn={WWN_B},share-rw=on"
            ),
            "-device".to_string(),
            format!(
                "scsi-hd,bus=hba2.0,lun=1,drive=pc,serial=labmpb,wwn={WWN_B},share-rw=on"
            ),
        ]
        .into();
        let mut vm = Vm::boot(lab, S, &["mpath"], 256, &args)?;
        scenario(&mut vm, &mut nbd, &dir, &image, &sock, report)?;
        vm.finish()?;
        nbd.kill()
    })();
    fs::remove_dir_all(&dir)?;
    result
}

fn scenario(
    vm: &mut Vm,
    nbd: &mut Proc,
    dir: &Path,
    image: &Path,
    sock: &Path,
    report: &mut Report,
) -> Result<()> {
    // The SCSI disks with their WWN: mpatha's two in HBA order, hba0 (file) first, hba1
    // (NBD) second; mpathb's two on hba2.
    let out = vm.sh_ok(
        "for d in /sys/block/sd*; do echo ${d##*/} $(cat $d/dev) $(cat $d/size) \
         $(readlink -f $d/device) $(cat $d/device/wwid); done",
    )?;
    let disks: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| w.len() == 5)
        .collect();
    // (device path, name, major:minor, size) of the disks whose wwid ends in `wwn`.
    let of_wwn = |wwn: &str| {
        let mut v: Vec<(String, String, String, String)> = disks
            .iter()
            .filter(|w| w[4].ends_with(wwn.trim_start_matches("0x")))
            .map(|w| (w[3].clone(), w[0].clone(), w[1].clone(), w[2].clone()))
            .collect();
        v.sort();
        v
    };
    let paths = of_wwn(WWN);
    let one_hba = of_wwn(WWN_B);
    ensure!(
        one_hba.len() == 2,
        "expected two SCSI paths with WWN {WWN_B}, guest shows {out:?}"
    );
    ensure!(
        paths.len() == 2,
        "expected two SCSI paths, guest shows {out:?}"
    );
    let (a_dev, a_mm, size) = (&paths[0].1, &paths[0].2, &paths[0].3);
    let (b_dev, b_mm) = (&paths[1].1, &paths[1].2);
    ensure!(size == &paths[1].3, "the two paths differ in size");

    // A hand-built map as multipath-tools would load it: round-robin, one I/O per turn,
    // no queueing (a dead path must fail, not hang).
    vm.sh_ok(&format!(
        "dmsetup create mpatha --uuid mpath-3{} --table '0 {size} multipath 0 0 1 1 \
         round-robin 0 2 1 {a_mm} 1 {b_mm} 1'",
        WWN.trim_start_matches("0x")
    ))?;
    // Without udev nobody makes /dev/mapper/mpatha: dmsetup does it itself.
    vm.sh_ok("dmsetup mknodes mpatha")?;
    vm.sh_ok(&format!(
        "dmsetup create mpathb --uuid mpath-3{} --table '0 {} multipath 0 0 1 1 \
         round-robin 0 2 1 {} 1 {} 1'",
        WWN_B.trim_start_matches("0x"),
        one_hba[0].3,
        one_hba[0].2,
        one_hba[1].2
    ))?;
    vm.start_agent(&agent_config(""))?;
    let (_, m) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    vm.capture("fresh-map", "dmsetup status --target multipath")?;
    ensure!(
        m.find("sparewatch_member_healthy", &[("group", GROUP)])
            .count()
            == 2,
        "the agent does not see two paths"
    );
    report.step(
        S,
        &format!("mpatha over {a_dev} (file) + {b_dev} (NBD)"),
        "redundant",
        None,
    );
    let hba = check_one_hba(vm, &m)?;
    report.step(
        S,
        &format!(
            "mpathb over {} + {}, both on HBA {hba}",
            one_hba[0].1, one_hba[1].1
        ),
        "redundant, effective spare 0",
        None,
    );

    // Path B's backend dies; the next writes through the map fail it.
    vm.mark()?;
    nbd.kill()?;
    vm.sh_ok(WRITE)?;
    let (ms, m) = vm.wait_state(GROUP, "no_redundancy", STEP_TIMEOUT_S)?;
    let failed = m
        .value(
            "sparewatch_multipath_path_active",
            &[("map", "mpatha"), ("path", b_mm)],
        )
        .or_else(|_| {
            m.value(
                "sparewatch_multipath_path_active",
                &[("map", "mpatha"), ("path", b_dev)],
            )
        })?;
    ensure!(
        failed == 0.0,
        "path {b_dev} still active in the agent's view"
    );
    vm.capture(
        "path-failed",
        "dmsetup status --target multipath; dmsetup table",
    )?;
    report.step(
        S,
        &format!("NBD server of {b_dev} killed + write"),
        "no_redundancy",
        Some(ms),
    );
    // I/O keeps working over path A.
    vm.sh_ok(WRITE)
        .context("the map stopped working with one path left")?;

    // The server returns. What multipathd's directio checker does, done by hand (multipathd
    // is not in the guest): read the path directly once a second until it answers (QEMU's
    // NBD client reconnects with a backoff of up to 16 s), then reinstate it in the map.
    *nbd = nbd_server(dir, image, sock)?;
    vm.mark()?;
    vm.sh_ok(&format!(
        "i=0; until dd if=/dev/{b_dev} of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null; \
         do i=$((i+1)); [ $i -ge 60 ] && break; sleep 1; done; \
         dmsetup message mpatha 0 reinstate_path {b_mm}"
    ))?;
    vm.sh_ok(WRITE)?;
    let (ms, _) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    check_hold_down(ms)?;
    report.step(
        S,
        &format!("NBD server back, {b_dev} reconnected + reinstated (after hold-down)"),
        "redundant",
        Some(ms),
    );
    let st = vm.sh_ok("dmsetup status mpatha")?;
    ensure!(
        !st.contains(" F "),
        "a path is still failed after the reinstate: {st}"
    );
    Ok(())
}

/// mpathb counts redundant but has no effective spare: both paths share one HBA, named in
/// the shared-domain series. mpatha (two HBAs) keeps effective spare 1. Returns the HBA.
fn check_one_hba(vm: &mut Vm, m: &crate::metrics::Metrics) -> Result<String> {
    let (_, mb) = vm.wait_state(ONE_HBA, "redundant", STEP_TIMEOUT_S)?;
    let eff = |m: &crate::metrics::Metrics, g: &str| {
        m.value("sparewatch_group_effective_spare", &[("group", g)])
    };
    ensure!(
        eff(&mb, ONE_HBA)? == 0.0,
        "{ONE_HBA} (two LUNs of one HBA) has effective spare {}, expected 0",
        eff(&mb, ONE_HBA)?
    );
    let shared: Vec<(String, f64)> = mb
        .find(
            "sparewatch_group_failure_domain_shared_members",
            &[("group", ONE_HBA), ("domain_kind", "hba")],
        )
        .filter_map(|s| s.labels.get("domain").map(|d| (d.clone(), s.value)))
        .collect();
    ensure!(
        matches!(shared.as_slice(), [(_, n)] if *n == 2.0),
        "{ONE_HBA}: expected one hba shared by 2 paths, got {shared:?}"
    );
    ensure!(
        eff(m, GROUP)? == 1.0,
        "{GROUP} (two HBAs) has effective spare {}, expected 1",
        eff(m, GROUP)?
    );
    Ok(shared[0].0.clone())
}
