//! Scenario 1: an active-backup bond over two virtio NICs; links cut from the host (QMP
//! `set_link`), the state read from the agent's /metrics in the guest.
//!
//! In the same guest, a second bond whose two slaves are the two functions of ONE PCI
//! slot (a dual-port card, as QEMU's `multifunction=on` lays it out): redundant by count,
//! effective spare 0 with the card named as the shared failure domain (issue 11), while
//! bond0's slaves on two slots keep effective spare 1.

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use super::{agent_config, check_hold_down};
use crate::vm::Vm;
use crate::{Lab, Report, STEP_TIMEOUT_S};

const S: &str = "bond";
const GROUP: &str = "bond:bond0";
/// QEMU's user-mode network answers ping on its gateway: proof the bond still carries traffic.
const GATEWAY: &str = "10.0.2.2";
/// The second bond, on one dual-function card.
const ONE_CARD: &str = "bond:bond1";
/// Its PCI slot: high enough that no device QEMU places by itself takes it.
const CARD_SLOT: u8 = 0x1e;

pub fn run(lab: &Lab, report: &mut Report) -> Result<()> {
    let mut args = Vec::new();
    for (i, nic) in ["nic0", "nic1"].iter().enumerate() {
        args.extend([
            "-netdev".to_string(),
            format!("user,id=n{i}"),
            "-device".to_string(),
            format!("virtio-net-pci,netdev=n{i},id={nic},mac=52:54:00:5e:00:0{i}"),
        ]);
    }
    for f in 0..2 {
        let i = f + 2;
        args.extend([
            "-netdev".to_string(),
            format!("user,id=n{i}"),
            "-device".to_string(),
            format!(
                "virtio-net-pci,netdev=n{i},id=nic{i},mac=52:54:00:5e:00:0{i},addr=0x{CARD_SLOT:x}.{f}{}",
                if f == 0 { ",multifunction=on" } else { "" }
            ),
        ]);
    }
    let mut vm = Vm::boot(lab, S, &["net"], 256, &args)?;

    // Which guest interface is which QEMU NIC: by MAC, before the bond rewrites the MACs.
    let mut eth_of = Vec::new();
    for i in 0..2 {
        eth_of.push(eth_with_mac(&mut vm, i)?);
    }
    let nic_of = |eth: &str| -> Result<&'static str> {
        match eth_of.iter().position(|e| e == eth) {
            Some(0) => Ok("nic0"),
            Some(1) => Ok("nic1"),
            _ => bail!("{eth} is not one of the bond's NICs {eth_of:?}"),
        }
    };

    // bond0 exists once the bonding module is loaded (max_bonds=1).
    active_backup(&mut vm, "bond0", &eth_of)?;
    vm.sh_ok("ip addr add 10.0.2.15/24 dev bond0")?;
    let card_eths = one_card_bond(&mut vm)?;
    vm.start_agent(&agent_config(""))?;

    let (_, m) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    report.step(S, "bond0 up, both slaves up", "redundant", None);
    check_one_card(&mut vm, &m, &card_eths)?;
    report.step(
        S,
        &format!("bond1 on one dual-port card ({})", card_eths.join(", ")),
        "redundant, effective spare 0",
        None,
    );
    let active = active_slave(&m)?;
    let standby = eth_of
        .iter()
        .find(|e| **e != active)
        .context("a standby slave")?
        .clone();
    ping(&mut vm).context("bond0 carries no traffic with both slaves up")?;

    // 1. Standby link off: no_redundancy, the active one keeps working.
    vm.mark()?;
    set_link(&mut vm, nic_of(&standby)?, false)?;
    let (ms, m) = vm.wait_state(GROUP, "no_redundancy", STEP_TIMEOUT_S)?;
    ensure!(
        active_slave(&m)? == active,
        "active slave moved although only the standby failed"
    );
    check_member(&m, &standby, "standby", 0.0)?;
    check_member(&m, &active, "active", 1.0)?;
    report.step(
        S,
        &format!("standby {standby} link off"),
        "no_redundancy",
        Some(ms),
    );
    ping(&mut vm).context("the active slave stopped carrying traffic")?;

    vm.mark()?;
    set_link(&mut vm, nic_of(&standby)?, true)?;
    let (ms, _) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    check_hold_down(ms)?;
    report.step(
        S,
        &format!("standby {standby} link on (after hold-down)"),
        "redundant",
        Some(ms),
    );

    // 2. Active link off: failover to the standby, no_redundancy.
    vm.mark()?;
    set_link(&mut vm, nic_of(&active)?, false)?;
    let (ms_fo, _) = vm.wait_metric(
        STEP_TIMEOUT_S,
        "sparewatch_net_bond_active_slave",
        1.0,
        &[("bond", "bond0"), ("slave", &standby)],
    )?;
    report.step(
        S,
        &format!("active {active} link off: failover to {standby}"),
        "-",
        Some(ms_fo),
    );
    let (ms, m) = vm.wait_state(GROUP, "no_redundancy", STEP_TIMEOUT_S)?;
    check_member(&m, &standby, "active", 1.0)?;
    check_member(&m, &active, "standby", 0.0)?;
    report.step(
        S,
        &format!("active {active} link off"),
        "no_redundancy",
        Some(ms),
    );
    ping(&mut vm).context("no traffic after the failover")?;

    // 3. Both off: failed.
    vm.mark()?;
    set_link(&mut vm, nic_of(&standby)?, false)?;
    let (ms, _) = vm.wait_state(GROUP, "failed", STEP_TIMEOUT_S)?;
    report.step(S, "both links off", "failed", Some(ms));

    // 4. Both on: redundant, but only after the hold-down.
    vm.mark()?;
    set_link(&mut vm, "nic0", true)?;
    set_link(&mut vm, "nic1", true)?;
    let (ms, _) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    check_hold_down(ms)?;
    report.step(S, "both links on (after hold-down)", "redundant", Some(ms));
    ping(&mut vm)?;

    vm.finish()
}

