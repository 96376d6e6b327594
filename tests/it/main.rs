//! The integration-test binary: every end-to-end test of sparewatch lives in a module here.

mod cli;
mod golden;
mod hwmon;
mod link_events;
mod storage;
mod smart;
mod support;
