//! Alerts pushed to Alertmanager directly (`--alertmanager.url`).

pub mod alertmanager;
