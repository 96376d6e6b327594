//! One module a scenario. Each boots its own VM, starts the agent inside, injects faults
//! and checks the state the agent reports after every step.

pub mod bond;

/// The agent's config in every scenario: a short hold-down so recovery is quick to see.
pub const HOLD_DOWN_MS: u64 = 3000;

pub fn agent_config(extra: &str) -> String {
    format!("hold_down: {}s\n{extra}", HOLD_DOWN_MS / 1000)
}