/// bond1 over the two functions of the card in slot [`CARD_SLOT`]; returns its slaves.
fn one_card_bond(vm: &mut Vm) -> Result<Vec<String>> {
    let mut eths = Vec::new();
    for i in 2..4 {
        let name = eth_with_mac(vm, i)?;
        // The kernel's own view: the interface hangs off function i-2 of the slot.
        let dev = vm.sh_ok(&format!("readlink -f /sys/class/net/{name}/device"))?;
        ensure!(
            dev.contains(&format!(":{CARD_SLOT:02x}.{}/", i - 2)),
            "{name} is not on slot {CARD_SLOT:#x} function {}: {dev}",
            i - 2
        );
        eths.push(name);
    }
    vm.sh_ok("echo +bond1 >/sys/class/net/bonding_masters")?;
    active_backup(vm, "bond1", &eths)?;
    Ok(eths)
}

/// The guest interface with QEMU NIC `i`'s MAC (`52:54:00:5e:00:0i`), read before a bond
/// rewrites the MACs.
fn eth_with_mac(vm: &mut Vm, i: usize) -> Result<String> {
    let name = vm
        .sh_ok(&format!(
            "grep -l 52:54:00:5e:00:0{i} /sys/class/net/*/address | cut -d/ -f5"
        ))?
        .trim()
        .to_string();
    ensure!(
        name.starts_with("eth"),
        "no guest interface with nic{i}'s MAC: {name:?}"
    );
    Ok(name)
}

/// `bond` (existing) made active-backup with miimon 100 over `slaves`, then up.
fn active_backup(vm: &mut Vm, bond: &str, slaves: &[String]) -> Result<()> {
    vm.sh_ok(&format!(
        "echo active-backup >/sys/class/net/{bond}/bonding/mode"
    ))?;
    vm.sh_ok(&format!("echo 100 >/sys/class/net/{bond}/bonding/miimon"))?;
    for e in slaves {
        vm.sh_ok(&format!(
            "ip link set {e} down; echo +{e} >/sys/class/net/{bond}/bonding/slaves"
        ))?;
    }
    vm.sh_ok(&format!("ip link set {bond} up"))?;
    Ok(())
}

/// bond1 counts redundant but has no effective spare, the shared card named; bond0 (two
/// slots) keeps its spare.
fn check_one_card(vm: &mut Vm, m: &crate::metrics::Metrics, eths: &[String]) -> Result<()> {
    let (_, m1) = vm.wait_state(ONE_CARD, "redundant", STEP_TIMEOUT_S)?;
    let card = format!("0000:00:{CARD_SLOT:02x}");
    let eff = |m: &crate::metrics::Metrics, g: &str| {
        m.value("sparewatch_group_effective_spare", &[("group", g)])
    };
    ensure!(
        eff(&m1, ONE_CARD)? == 0.0,
        "{ONE_CARD} ({eths:?} on {card}) has effective spare {}, expected 0",
        eff(&m1, ONE_CARD)?
    );
    let shared = m1.value(
        "sparewatch_group_failure_domain_shared_members",
        &[
            ("group", ONE_CARD),
            ("domain_kind", "card"),
            ("domain", &card),
        ],
    )?;
    ensure!(
        shared == 2.0,
        "{ONE_CARD}: {shared} members share {card}, expected 2"
    );
    ensure!(
        eff(m, GROUP)? == 1.0,
        "{GROUP} (two slots) has effective spare {}, expected 1",
        eff(m, GROUP)?
    );
    Ok(())
}

fn set_link(vm: &mut Vm, nic: &str, up: bool) -> Result<()> {
    vm.qmp("set_link", json!({ "name": nic, "up": up }))?;
    Ok(())
}

fn ping(vm: &mut Vm) -> Result<()> {
    vm.sh_ok(&format!("ping -c 1 -W 5 {GATEWAY} >/dev/null"))?;
    Ok(())
}

/// The bond's active slave as the agent exports it.
fn active_slave(m: &crate::metrics::Metrics) -> Result<String> {
    let a = m.labels_at_one(
        "sparewatch_net_bond_active_slave",
        &[("bond", "bond0")],
        "slave",
    );
    match a.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("agent exports {} active slaves for bond0: {a:?}", a.len()),
    }
}

fn check_member(m: &crate::metrics::Metrics, member: &str, role: &str, healthy: f64) -> Result<()> {
    let v = m.value(
        "sparewatch_member_healthy",
        &[("group", GROUP), ("member", member), ("role", role)],
    )?;
    ensure!(
        v == healthy,
        "sparewatch_member_healthy{{member={member},role={role}}} = {v}, expected {healthy}"
    );
    Ok(())
}
