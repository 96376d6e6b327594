//! What the agent serves over HTTP: the router and its endpoints ([`http`]), the hardened
//! server around it ([`server`]: TLS, basic auth, connection limits), the web config file
//! ([`config`]) and the JSON API ([`api`]). The status page is in [`crate::page`].

pub mod api;
pub mod config;
pub mod http;
pub mod server;
