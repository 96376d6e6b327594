//! Where a collector's password comes from (a file or an environment variable, never the
//! command line). Read at every login, so a rotated file is picked up; never logged: `Debug`
//! shows only the source.

use std::path::PathBuf;

#[derive(Clone)]
pub enum Password {
    None,
    File(PathBuf),
    Env(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::None => f.write_str("no password"),
            Password::File(p) => write!(f, "password from file {}", p.display()),
            Password::Env(v) => write!(f, "password from ${v}"),
        }
    }
}

impl Password {
    /// The password without its trailing line break; `None` when none is configured. A
    /// password holding a line break is refused (it would break a line protocol).
    pub fn read(&self) -> Result<Option<String>, String> {
        let raw = match self {
            Password::None => return Ok(None),
            Password::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("reading password file {}: {e}", p.display()))?,
            Password::Env(v) => std::env::var(v)
                .map_err(|_| format!("environment variable {v} is not set or not UTF-8"))?,
        };
        let p = raw.trim_end_matches(['\r', '\n']);
        if p.contains(['\n', '\r']) {
            return Err("the password holds a line break".into());
        }
        Ok(Some(p.to_string()))
    }
}
