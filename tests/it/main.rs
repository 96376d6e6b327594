//! The integration-test binary: every end-to-end test of sparewatch lives in a module here.

mod alerting;
mod cli;
mod dashboards;
mod docs;
mod domains;
mod drill;
mod e2e;
mod golden;
mod hardening;
mod hostile;
mod hwmon;
mod hwraid;
mod ipmi;
mod lab_findings;
mod link_events;
mod monitoring;
mod net;
mod realworld;
mod redfish;
mod smart;
mod storage;
mod store;
mod support;
mod ups;
mod web;
