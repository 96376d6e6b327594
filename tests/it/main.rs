//! The integration-test binary: every end-to-end test of sparewatch lives in a module here.

mod alerting;
mod api;
mod cli;
mod dashboards;
mod docs;
mod e2e;
mod golden;
mod hostile;
mod hwmon;
mod hwraid;
mod ipmi;
mod lab_findings;
mod link_events;
mod man;
mod monitoring;
mod net;
mod page;
mod runbooks;
mod smart;
mod storage;
mod support;
mod terminal;
mod web;
