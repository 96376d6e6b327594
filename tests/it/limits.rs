//! The built agent under a tight open-files limit, as a large storage host under the
//! packaged unit's `LimitNOFILE=4096` is (issue 14): the md collector once kept one
//! descriptor per watched attribute (about 8 an array) and ran the process out of
//! descriptors near 500 arrays; then most arrays went `unknown` and the web server could not
//! accept. Here 600 arrays need ~4,800 watched attributes under a limit of 256. The same
//! run proves md's stretched safety net on the built agent: quiet interval passes read only
//! `/proc/mdstat`, and a failure that changes it is read by the next one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sparewatch::fixture::SysTree;

use crate::support::{metric_value, RunningAgent};

const ARRAYS: usize = 600;
const NOFILE: u32 = 256;

/// Every array healthy but `failed` (its second member faulty).
fn arrays(root: &Path, failed: usize) {
    SysTree::new(root)
        .and_then(|t| t.md_raid1_arrays(ARRAYS, |a| a == failed))
        .expect("md tree");
}

fn state_is(text: &str, group: &str, state: &str) -> bool {
    metric_value(
        text,
        &format!(
            "sparewatch_group_state{{group=\"{group}\",kind=\"md\",state=\"{state}\",by_design=\"false\"}}"
        ),
    ) == Some(1.0)
}

#[test]
fn md_with_more_attributes_than_open_files_reports_every_array() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    arrays(root, usize::MAX);
    std::fs::write(
        root.join("config.yml"),
        "collectors:\n  md:\n    interval: 1s\n",
    )
    .expect("config");
    let state = root.join("state");
    let args: Vec<String> = vec![
        "run".into(),
        "--collector.disable-defaults".into(),
        "--collector.md".into(),
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--config.file={}", root.join("config.yml").display()),
        format!("--state.dir={}", state.display()),
    ];
    // The shell sets the limit and execs the agent: the child's pid is the agent's.
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        &format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""),
        &crate::support::agent_bin().display().to_string(),
    ]);
    let agent = RunningAgent::start_via(sh, &args, root, "md599");
    let last = format!("md{}", ARRAYS - 1);
    let m = agent.wait_for_within("every array reported", Duration::from_secs(60), |m| {
        state_is(m, &format!("md:{last}"), "redundant")
    });
    // Read once the agent answers: before, the pid may still be the shell's.
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", agent.child.id())).expect("limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&format!(" {NOFILE} "))),
        "the agent does not run under the limit:\n{limits}"
    );
    assert_eq!(
        metric_value(&m, "sparewatch_collector_up{collector=\"md\"}"),
        Some(1.0)
    );
    let redundant = (0..ARRAYS)
        .filter(|a| state_is(&m, &format!("md:md{a}"), "redundant"))
        .count();
    assert_eq!(redundant, ARRAYS, "every array redundant, none unknown");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.child.id()))
        .expect("fds")
        .count();
    assert!(fds < NOFILE as usize, "{fds} descriptors open");

    // The stretched safety net on the built agent: with nothing changing, 1 s interval
    // passes over 600 arrays (a full pass takes tens of milliseconds, so its period is
    // seconds) read only /proc/mdstat.
    let full = "sparewatch_md_full_passes_total";
    let quiet = agent.wait_for_within("an interval pass skipped", Duration::from_secs(30), |m| {
        metric_value(m, "sparewatch_md_full_passes_skipped_total").is_some_and(|n| n >= 1.0)
    });
    let full_before = metric_value(&quiet, full).expect("full passes");

    // A member fails: mdstat changes, so the next interval pass reads every array and sees
    // it, with the descriptors still within the limit.
    arrays(root, 7);
    let m = agent.wait_for_within("md7 on its last member", Duration::from_secs(30), |m| {
        state_is(m, "md:md7", "no_redundancy")
    });
    assert!(
        metric_value(&m, full).is_some_and(|n| n > full_before),
        "seen without a full pass"
    );
    // And the web server still accepts while the collector runs.
    assert!(agent.scrape().contains("sparewatch_group_state"));
    let log = agent.log_text();
    assert!(
        !log.contains("Too many open files") && !log.contains("os error 24"),
        "{log}"
    );
    agent.stop();
}
