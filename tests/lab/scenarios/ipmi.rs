//! Scenario 4: in-band IPMI. The guest's KCS interface (`isa-ipmi-kcs`) talks through
//! QEMU's `ipmi-bmc-extern` to an OpenIPMI `ipmi_sim` on the host (the BMC of
//! tests/lab/ipmi_sim: two PSUs, a PS redundancy sensor, three fans); the agent reads
//! `/dev/ipmi0`. PSU2's failure bit is set and cleared on the simulator's console: first
//! with the SEL follower (1 s) and the event listener both running, then (the agent
//! restarted with the SEL poll at an hour too) through the BMC's event messages alone.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{agent_config, check_hold_down};
use crate::host::{free_port, guarded, tool, Proc};
use crate::vm::Vm;
use crate::{Lab, Report, STEP_TIMEOUT_S};

const S: &str = "ipmi";
const GROUP: &str = "psu:chassis";
/// PSU2's status sensor (type 0x08, sensor-specific; offset 1 = failure detected).
const PSU2_FAILED: &str = "sensor_set_bit 0x20 0 0x12 1 1 1";
const PSU2_OK: &str = "sensor_set_bit 0x20 0 0x12 1 0 1";

fn sim_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/ipmi_sim")
}

/// bmc.emu with the SDRs of bmc.sdrs (compiled by sdrcomp) spliced in as main_sdr_add.
fn emulator_commands(out: &Path) -> Result<String> {
    let raw_path = out.join("bmc.raw");
    let st = Command::new(tool("sdrcomp", "openipmi")?)
        .current_dir(sim_dir())
        .args(["-8", "-r", "-o"])
        .arg(&raw_path)
        .arg("bmc.sdrs")
        .status()
        .context("run sdrcomp")?;
    ensure!(st.success(), "sdrcomp failed: {st}");
    let raw = fs::read(&raw_path)?;
    let mut lines = Vec::new();
    let mut i = 0;
    while i + 5 <= raw.len() {
        let n = 5 + raw[i + 4] as usize;
        let Some(rec) = raw.get(i..i + n) else {
            bail!("compiled SDRs end inside a record");
        };
        let bytes: Vec<String> = rec.iter().map(|b| format!("{b:#04x}")).collect();
        lines.push(format!("main_sdr_add 0x20 {}", bytes.join(" ")));
        i += n;
    }
    let emu = fs::read_to_string(sim_dir().join("bmc.emu"))?;
    ensure!(emu.contains("# @SDRS@"), "bmc.emu has no @SDRS@ line");
    Ok(emu.replace("# @SDRS@", &lines.join("\n")))
}

/// ipmi_sim with its system interface on a TCP port (QEMU's "VM" codec) and its console.
struct Sim {
    proc: Proc,
    console: TcpStream,
    seen: Vec<u8>,
    serial_port: u16,
}

