//! Scenario 2: md RAID1, RAID5 and RAID6 over virtio disks in one guest. The RAID1 loses a
//! disk from the host (QMP `device_del`, then a write), gets a hot-plugged new one and
//! rebuilds; a RAID5 and a RAID6 member are failed with mdadm.
//!
//! Beside them, md3: a RAID1 of the two partitions of ONE disk (issue 11), which the agent
//! counts redundant but with effective spare 0, the disk named as the shared failure domain.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use super::{agent_config, check_hold_down};
use crate::vm::Vm;
use crate::{Lab, Report, STEP_TIMEOUT_S};

const S: &str = "md";
/// Small disks: the throttled RAID1 rebuild stays visible for seconds, then finishes fast.
const DISK_MIB: u64 = 32;
/// (array, level, disks)
const ARRAYS: &[(&str, u32, &[&str])] = &[
    ("md0", 1, &["r1a", "r1b"]),
    ("md1", 5, &["r5a", "r5b", "r5c"]),
    ("md2", 6, &["r6a", "r6b", "r6c", "r6d"]),
];

/// What the md collector reads, for `SPAREWATCH_LAB_CAPTURE`.
const MD_DUMP: &str = "cat /proc/mdstat; for a in /sys/block/md*/md; do for f in level raid_disks \
     degraded array_state sync_action sync_completed sync_speed; do echo \"$a/$f: $(cat $a/$f)\"; \
     done; for d in $a/dev-*; do echo \"$d: state=$(cat $d/state) slot=$(cat $d/slot)\"; done; done";

/// The disk md3 mirrors onto itself, with an MBR of two partitions.
const ONE_DISK: &str = "pp";

/// A classic MBR (no tools needed in the guest: the kernel's msdos parser reads it at
/// probe time) with two primary Linux-RAID partitions (type 0xfd) that split the disk
/// after the first MiB. CHS fields are left 0: Linux uses the LBA fields.
fn two_partitions(path: &std::path::Path) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let sectors = u32::try_from((DISK_MIB << 20) / 512)?;
    let half = (sectors - 2048) / 2;
    let mut mbr = [0u8; 512];
    for (i, start) in [2048, 2048 + half].into_iter().enumerate() {
        let e = &mut mbr[446 + 16 * i..446 + 16 * (i + 1)];
        e[4] = 0xfd;
        e[8..12].copy_from_slice(&u32::to_le_bytes(start));
        e[12..16].copy_from_slice(&u32::to_le_bytes(half));
    }
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&mbr)?;
    Ok(())
}

fn image(vm_dir: &std::path::Path, disk: &str) -> Result<String> {
    let p = vm_dir.join(format!("{disk}.img"));
    let f = fs::File::create(&p)?;
    f.set_len(DISK_MIB << 20)?;
    Ok(p.display().to_string())
}

pub fn run(lab: &Lab, report: &mut Report) -> Result<()> {
    let dir = lab.dir.path().join("md-disks");
    fs::create_dir_all(&dir)?;
    let mut args = Vec::new();
    for (_, _, disks) in ARRAYS {
        for d in *disks {
            let img = image(&dir, d)?;
            args.extend([
                "-drive".to_string(),
                format!("if=none,id=d-{d},file={img},format=raw,cache=unsafe"),
                "-device".to_string(),
                format!("virtio-blk-pci,drive=d-{d},id=vd-{d},serial=lab-{d}"),
            ]);
        }
    }
    let pp = image(&dir, ONE_DISK)?;
    two_partitions(std::path::Path::new(&pp))?;
    args.extend([
        "-drive".to_string(),
        format!("if=none,id=d-{ONE_DISK},file={pp},format=raw,cache=unsafe"),
        "-device".to_string(),
        format!("virtio-blk-pci,drive=d-{ONE_DISK},id=vd-{ONE_DISK},serial=lab-{ONE_DISK}"),
    ]);
    let spare_img = image(&dir, "r1new")?;
    let result = run_in(lab, report, &args, &spare_img);
    fs::remove_dir_all(&dir)?;
    result
}

