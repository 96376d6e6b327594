//! Scenario 6: failover drills (`sparewatch drill`, docs/drills.md) against the real kernel,
//! all in one guest to spend one boot: an active-backup bond and a balance-rr bond over
//! QEMU user networks (ARP probes to the user network's gateway 10.0.2.2), a dm-multipath
//! map with two path groups over two virtio disks on one image (direct reads through the
//! map), a drill SIGKILLed mid-way and rolled back when the agent starts again, and md
//! scrubs of a RAID1 whose second half is a device-mapper device: clean first, then with an
//! `error` segment loaded under a few sectors of the idle half.
//!
//! (802.3ad needs an LACP partner, which QEMU's user network is not: the 802.3ad slaves
//! would sit in separate aggregators and the guardrail refuses such a bond. The slave-down
//! drill is the same for 802.3ad and balance modes; balance-rr runs it here.)

use std::fs;

use anyhow::{ensure, Context, Result};

use super::agent_config;
use crate::vm::{Vm, AGENT_ADDR};
use crate::{Lab, Report, STEP_TIMEOUT_S};

const S: &str = "drill";
const GATEWAY: &str = "10.0.2.2";
const DISK_MIB: u64 = 16;
/// Drill flags in the guest (each call adds its `--drill.hold`; 3 s keeps the lab quick).
const DRILL: &str = "sparewatch drill --config.file /lab/sparewatch.yml \
     --state.dir /var/lib/sparewatch --drill.step-timeout 30s";

pub fn run(lab: &Lab, report: &mut Report) -> Result<()> {
    let dir = lab.dir.path().join("drill-disks");
    fs::create_dir_all(&dir)?;
    let mut args = Vec::new();
    for i in 0..4 {
        args.extend([
            "-netdev".to_string(),
            format!("user,id=n{i}"),
            "-device".to_string(),
            format!("virtio-net-pci,netdev=n{i},id=nic{i},mac=52:54:00:5e:01:0{i}"),
        ]);
    }
    let img = |name: &str| -> Result<String> {
        let p = dir.join(format!("{name}.img"));
        fs::File::create(&p)?.set_len(DISK_MIB << 20)?;
        Ok(p.display().to_string())
    };
    // Two paths (two virtio disks) to one image; two RAID1 halves.
    let mp = img("mp")?;
    for (serial, file) in [
        ("mpa", mp.clone()),
        ("mpb", mp),
        ("r1a", img("r1a")?),
        ("r1b", img("r1b")?),
    ] {
        args.extend([
            "-drive".to_string(),
            format!("if=none,id=d-{serial},file={file},format=raw,file.locking=off"),
            "-device".to_string(),
            format!("virtio-blk-pci,drive=d-{serial},serial=lab-{serial},share-rw=on"),
        ]);
    }
    let result = (|| {
        let mut vm = Vm::boot(lab, S, &["drill"], 256, &args)?;
        scenario(&mut vm, report)?;
        vm.finish()
    })();
    fs::remove_dir_all(&dir)?;
    result
}

fn sh_lines(vm: &mut Vm, cmd: &str) -> Result<Vec<String>> {
    Ok(vm.sh_ok(cmd)?.lines().map(str::to_string).collect())
}

/// Runs one drill in the guest; returns its exit status and output.
fn drill(vm: &mut Vm, group: &str, extra: &str) -> Result<(i32, String)> {
    vm.sh(
        &format!("{DRILL} --drill.hold 3s {extra} --yes {group} 2>&1"),
        std::time::Duration::from_secs(180),
    )
}

/// The result line the drill prints: "drill G: passed — failover 0.012 s, failback …".
fn result_line(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("drill ") && l.contains(" — failover "))
        .unwrap_or("(no result line)")
        .to_string()
}

fn measured(out: &str) -> String {
    let l = result_line(out);
    l.split_once(" — ")
        .map(|(_, r)| r.rsplit_once(" — ").map_or(r, |(m, _)| m).to_string())
        .unwrap_or(l)
}

