//! What the outputs read: the typed [`snapshot`] of one evaluation and its Prometheus
//! text ([`render`]). (`status.rs`, the table and `check`, stays at the top for now.)

pub mod render;
pub mod snapshot;