impl Sim {
    fn start(dir: &Path) -> Result<Sim> {
        let serial_port = free_port()?;
        let console_port = free_port()?;
        fs::write(dir.join("bmc.emu"), emulator_commands(dir)?)?;
        fs::write(
            dir.join("lan.conf"),
            format!(
                "name \"labbmc\"\nset_working_mc 0x20\n  \
                 serial 15 127.0.0.1 {serial_port} codec VM\n  \
                 console 127.0.0.1 {console_port}\n  \
                 user 2 true \"admin\" \"unused\" admin 10 none md2 md5 straight\n"
            ),
        )?;
        let state = dir.join("state");
        fs::create_dir_all(&state)?;
        let mut cmd = guarded(&tool("ipmi_sim", "openipmi")?)?;
        cmd.arg("-c")
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("bmc.emu"))
            .arg("-s")
            .arg(&state)
            .args(["-n", "-p"]);
        let mut proc = Proc::spawn("ipmi_sim", cmd, &dir.join("sim.log"))?;
        let end = Instant::now() + Duration::from_secs(10);
        // The console connection stays open for the simulator's life: ipmi_sim dies of
        // SIGPIPE when it writes to a console a client has closed.
        let console = loop {
            if let Ok(c) = TcpStream::connect(("127.0.0.1", console_port)) {
                break c;
            }
            proc.check_running()?;
            if Instant::now() > end {
                bail!("ipmi_sim's console never answered");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        console.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut sim = Sim {
            proc,
            console,
            seen: Vec::new(),
            serial_port,
        };
        sim.wait_prompts(1)?;
        Ok(sim)
    }

    fn prompts(&self) -> usize {
        self.seen.windows(2).filter(|w| w == b"> ").count()
    }

    fn wait_prompts(&mut self, n: usize) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 1024];
        while self.prompts() < n {
            if Instant::now() > end {
                bail!(
                    "ipmi_sim console: no prompt; it said {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            match self.console.read(&mut buf) {
                Ok(0) => bail!("ipmi_sim closed its console"),
                Ok(k) => self.seen.extend_from_slice(&buf[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs one emulator command and waits for the next prompt; fails on "**" errors.
    fn cmd(&mut self, c: &str) -> Result<()> {
        let before = self.seen.len();
        let n = self.prompts();
        self.console.write_all(format!("{c}\n").as_bytes())?;
        self.wait_prompts(n + 1)?;
        let answer = String::from_utf8_lossy(&self.seen[before..]).into_owned();
        ensure!(!answer.contains("**"), "ipmi_sim: {c:?} failed: {answer}");
        Ok(())
    }
}

pub fn run(lab: &Lab, report: &mut Report) -> Result<()> {
    let dir = lab.dir.path().join("ipmi");
    fs::create_dir_all(&dir)?;
    let result = (|| {
        let mut sim = Sim::start(&dir)?;
        let args: Vec<String> = vec![
            "-chardev".into(),
            format!(
                "socket,id=ipmi0,host=127.0.0.1,port={},reconnect=10",
                sim.serial_port
            ),
            "-device".into(),
            "ipmi-bmc-extern,id=bmc0,chardev=ipmi0".into(),
            "-device".into(),
            "isa-ipmi-kcs,bmc=bmc0".into(),
        ];
        // Booted without the IPMI modules: the scenario loads them after the agent started.
        let mut vm = Vm::boot(lab, S, &[], 256, &args)?;
        scenario(&mut vm, &mut sim, report)?;
        vm.finish()?;
        sim.proc.kill()
    })();
    fs::remove_dir_all(&dir)?;
    result
}

fn scenario(vm: &mut Vm, sim: &mut Sim, report: &mut Report) -> Result<()> {
    vm.sh_ok("test ! -e /dev/ipmi0")
        .context("/dev/ipmi0 exists before the IPMI modules were loaded")?;
    // The full-pass interval set to an hour: whatever reaches the metric within the
    // scenario came through the device watcher (late module load), the SEL follower (1 s
    // Get SEL Info) or an event message, never through the poll.
    vm.start_agent(&agent_config("collectors:\n  ipmi:\n    interval: 1h\n"))?;
    vm.wait_metric(
        STEP_TIMEOUT_S,
        "sparewatch_collector_present",
        0.0,
        &[("collector", "ipmi")],
    )
    .context("without /dev/ipmi0 the ipmi collector must be not present")?;

    // ipmi_si + ipmi_devintf load after the agent started (a late module load, a BMC that
    // came up slowly): the agent must pick /dev/ipmi0 up without a restart.
    vm.mark()?;
    vm.sh_ok(
        "while read -r ko; do grep -qx \"$ko\" /tmp/loaded || insmod \"$ko\"; done \
         </etc/lab/modules.ipmi; test -c /dev/ipmi0",
    )
    .context("no /dev/ipmi0 in the guest (ipmi_si did not find the KCS interface)")?;
    let (ms, m) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    let members = m
        .find("sparewatch_member_healthy", &[("group", GROUP)])
        .count();
    ensure!(members == 2, "the agent sees {members} PSUs, expected 2");
    report.step(
        S,
        "ipmi_si + ipmi_devintf loaded after the agent started (device watcher, interval 1 h)",
        "redundant",
        Some(ms),
    );

    vm.mark()?;
    sim.cmd(PSU2_FAILED)?;
    let (ms, _) = vm.wait_state(GROUP, "no_redundancy", STEP_TIMEOUT_S)?;
    report.step(
        S,
        "PSU2 failure asserted on the BMC (SEL follower + event messages, interval 1 h)",
        "no_redundancy",
        Some(ms),
    );

    vm.mark()?;
    sim.cmd(PSU2_OK)?;
    let (ms, _) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    check_hold_down(ms)?;
    report.step(
        S,
        "PSU2 failure cleared (SEL follower + event messages, after hold-down)",
        "redundant",
        Some(ms),
    );
    events(vm, sim, report)
}

/// The BMC's event messages alone: the agent restarted with the full-pass interval AND the
/// SEL follower's poll at an hour, so neither can explain a detection within the scenario.
/// ipmi_sim puts each event into its event message buffer (its global enables' bit 2, set
/// by ipmi_si at start-up) and raises the KCS attention; the guest kernel reads the buffer
/// and hands the event to the agent's gets-events descriptor.
fn events(vm: &mut Vm, sim: &mut Sim, report: &mut Report) -> Result<()> {
    // Whether the first agent found the event message buffer on (ipmi_sim starts with it
    // off; ipmi_si turns it on when it loads) or had to enable it.
    vm.capture(
        "enables",
        "grep -i -e 'global enables' -e 'event message' /lab/out/agent.log || true",
    )?;
    vm.sh_ok(
        "kill $(pidof sparewatch); (i=0; while pidof sparewatch >/dev/null; do \
         i=$((i+1)); [ $i -ge 100 ] && exit 1; sleep 0.1; done)",
    )
    .context("the agent did not stop on SIGTERM")?;
    vm.start_agent(&agent_config(
        "collectors:\n  ipmi:\n    interval: 1h\n    sel_poll_interval: 1h\n",
    ))?;
    vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    let local = [("bmc", "local")];
    vm.wait_metric(STEP_TIMEOUT_S, "sparewatch_ipmi_events_up", 1.0, &local)
        .context("the event listener never had /dev/ipmi0 open in gets-events mode")?;

    vm.mark()?;
    sim.cmd(PSU2_FAILED)?;
    let (ms, m) = vm.wait_state(GROUP, "no_redundancy", STEP_TIMEOUT_S)?;
    let received = m.value("sparewatch_ipmi_events_received_total", &local)?;
    let rereads = m.value("sparewatch_ipmi_event_sensor_rereads_total", &local)?;
    let full = m.value("sparewatch_ipmi_full_passes_total", &local)?;
    let polls = m.value("sparewatch_ipmi_sel_polls_total", &local)?;
    ensure!(
        received >= 1.0 && rereads >= 1.0,
        "no_redundancy without an event message: {received} received, {rereads} sensors re-read"
    );
    ensure!(
        full == 1.0 && polls == 0.0,
        "the detection is not the event's: {full} full passes (1 expected: the start), \
         {polls} SEL polls (0 expected)"
    );
    ensure!(
        m.value("sparewatch_ipmi_event_buffer_enabled", &local)? == 1.0,
        "the BMC's event message buffer is reported off"
    );
    report.step(
        S,
        "PSU2 failure asserted on the BMC (event message; interval and SEL poll 1 h)",
        "no_redundancy",
        Some(ms),
    );

    vm.mark()?;
    sim.cmd(PSU2_OK)?;
    let (ms, m) = vm.wait_state(GROUP, "redundant", STEP_TIMEOUT_S)?;
    check_hold_down(ms)?;
    ensure!(
        m.value("sparewatch_ipmi_events_received_total", &local)? >= 2.0
            && m.value("sparewatch_ipmi_full_passes_total", &local)? == 1.0,
        "the deassertion did not come as an event message"
    );
    report.step(
        S,
        "PSU2 failure cleared (event message, after hold-down)",
        "redundant",
        Some(ms),
    );
    // The events as the agent decoded them, and whether it had to enable the buffer itself.
    vm.capture(
        "events",
        "grep -i -e 'event message' -e 'global enables' /lab/out/agent.log || true",
    )
}
