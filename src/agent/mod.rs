//! The agent: wiring ([`app`]), one thread per collector ([`scheduler`]), the engine
//! ([`engine`], with the state table in [`policy`]) and its two clocks ([`clock`]).

pub mod app;
pub mod clock;
pub mod engine;
pub mod policy;
pub mod scheduler;