fn scenario(vm: &mut Vm, report: &mut Report) -> Result<()> {
    // NICs by MAC, before bonding rewrites MACs.
    let mut eth = Vec::new();
    for i in 0..4 {
        let n = vm
            .sh_ok(&format!(
                "grep -l 52:54:00:5e:01:0{i} /sys/class/net/*/address | cut -d/ -f5"
            ))?
            .trim()
            .to_string();
        ensure!(
            n.starts_with("eth"),
            "no interface with nic{i}'s MAC: {n:?}"
        );
        eth.push(n);
    }
    vm.sh_ok("echo active-backup >/sys/class/net/bond0/bonding/mode; echo 100 >/sys/class/net/bond0/bonding/miimon")?;
    vm.sh_ok("echo +bond1 >/sys/class/net/bonding_masters; echo balance-rr >/sys/class/net/bond1/bonding/mode; echo 100 >/sys/class/net/bond1/bonding/miimon")?;
    for (bond, slaves) in [("bond0", &eth[0..2]), ("bond1", &eth[2..4])] {
        for e in slaves {
            vm.sh_ok(&format!(
                "ip link set {e} down; echo +{e} >/sys/class/net/{bond}/bonding/slaves"
            ))?;
        }
    }
    vm.sh_ok(&format!(
        "ip link set bond0 up; ip addr add 10.0.2.15/24 dev bond0; ip route add default via {GATEWAY} dev bond0; \
         ip link set bond1 up; ip addr add 10.0.2.16/24 dev bond1"
    ))?;

    // Disks by serial.
    let disks = sh_lines(vm, "for d in /sys/block/vd*; do echo ${d##*/} $(cat $d/serial) $(cat $d/dev) $(cat $d/size); done")?;
    let find = |serial: &str| -> Result<(String, String, String)> {
        disks
            .iter()
            .find_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() == 4 && w[1] == format!("lab-{serial}"))
                    .then(|| (w[0].to_string(), w[2].to_string(), w[3].to_string()))
            })
            .with_context(|| format!("no disk with serial {serial}: {disks:?}"))
    };
    let (_, mpa, size) = find("mpa")?;
    let (_, mpb, _) = find("mpb")?;
    // Two path groups (active/passive), as multipath-tools loads a failover map.
    vm.sh_ok(&format!(
        "dmsetup create mpatha --uuid mpath-drill --table '0 {size} multipath 0 0 2 1 \
         round-robin 0 1 1 {mpa} 1 round-robin 0 1 1 {mpb} 1' && dmsetup mknodes mpatha"
    ))?;
    // RAID1: a plain disk and a dm-linear device (where the bad block goes later).
    let (r1a, _, _) = find("r1a")?;
    let (r1b, _, r1size) = find("r1b")?;
    vm.sh_ok(&format!(
        "dmsetup create halfb --table '0 {r1size} linear /dev/{r1b} 0' && dmsetup mknodes halfb && \
         mdadm --create /dev/md0 --run --quiet --metadata=1.2 --level=1 --raid-devices=2 \
         --assume-clean /dev/{r1a} /dev/mapper/halfb"
    ))?;

    vm.start_agent(&agent_config(""))?;
    for g in ["bond:bond0", "bond:bond1", "mpath:mpatha", "md:md0"] {
        vm.wait_state(g, "redundant", STEP_TIMEOUT_S)?;
    }
    report.step(
        S,
        "bond0 (ab), bond1 (rr), mpatha (2 groups), md0 ready",
        "redundant",
        None,
    );

    // The guardrail on the real kernel: bond1's slave down → bond0's drill is refused.
    vm.sh_ok(&format!("ip link set {} down", eth[3]))?;
    vm.wait_state("bond:bond1", "no_redundancy", STEP_TIMEOUT_S)?;
    let before = vm.sh_ok("cat /sys/class/net/bond0/bonding/active_slave")?;
    let (st, out) = drill(vm, "bond:bond0", "")?;
    ensure!(
        st == 1 && out.contains("bond:bond1 is no_redundancy"),
        "not refused: {st} {out}"
    );
    ensure!(
        vm.sh_ok("cat /sys/class/net/bond0/bonding/active_slave")? == before,
        "the refused drill changed the active slave"
    );
    report.step(
        S,
        "drill bond0 while bond1 no_redundancy: refused",
        "exit 1",
        None,
    );
    vm.sh_ok(&format!("ip link set {} up", eth[3]))?;
    vm.wait_state("bond:bond1", "redundant", STEP_TIMEOUT_S)?;

    // 1. Active-backup bond: failover by active_slave and back, ARP to the gateway.
    let (st, out) = drill(vm, "bond:bond0", "")?;
    ensure!(st == 0, "bond0 drill failed ({st}): {out}");
    ensure!(
        vm.sh_ok("cat /sys/class/net/bond0/bonding/active_slave")? == before,
        "bond0's original active slave is not back"
    );
    report.step(
        S,
        &format!("bond0 active-backup: {}", measured(&out)),
        "passed",
        None,
    );
    println!("lab: drill      {}", result_line(&out));

    // 2. Balance-rr bond: one slave admin-down for the hold time.
    let (st, out) = drill(vm, "bond:bond1", &format!("--drill.probe-target {GATEWAY}"))?;
    ensure!(st == 0, "bond1 drill failed ({st}): {out}");
    report.step(
        S,
        &format!("bond1 balance-rr slave down: {}", measured(&out)),
        "passed",
        None,
    );
    println!("lab: drill      {}", result_line(&out));

    // 3. Multipath: fail the active group's path, reads through the map, reinstate.
    let (st, out) = drill(vm, "mpath:mpatha", "")?;
    ensure!(st == 0, "mpatha drill failed ({st}): {out}");
    let status = vm.sh_ok("dmsetup status mpatha")?;
    ensure!(!status.contains(" F "), "a path is left failed: {status}");
    report.step(
        S,
        &format!("mpatha fail_path group 1: {}", measured(&out)),
        "passed",
        None,
    );
    println!("lab: drill      {}", result_line(&out));

    // 4. SIGKILL mid-way: the next start of the agent rolls the drill back.
    vm.sh_ok(&format!(
        "{DRILL} --drill.hold 120s --yes bond:bond0 >/lab/out/killed.log 2>&1 & echo $! >/tmp/drill.pid"
    ))?;
    let standby = if before.trim() == eth[0] {
        &eth[1]
    } else {
        &eth[0]
    };
    let (st, _) = vm.sh(
        &format!(
            "i=0; until [ \"$(cat /sys/class/net/bond0/bonding/active_slave)\" = {standby} ]; do \
             kill -0 $(cat /tmp/drill.pid) 2>/dev/null || break; \
             i=$((i+1)); [ $i -ge 300 ] && break; sleep 0.1; done; kill -9 $(cat /tmp/drill.pid)"
        ),
        std::time::Duration::from_secs(60),
    )?;
    ensure!(
        st == 0,
        "the drill to kill ended by itself: {}",
        fs::read_to_string(vm.share().join("out/killed.log")).unwrap_or_default()
    );
    ensure!(
        vm.sh_ok("cat /sys/class/net/bond0/bonding/active_slave")?
            .trim()
            == standby,
        "the killed drill had not failed over"
    );
    ensure!(
        vm.sh(
            "test -e /var/lib/sparewatch/drill-journal.json",
            std::time::Duration::from_secs(10)
        )?
        .0 == 0,
        "no journal after the SIGKILL"
    );
    vm.mark()?;
    vm.sh_ok(&format!(
        "kill $(pidof sparewatch); i=0; while timeout 5 wget -q -O /dev/null http://{AGENT_ADDR}/metrics 2>/dev/null; do \
         i=$((i+1)); [ $i -ge 50 ] && break; sleep 0.1; done"
    ))?;
    vm.start_agent(&agent_config(""))?;
    // The newest bond0 drill is the aborted one: its timestamp series appears once the
    // agent rolled it back and recorded it.
    let (st, _) = vm.sh(
        &format!(
            "i=0; until timeout 5 wget -q -O - http://{AGENT_ADDR}/metrics | grep -q 'sparewatch_drill_last_timestamp_seconds{{group=\"bond:bond0\",kind=\"bond\",result=\"aborted\"}}'; do \
             i=$((i+1)); [ $i -ge 600 ] && break; sleep 0.1; done; [ $i -lt 600 ]"
        ),
        std::time::Duration::from_secs(90),
    )?;
    ensure!(
        st == 0,
        "the restarted agent exports no aborted bond0 drill"
    );
    let ms = vm
        .sh_ok("(. /bin/lab-lib.sh; echo $(( $(uptime_ms) - $(cat /tmp/lab-t0) )))")
        .unwrap_or_default();
    ensure!(
        vm.sh_ok("cat /sys/class/net/bond0/bonding/active_slave")? == before,
        "the killed drill was not rolled back at the agent's start"
    );
    ensure!(
        vm.sh(
            "test -e /var/lib/sparewatch/drill-journal.json",
            std::time::Duration::from_secs(10)
        )?
        .0 != 0,
        "the journal is still there after the rollback"
    );
    let m = vm.sh_ok(&format!("timeout 5 wget -q -O - http://{AGENT_ADDR}/metrics | grep '^sparewatch_drill_last_timestamp_seconds'"))?;
    ensure!(
        m.contains("result=\"aborted\""),
        "no aborted drill exported: {m}"
    );
    report.step(
        S,
        &format!("bond0 drill SIGKILLed after failover; agent restarted ({} ms guest clock to rollback + export)", ms.trim()),
        "rolled back",
        None,
    );
    vm.wait_state("bond:bond0", "redundant", STEP_TIMEOUT_S)?;

    // 5. md scrub: clean, then with a bad block under the idle half.
    let (st, out) = drill(vm, "md:md0", "")?;
    ensure!(st == 0, "clean scrub failed ({st}): {out}");
    report.step(
        S,
        &format!("md0 scrub, clean: {}", result_detail(&out)),
        "passed",
        None,
    );
    // 8 sectors in the middle of halfb become an `error` target (a latent bad block).
    let mid = r1size.parse::<u64>().context("r1b size")? / 2;
    let end = r1size.parse::<u64>()? - mid - 8;
    vm.sh_ok(&format!(
        "printf '0 {mid} linear /dev/{r1b} 0\\n{mid} 8 error\\n{} {end} linear /dev/{r1b} {}\\n' >/tmp/halfb.table && \
         dmsetup suspend halfb && dmsetup load halfb /tmp/halfb.table && dmsetup resume halfb",
        mid + 8,
        mid + 8
    ))?;
    vm.mark()?;
    let (st, out) = drill(vm, "md:md0", "")?;
    ensure!(
        st == 2,
        "the scrub did not fail on the bad block ({st}): {out}"
    );
    ensure!(
        out.contains("read errors") || out.contains("faulty") || out.contains("mismatch_cnt"),
        "the scrub's finding names no member: {out}"
    );
    report.step(
        S,
        &format!("md0 scrub, bad block on idle half: {}", result_detail(&out)),
        "failed",
        None,
    );
    // The agent sees what the scrub found: the idle half is at risk, md0 degraded.
    let (ms, _) = vm.wait_state("md:md0", "degraded", STEP_TIMEOUT_S)?;
    report.step(
        S,
        "agent after the failed scrub (ms from the scrub's start)",
        "degraded",
        Some(ms),
    );
    vm.capture(
        "md-after-bad-scrub",
        "cat /proc/mdstat; cat /sys/block/md0/md/mismatch_cnt",
    )?;
    Ok(())
}

