//! The kernel fault lab: the agent inside a real Linux kernel (QEMU, TCG), faults injected
//! from the host (QMP, killed backends, the BMC simulator's console), the group state read
//! from the agent's own /metrics inside the guest after every step.
//!
//! Run: `scripts/test lab`, or after building the agent for musl
//! `cargo test --test lab [-- SCENARIO...]`. See docs/lab.md.

mod host;
mod initramfs;
mod metrics;
mod scenarios;
mod vm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// What every scenario shares: the kernel and one initramfs build.
pub struct Lab {
    pub kernel: PathBuf,
    pub kver: String,
    pub initramfs: initramfs::Initramfs,
    /// Everything the run creates lives below here; removed at the end.
    pub dir: tempfile::TempDir,
}

/// One checked step of a scenario.
pub struct Step {
    pub scenario: &'static str,
    pub step: String,
    pub state: String,
    /// Guest-clock milliseconds from the injection to the agent reporting the new state.
    pub latency_ms: Option<u64>,
}

#[derive(Default)]
pub struct Report {
    pub steps: Vec<Step>,
}

impl Report {
    pub fn step(
        &mut self,
        scenario: &'static str,
        step: &str,
        state: &str,
        latency_ms: Option<u64>,
    ) {
        let lat = latency_ms.map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"));
        println!("lab: {scenario:<10} {step:<58} {state:<14} {lat}");
        self.steps.push(Step {
            scenario,
            step: step.to_string(),
            state: state.to_string(),
            latency_ms,
        });
    }
}

type ScenarioFn = fn(&Lab, &mut Report) -> Result<()>;

/// The scenarios that run, in order.
const SCENARIOS: &[(&str, ScenarioFn)] = &[
    ("bond", scenarios::bond::run),
    ("md", scenarios::md::run),
    ("multipath", scenarios::multipath::run),
    ("ipmi", scenarios::ipmi::run),
    ("smart", scenarios::smart::run),
    ("drill", scenarios::drill::run),
    ("selftest", scenarios::drill::selftest),
];

/// Scenarios whose harness code exists but which are not run yet, and why. Printed in every
/// report so they are never mistaken for passing.
const NOT_RUN: &[(&str, &str)] = &[];

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match run(&filters) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(filters: &[String]) -> Result<bool> {
    metrics::self_check()?;
    let t = Instant::now();
    let (kernel, kver) = kernel()?;
    let agent = agent()?;
    let dir = tempfile::Builder::new()
        .prefix("sparewatch-lab-")
        .tempdir()?;
    let top = dir.path().to_path_buf();
    let initramfs = initramfs::build(dir.path(), &kver, &agent).context("build the initramfs")?;
    let kernel = initramfs::kernel_image(&kernel, dir.path()).context("unpack the kernel")?;
    println!(
        "lab: kernel {kver} ({}), initramfs {:.1} MiB ({} modules) built in {:.1} s",
        kernel.file_name().unwrap_or_default().to_string_lossy(),
        initramfs.bytes as f64 / 1048576.0,
        initramfs.modules,
        t.elapsed().as_secs_f64()
    );
    let lab = Lab {
        kernel,
        kver,
        initramfs,
        dir,
    };

    let mut report = Report::default();
    let mut results = Vec::new();
    for (name, f) in SCENARIOS {
        if !filters.is_empty() && !filters.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        println!("lab: ==== scenario {name}");
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&lab, &mut report)))
            .unwrap_or_else(|_| bail!("panicked"));
        let secs = t.elapsed().as_secs_f64();
        match &r {
            Ok(()) => println!("lab: ==== scenario {name}: ok ({secs:.1} s)"),
            Err(e) => println!("lab: ==== scenario {name}: FAILED ({secs:.1} s): {e:#}"),
        }
        results.push((*name, r.is_ok(), secs));
    }

    drop(lab);
    let mut clean = true;
    if top.exists() {
        println!("lab: FAILED teardown: {} was left behind", top.display());
        clean = false;
    }
    let strays = host::children_of_self();
    if !strays.is_empty() {
        println!("lab: FAILED teardown: processes left running: {strays:?}");
        clean = false;
    }

    println!("\nlab: summary (guest-clock latency from injection to the agent reporting it)");
    for s in &report.steps {
        let lat = s
            .latency_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"));
        println!("  {:<10} {:<58} {:<14} {lat}", s.scenario, s.step, s.state);
    }
    for (name, ok, secs) in &results {
        println!(
            "  scenario {name:<10} {} ({secs:.1} s)",
            if *ok { "ok" } else { "FAILED" }
        );
    }
    for (name, why) in NOT_RUN {
        println!("  scenario {name:<10} NOT RUN: {why}");
    }
    if results.is_empty() {
        println!("lab: no scenario matched {filters:?}");
        return Ok(false);
    }
    println!("lab: total {:.1} s", t.elapsed().as_secs_f64());
    Ok(clean && results.iter().all(|(_, ok, _)| *ok))
}

/// `SPAREWATCH_LAB_KERNEL`, or the newest /boot/vmlinuz-* with its modules installed
/// (Debian's linux-image-amd64).
fn kernel() -> Result<(PathBuf, String)> {
    let path = match std::env::var_os("SPAREWATCH_LAB_KERNEL") {
        Some(p) => PathBuf::from(p),
        None => {
            // Only kernels whose modules are installed (a CI host may keep its own in /boot).
            let mut v: Vec<PathBuf> = std::fs::read_dir("/boot")
                .context("read /boot")?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str()?.strip_prefix("vmlinuz-").map(str::to_string))
                        .is_some_and(|v| Path::new("/lib/modules").join(v).is_dir())
                })
                .collect();
            v.sort();
            v.pop().context(
                "no /boot/vmlinuz-*: install the Debian package linux-image-amd64 \
                 (scripts/deps/apt-lab.txt)",
            )?
        }
    };
    let kver = path
        .file_name()
        .and_then(|n| {
            n.to_string_lossy()
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .context("kernel file name is not vmlinuz-<version>")?;
    if !Path::new("/lib/modules").join(&kver).is_dir() {
        bail!("/lib/modules/{kver} missing: install linux-image-amd64");
    }
    Ok((path, kver))
}

/// `SPAREWATCH_LAB_AGENT`, or the musl release build in this workspace's target dir.
fn agent() -> Result<PathBuf> {
    let p = match std::env::var_os("SPAREWATCH_LAB_AGENT") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("x86_64-unknown-linux-musl/release/sparewatch")
        }
    };
    if !p.is_file() {
        bail!(
            "agent {} not built: run `cargo build --release --target x86_64-unknown-linux-musl` \
             (scripts/test.d/50-lab.sh does)",
            p.display()
        );
    }
    Ok(p)
}

/// Guest-side timeouts are generous: TCG on a loaded 2-core CI machine is slow.
pub const STEP_TIMEOUT_S: u32 = 60;