fn run_in(lab: &Lab, report: &mut Report, args: &[String], spare_img: &str) -> Result<()> {
    let mut vm = Vm::boot(lab, S, &["md"], 256, args)?;
    let mut dev = disks_by_serial(&mut vm)?;
    for (md, level, disks) in ARRAYS {
        let devs: Vec<String> = disks
            .iter()
            .map(|d| {
                dev.get(*d)
                    .map(|v| format!("/dev/{v}"))
                    .context("disk missing")
            })
            .collect::<Result<_>>()?;
        // --assume-clean: no initial resync, so every array starts redundant.
        vm.sh_ok(&format!(
            "mdadm --create /dev/{md} --run --quiet --metadata=1.2 --level={level} \
             --raid-devices={} --assume-clean {}",
            devs.len(),
            devs.join(" ")
        ))?;
    }
    let pp = dev
        .get(ONE_DISK)
        .context("the partitioned disk is missing")?
        .clone();
    vm.sh_ok(&format!(
        "mdadm --create /dev/md3 --run --quiet --metadata=1.2 --level=1 --raid-devices=2 \
         --assume-clean /dev/{pp}1 /dev/{pp}2"
    ))?;
    vm.start_agent(&agent_config(""))?;
    for (md, _, _) in ARRAYS {
        vm.wait_state(&format!("md:{md}"), "redundant", STEP_TIMEOUT_S)?;
    }
    report.step(
        S,
        "md0 raid1 x2, md1 raid5 x3, md2 raid6 x4 created",
        "redundant",
        None,
    );
    one_disk_mirror(&mut vm, &pp)?;
    report.step(
        S,
        &format!("md3 raid1 over {pp}1 + {pp}2 (one disk)"),
        "redundant, effective spare 0",
        None,
    );

    // RAID1: the second disk is pulled from the bus; the next write fails it.
    let gone = dev["r1b"].clone();
    vm.mark()?;
    vm.qmp("device_del", json!({ "id": "vd-r1b" }))?;
    vm.wait_qmp_event("DEVICE_DELETED", Duration::from_secs(30))?;
    vm.sh_ok("dd if=/dev/urandom of=/dev/md0 bs=4k count=64 conv=fsync 2>/dev/null")?;
    let (ms, m) = vm.wait_state("md:md0", "no_redundancy", STEP_TIMEOUT_S)?;
    vm.capture("md0-pulled", MD_DUMP)?;
    let h = m.value(
        "sparewatch_member_healthy",
        &[("group", "md:md0"), ("member", &gone)],
    )?;
    ensure!(
        h == 0.0,
        "the pulled disk {gone} is still healthy in the agent's view"
    );
    report.step(
        S,
        &format!("md0: {gone} device_del + write"),
        "no_redundancy",
        Some(ms),
    );

    // A new disk is hot-plugged and added: the rebuild is throttled so it can be seen.
    vm.sh_ok("mdadm /dev/md0 --remove failed --remove detached >/dev/null 2>&1; true")?;
    vm.sh_ok(
        "echo 1000 >/sys/block/md0/md/sync_speed_min; echo 1500 >/sys/block/md0/md/sync_speed_max",
    )?;
    vm.qmp(
        "blockdev-add",
        json!({ "driver": "raw", "node-name": "d-r1new",
                "file": { "driver": "file", "filename": spare_img } }),
    )?;
    vm.qmp(
        "device_add",
        json!({ "driver": "virtio-blk-pci", "drive": "d-r1new", "id": "vd-r1new", "serial": "lab-r1new" }),
    )?;
    let mut new = None;
    for _ in 0..100 {
        dev = disks_by_serial(&mut vm)?;
        if let Some(d) = dev.get("r1new") {
            new = Some(d.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let new = new.context("the hot-plugged disk never showed up in the guest")?;
    vm.mark()?;
    vm.sh_ok(&format!("mdadm /dev/md0 --add /dev/{new} >/dev/null"))?;
    let (ms, m) = vm.wait_metric(
        STEP_TIMEOUT_S,
        "sparewatch_md_sync_action",
        1.0,
        &[("device", "md0"), ("action", "recover")],
    )?;
    vm.capture("md0-recovering", MD_DUMP)?;
    let progress = m.value("sparewatch_md_sync_completed_ratio", &[("device", "md0")])?;
    ensure!(
        (0.0..1.0).contains(&progress),
        "rebuild progress {progress} outside [0, 1)"
    );
    let state = m.group_state("md:md0")?;
    ensure!(state == "no_redundancy", "md0 is {state} while rebuilding");
    let h = m.value(
        "sparewatch_member_healthy",
        &[("group", "md:md0"), ("member", &new)],
    )?;
    ensure!(h == 0.0, "the rebuilding member {new} counts as healthy");
    report.step(
        S,
        &format!(
            "md0: {new} hot-plugged + added, rebuilding ({:.0}%)",
            progress * 100.0
        ),
        "no_redundancy",
        Some(ms),
    );

    vm.mark()?;
    vm.sh_ok("echo 200000 >/sys/block/md0/md/sync_speed_max")?;
    let (ms, _) = vm.wait_state("md:md0", "redundant", STEP_TIMEOUT_S)?;
    check_hold_down(ms)?;
    report.step(
        S,
        "md0: rebuild finished (after hold-down)",
        "redundant",
        Some(ms),
    );

    // RAID5 of three, one failed: no spare left. RAID6 of four, one failed: it still
    // survives one more.
    for (md, level, disk, state) in [
        ("md1", "raid5", "r5b", "no_redundancy"),
        ("md2", "raid6", "r6c", "degraded"),
    ] {
        let f = dev[disk].clone();
        vm.mark()?;
        vm.sh_ok(&format!("mdadm /dev/{md} --fail /dev/{f} >/dev/null 2>&1"))?;
        let (ms, _) = vm.wait_state(&format!("md:{md}"), state, STEP_TIMEOUT_S)?;
        report.step(S, &format!("{md} {level}: {f} failed"), state, Some(ms));
    }
    vm.capture("md1-md2-failed", MD_DUMP)?;

    vm.finish()
}

/// md3 counts redundant but has no effective spare: both members are on disk `pp`, named
/// in the shared-domain series; md0 (two disks) keeps effective spare 1.
fn one_disk_mirror(vm: &mut Vm, pp: &str) -> Result<()> {
    let (_, m) = vm.wait_state("md:md3", "redundant", STEP_TIMEOUT_S)?;
    let eff = |g: &str| m.value("sparewatch_group_effective_spare", &[("group", g)]);
    ensure!(
        eff("md:md3")? == 0.0,
        "md:md3 (two partitions of {pp}) has effective spare {}, expected 0",
        eff("md:md3")?
    );
    let shared = m.value(
        "sparewatch_group_failure_domain_shared_members",
        &[("group", "md:md3"), ("domain_kind", "disk"), ("domain", pp)],
    )?;
    ensure!(
        shared == 2.0,
        "md:md3: {shared} members share disk {pp}, expected 2"
    );
    ensure!(
        eff("md:md0")? == 1.0,
        "md:md0 (two disks) has effective spare {}, expected 1",
        eff("md:md0")?
    );
    Ok(())
}

/// Guest block devices by the serial the harness gave them (`lab-r1a` → `r1a`).
fn disks_by_serial(vm: &mut Vm) -> Result<BTreeMap<String, String>> {
    let out = vm.sh_ok("for d in /sys/block/vd*; do echo ${d##*/} $(cat $d/serial); done")?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (dev, serial) = l.split_once(' ')?;
            Some((
                serial.trim().strip_prefix("lab-")?.to_string(),
                dev.to_string(),
            ))
        })
        .collect())
}
