//! sparewatch: the redundancy engine, scheduler and outputs.
//!
//! Data flow: collectors (crate `sparewatch-collectors`) → [`scheduler`] (one thread each,
//! woken by kernel events) → [`engine`] (hysteresis, [`policy`], staleness, persisted
//! since) → [`snapshot`] rendered by [`render`] → served by [`http`], printed by [`status`].

// The layout shows the architecture (docs/architecture.md): cli â agent (scheduler,
// engine) â store; agent â view (snapshot, render) â web (http, web_server) and push.
pub mod agent;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domains;
pub mod drill;
pub mod fixture;
pub mod host;
pub mod page;
pub mod push;
pub mod signals;
pub mod store;
pub mod view;
pub mod web;

// The paths the code and tests have always used (`crate::engine`, `sparewatch::app`, …).
pub use agent::{app, clock, engine, policy, scheduler};
// The commands' own output (`status`, `explain`) lives with the command line.
pub use cli::{explain, status};
pub use demo::hwmon as demo_hwmon;
pub use demo::power as demo_power;
pub use demo::storage as demo_storage;
pub use push::alertmanager;
pub use view::{render, snapshot};
// The old flat paths, kept so `crate::http`, `crate::web_server`, … still name them.
pub use web::{api, config as web_config, http, server as web_server};

use std::time::SystemTime;

/// Runs `sparewatch` with these arguments once (`status`-style collection) and returns the
/// snapshot at `now`: the entry point of the golden-file tests and the benchmarks.
pub fn collect_with_args<I, T>(args: I, now: SystemTime) -> anyhow::Result<snapshot::Snapshot>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let parsed = cli::parse_from(args)?;
    let roots = app::roots(&parsed);
    let setup = app::setup(&parsed, &roots)?;
    Ok(app::collect_once(setup, now, None))
}
