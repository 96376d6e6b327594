//! Scenario: an md RAID1 over two NVMe controllers (QEMU's emulated NVMe), the agent's
//! smart collector running the real smartctl in the guest. The host sets the SMART critical
//! warning of one controller (QMP `qom-set … smart_critical_warning`): the disk is at risk,
//! so the mirror built on it is `degraded` while both halves still work; clearing the
//! warning makes it redundant again.

use anyhow::{ensure, Context, Result};
use serde_json::json;

use super::agent_config;
use crate::vm::Vm;
use crate::{Lab, Report, STEP_TIMEOUT_S};

const S: &str = "smart";
const GROUP: &str = "md:md0";
/// QEMU device id and serial of the controller that gets the warning.
const FAULTY: (&str, &str) = ("nvme1", "SWLAB0001");

pub fn run(lab: &Lab, report: &mut Report) -> Result<()> {
    let disks = lab.dir.path().join("smart-disks");
    std::fs::create_dir_all(&disks)?;
    let mut args = Vec::new();
    for i in 0..2 {
        let img = disks.join(format!("nvme{i}.img"));
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(32 << 20))
            .context("disk image")?;
        args.extend([
            "-drive".to_string(),
            format!(
                "file={},if=none,id=d{i},format=raw,cache=unsafe",
                img.display()
            ),
            "-device".to_string(),
            format!("nvme,serial=SWLAB000{i},drive=d{i},id=nvme{i}"),
        ]);
    }
    let mut vm = Vm::boot(lab, S, &["md", "nvme"], 384, &args)?;
    vm.sh_ok(
        "for i in $(seq 100); do [ -b /dev/nvme0n1 ] && [ -b /dev/nvme1n1 ] && break; sleep 0.1; done; \
         [ -b /dev/nvme0n1 ] && [ -b /dev/nvme1n1 ]",
    )
    .context("the NVMe namespaces did not appear")?;
    // The guest's name of QEMU's nvme1, by serial (probe order is not guaranteed).
    let ctrl = vm
        .sh_ok(&format!(
            "grep -l {} /sys/class/nvme/nvme*/serial | cut -d/ -f5",
            FAULTY.1
        ))?
        .trim()
        .to_string();
    ensure!(
        ctrl.starts_with("nvme"),
        "no controller with serial {}: {ctrl:?}",
        FAULTY.1
    );
    let member = format!("{ctrl}n1");
    vm.sh_ok(
        "mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
         --assume-clean /dev/nvme0n1 /dev/nvme1n1 >/dev/null 2>&1",
    )?;
    vm.start_agent(&agent_config("collectors:\n  smart:\n    interval: 2s\n"))?;

    vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    // The first SMART pass (smartctl is slow under TCG) reports the disk, not at risk.
    vm.wait_metric(
        STEP_TIMEOUT_S,
        "sparewatch_smart_at_risk",
        0.0,
        &[("device", &ctrl)],
    )
    .context("the smart collector never reported the disk")?;
    report.step(S, "md0 over two NVMe, SMART clean", "redundant", None);

    // 1. The controller reports "NVM subsystem reliability degraded".
    vm.mark()?;
    set_warning(&mut vm, 4)?;
    let (ms, m) = vm.wait_state(GROUP, "degraded", STEP_TIMEOUT_S)?;
    let at_risk = m.value(
        "sparewatch_member_at_risk",
        &[("group", GROUP), ("member", &member)],
    )?;
    ensure!(at_risk == 1.0, "member {member} not at risk");
    let warning = m.value(
        "sparewatch_smart_nvme_critical_warning",
        &[("device", &ctrl)],
    )?;
    ensure!(warning == 4.0, "critical warning {warning}, expected 4");
    report.step(
        S,
        &format!("{ctrl} SMART critical warning 0x04"),
        "degraded",
        Some(ms),
    );

    // 2. The warning clears: redundant again. (The engine's hold-down applies to members
    // that were unhealthy; an at-risk member counted as healthy all along.)
    vm.mark()?;
    set_warning(&mut vm, 0)?;
    let (ms, m) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    let at_risk = m.value(
        "sparewatch_member_at_risk",
        &[("group", GROUP), ("member", &member)],
    )?;
    ensure!(at_risk == 0.0, "member {member} still at risk");
    report.step(
        S,
        &format!("{ctrl} critical warning cleared"),
        "redundant",
        Some(ms),
    );
    vm.finish()
}

fn set_warning(vm: &mut Vm, value: u8) -> Result<()> {
    vm.qmp(
        "qom-set",
        json!({
            "path": format!("/machine/peripheral/{}", FAULTY.0),
            "property": "smart_critical_warning",
            "value": value,
        }),
    )?;
    Ok(())
}
