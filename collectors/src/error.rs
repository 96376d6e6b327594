//! Typed errors of the collectors. A collector error marks only that collector down.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("running {command}: {detail}")]
    Command { command: String, detail: String },
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CollectError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        CollectError::Parse {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Errors while building a collector from flags and config: fatal at start-up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("collector {collector}: invalid configuration: {detail}")]
    Config {
        collector: &'static str,
        detail: String,
    },
}