fn result_detail(out: &str) -> String {
    result_line(out)
        .rsplit_once(" — ")
        .map(|(_, d)| d.to_string())
        .unwrap_or_default()
}

/// Scenario `selftest`: md0, a RAID1 of two virtio disks with a hot spare on an AHCI disk
/// (QEMU's emulated ATA disk implements SMART and logs self-tests, hw/ide/core.c). The md
/// drill's check never reads the spare; the drill starts `smartctl -t short` on it, and the
/// agent's smart collector, running the real smartctl, reads the result back from the log.
pub fn selftest(lab: &Lab, report: &mut Report) -> Result<()> {
    const T: &str = "selftest";
    let dir = lab.dir.path().join("selftest-disks");
    fs::create_dir_all(&dir)?;
    let mut args = Vec::new();
    for name in ["r1a", "r1b", "spare"] {
        let p = dir.join(format!("{name}.img"));
        fs::File::create(&p)?.set_len(DISK_MIB << 20)?;
        args.extend([
            "-drive".to_string(),
            format!("if=none,id=d-{name},file={},format=raw", p.display()),
        ]);
    }
    args.extend(
        [
            "-device",
            "virtio-blk-pci,drive=d-r1a,serial=lab-r1a",
            "-device",
            "virtio-blk-pci,drive=d-r1b,serial=lab-r1b",
            "-device",
            "ahci,id=ahci",
            "-device",
            "ide-hd,drive=d-spare,bus=ahci.0,serial=LABSPARE0001",
        ]
        .map(String::from),
    );
    let result = (|| {
        let mut vm = Vm::boot(lab, T, &["md", "ahci"], 256, &args)?;
        vm.sh_ok(
            "for i in $(seq 100); do [ -b /dev/sda ] && [ -b /dev/vda ] && [ -b /dev/vdb ] && break; sleep 0.1; done; \
             [ -b /dev/sda ] && [ -b /dev/vda ] && [ -b /dev/vdb ]",
        )
        .context("the disks did not appear")?;
        vm.sh_ok(
            "mdadm --create /dev/md0 --run --quiet --metadata=1.2 --level=1 --raid-devices=2 \
             --assume-clean /dev/vda /dev/vdb --spare-devices=1 /dev/sda",
        )?;
        vm.start_agent(&agent_config("collectors:\n  smart:\n    interval: 2s\n"))?;
        vm.wait_state("md:md0", "redundant", STEP_TIMEOUT_S)?;
        // The fresh disk's log is empty: no self-test result yet.
        let (_, m) = vm
            .wait_metric(
                STEP_TIMEOUT_S,
                "sparewatch_smart_at_risk",
                0.0,
                &[("device", "sda")],
            )
            .context("the smart collector never reported the AHCI disk")?;
        ensure!(
            m.value(
                "sparewatch_smart_selftest_last_result",
                &[("device", "sda"), ("result", "passed")]
            )
            .is_err(),
            "a self-test result before any test ran"
        );
        report.step(
            T,
            "md0 over vda+vdb, spare sda (AHCI), log empty",
            "redundant",
            None,
        );

        vm.mark()?;
        let (st, out) = drill(&mut vm, "md:md0", "")?;
        ensure!(st == 0, "the md drill failed ({st}): {out}");
        ensure!(
            out.contains("SMART short self-test started on sda (sda)"),
            "the drill did not self-test the spare: {out}"
        );
        let (ms, _) = vm.wait_metric(
            STEP_TIMEOUT_S,
            "sparewatch_smart_selftest_last_result",
            1.0,
            &[("device", "sda"), ("result", "passed")],
        )?;
        report.step(
            T,
            "md drill: scrub, then smartctl -t short on spare sda; agent reads the log",
            "passed",
            Some(ms),
        );
        vm.finish()
    })();
    fs::remove_dir_all(&dir)?;
    result
}
