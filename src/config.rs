//! The optional config file (`--config.file`, YAML). Everything has a default: the agent
//! runs with no config at all (auto-discovery).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sparewatch_collectors::parse_duration;

use crate::engine::GroupOverride;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    hold_down: Option<String>,
    #[serde(default)]
    collectors: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    groups: BTreeMap<String, GroupOverride>,
}

/// Scheduler settings of one collector, taken out of its section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default)]
pub struct Config {
    pub hold_down: Option<Duration>,
    /// `collectors.<name>` without the scheduler keys: handed to the collector's `build`.
    pub collectors: BTreeMap<String, serde_yaml::Value>,
    pub schedules: BTreeMap<String, Schedule>,
    pub groups: BTreeMap<String, GroupOverride>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        parse(&text, collector_names()).map_err(|detail| ConfigError::Invalid {
            path: path.display().to_string(),
            detail,
        })
    }
}

fn collector_names() -> Vec<&'static str> {
    sparewatch_collectors::COLLECTORS
        .iter()
        .map(|c| c.name)
        .collect()
}

fn duration_key(
    map: &mut serde_yaml::Mapping,
    key: &str,
    section: &str,
) -> Result<Option<Duration>, String> {
    match map.remove(key) {
        None => Ok(None),
        Some(serde_yaml::Value::String(s)) => parse_duration(&s)
            .map(Some)
            .map_err(|e| format!("collectors.{section}.{key}: {e}")),
        Some(other) => Err(format!(
            "collectors.{section}.{key}: expected a duration like \"30s\", got {other:?}"
        )),
    }
}

/// Parses the config text; `known` are the collector names that may have a section.
pub fn parse(text: &str, known: Vec<&'static str>) -> Result<Config, String> {
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| e.to_string())?
    };
    let mut cfg = Config {
        hold_down: raw.hold_down.as_deref().map(parse_duration).transpose()?,
        groups: raw.groups,
        ..Config::default()
    };
    for (name, value) in raw.collectors {
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "collectors.{name}: no such collector (known: {})",
                known.join(", ")
            ));
        }
        let mut map = match value {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => serde_yaml::Mapping::new(),
            other => {
                return Err(format!(
                    "collectors.{name}: expected a mapping, got {other:?}"
                ))
            }
        };
        let schedule = Schedule {
            interval: duration_key(&mut map, "interval", &name)?,
            timeout: duration_key(&mut map, "timeout", &name)?,
        };
        if schedule.interval == Some(Duration::ZERO) {
            return Err(format!("collectors.{name}.interval: must be above zero"));
        }
        cfg.schedules.insert(name.clone(), schedule);
        cfg.collectors.insert(name, serde_yaml::Value::Mapping(map));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        let c = parse("", vec!["net"]).expect("parses");
        assert!(c.collectors.is_empty() && c.hold_down.is_none());
    }

    #[test]
    fn full_config() {
        let text = r#"
hold_down: 10s
collectors:
  net:
    interval: 1h
    timeout: 2s
    groups:
      - name: uplinks
        members: [eth0, eth1]
groups:
  "psu:chassis": { required: 2 }
"#;
        let c = parse(text, vec!["net"]).expect("parses");
        assert_eq!(c.hold_down, Some(Duration::from_secs(10)));
        assert_eq!(c.schedules["net"].interval, Some(Duration::from_secs(3600)));
        assert_eq!(c.groups["psu:chassis"].required, Some(2));
        assert!(c.collectors["net"].get("interval").is_none());
        assert!(c.collectors["net"].get("groups").is_some());
    }

    #[test]
    fn errors_are_clear() {
        let e = parse("collectors: {nope: {}}", vec!["net"]).unwrap_err();
        assert!(e.contains("no such collector"), "{e}");
        let e = parse("collectors: {net: {interval: 5}}", vec!["net"]).unwrap_err();
        assert!(e.contains("collectors.net.interval"), "{e}");
        let e = parse("hold_down: soon", vec!["net"]).unwrap_err();
        assert!(e.contains("soon"), "{e}");
        assert!(parse("bogus: 1", vec!["net"]).is_err());
        assert!(parse("[", vec!["net"]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s, vec!["net"]);
        }
    }
}
