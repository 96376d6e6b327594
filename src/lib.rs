//! sparewatch: the redundancy engine, scheduler and outputs.
//!
//! Data flow: collectors (crate `sparewatch-collectors`) → [`scheduler`] (one thread each,
//! woken by kernel events) → [`engine`] (hysteresis, [`policy`], staleness, persisted
//! since) → [`snapshot`] rendered by [`render`] → served by [`http`], printed by [`status`].

pub mod alertmanager;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod demo_hwmon;
pub mod demo_storage;
pub mod engine;
pub mod explain;
pub mod fixture;
pub mod host;
pub mod http;
pub mod page;
pub mod policy;
pub mod render;
pub mod scheduler;
pub mod snapshot;
pub mod state_file;
pub mod status;
pub mod web_config;
pub mod web_server;

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
