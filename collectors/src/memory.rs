//! What a collector remembers across agent restarts, kept in the agent's one store.
//!
//! A collector never touches `--state.dir` itself: at build time the agent hands it a
//! [`CollectorMemory`] holding the collector's section as loaded from the store, and a sink
//! that passes updates to the store's writer thread (latest wins, never blocks on the disk).
//! One-shot runs (`status`, `check`) get the loaded section and no sink: they never write.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

type Sink = Arc<dyn Fn(serde_json::Value) + Send + Sync>;

#[derive(Clone, Default)]
pub struct CollectorMemory {
    loaded: Option<serde_json::Value>,
    sink: Option<Sink>,
}

impl std::fmt::Debug for CollectorMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorMemory")
            .field("loaded", &self.loaded.is_some())
            .field("writable", &self.sink.is_some())
            .finish()
    }
}

impl CollectorMemory {
    /// No state directory: nothing loaded, updates dropped.
    pub fn none() -> Self {
        CollectorMemory::default()
    }

    /// `loaded`: the collector's section in the store; `sink`: where updates go (`None` for
    /// a read-only run).
    pub fn new(
        loaded: Option<serde_json::Value>,
        sink: Option<impl Fn(serde_json::Value) + Send + Sync + 'static>,
    ) -> Self {
        CollectorMemory {
            loaded,
            sink: sink.map(|s| Arc::new(s) as Sink),
        }
    }

    /// The loaded section as `T`; `None` when there is none, or (with a warning) when it does
    /// not parse: the collector starts without memory, never down.
    pub fn load<T: DeserializeOwned>(&self, collector: &str) -> Option<T> {
        let v = self.loaded.clone()?;
        match serde_json::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(collector, error = %e, "corrupt collector memory in the state file ignored");
                None
            }
        }
    }

    /// Hands `value` to the store's writer (dropped in read-only runs).
    pub fn save<T: Serialize>(&self, collector: &str, value: &T) {
        let Some(sink) = &self.sink else { return };
        match serde_json::to_value(value) {
            Ok(v) => sink(v),
            Err(e) => tracing::error!(collector, error = %e, "cannot serialize collector memory"),
        }
    }

    pub fn writable(&self) -> bool {
        self.sink.is_some()
    }
}
