//! One module a scenario. Each boots its own VM, starts the agent inside, injects faults
//! and checks the state the agent reports after every step.

pub mod bond;
pub mod drill;
pub mod ipmi;
pub mod md;
pub mod multipath;
pub mod smart;

/// The agent's config in every scenario: a short hold-down so recovery is quick to see.
pub const HOLD_DOWN_MS: u64 = 3000;

pub fn agent_config(extra: &str) -> String {
    format!("hold_down: {}s\n{extra}", HOLD_DOWN_MS / 1000)
}

/// A recovery must not be reported before the hold-down has passed.
pub fn check_hold_down(ms: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        ms >= HOLD_DOWN_MS,
        "recovery reported after {ms} ms, before the {HOLD_DOWN_MS} ms hold-down"
    );
    Ok(())
}
