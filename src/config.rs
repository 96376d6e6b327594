//! The optional config file (`--config.file`, YAML). Everything has a default: the agent
//! runs with no config at all (auto-discovery).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
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
    collectors: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    groups: BTreeMap<String, GroupOverride>,
    #[serde(default)]
    drills: crate::drill::schedule::RawDrills,
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
    pub collectors: BTreeMap<String, serde_norway::Value>,
    pub schedules: BTreeMap<String, Schedule>,
    pub groups: BTreeMap<String, GroupOverride>,
    /// `drills`: scheduled drills (empty: off).
    pub drills: crate::drill::schedule::Drills,
}

/// Largest config file read (the packaged one is about 4 KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Most nodes a YAML document may have once its aliases are expanded.
pub const MAX_YAML_NODES: usize = 100_000;
/// Deepest nesting of flow collections (`[`/`{`) and of block prefixes (indentation plus
/// `- `/`? ` markers on one line) accepted before the YAML parser sees the text.
pub const MAX_YAML_DEPTH: usize = 64;
pub const MAX_YAML_LINE_PREFIX: usize = 256;

/// Reads a file that must be a regular file of at most `max` bytes. A FIFO, a device or a
/// directory is refused without opening it for a blocking read (a FIFO would hang until a
/// writer comes), and a file that grows past `max` while being read is refused too.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        )
    };
    let kind = |m: &std::fs::Metadata| {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a file"
        }
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(kind(&meta)));
    }
    // O_NONBLOCK: if the path was swapped for a FIFO after the check, open does not wait
    // for a writer; the check on the opened file below refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(kind(&meta)));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes, more than the limit of {max}", meta.len()),
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("grew past the limit of {max} bytes while being read"),
        ));
    }
    Ok(buf)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        )
    })
}

/// Checks the nesting of a YAML text without parsing it: flow collections deeper than
/// [`MAX_YAML_DEPTH`] or a line whose block prefix (indentation and `- `/`? ` markers) is
/// longer than [`MAX_YAML_LINE_PREFIX`] are refused. The YAML parser takes time quadratic in
/// such nesting; this scan is linear. Quoted scalars and comments are skipped.
pub fn check_yaml_nesting(text: &str) -> Result<(), String> {
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        // Block prefix: indentation and sequence/complex-key markers.
        while i < bytes.len() {
            match bytes[i] {
                b' ' | b'\t' => i += 1,
                b'-' | b'?' if bytes.get(i + 1).is_none_or(|b| *b == b' ' || *b == b'\t') => i += 1,
                _ => break,
            }
            if i > MAX_YAML_LINE_PREFIX {
                return Err(format!(
                    "line {}: nested deeper than {MAX_YAML_LINE_PREFIX} levels of indentation \
                     and `-` markers",
                    n + 1
                ));
            }
        }
        let mut quote: Option<u8> = None;
        let mut prev = b' ';
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(b'"') if b == b'\\' => i += 1,
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'"' | b'\'' if matches!(prev, b' ' | b'\t' | b'[' | b'{' | b',' | b':') => {
                        quote = Some(b)
                    }
                    b'#' if prev == b' ' || prev == b'\t' || i == 0 => break,
                    b'[' | b'{' => {
                        flow += 1;
                        if flow > MAX_YAML_DEPTH {
                            return Err(format!(
                                "line {}: flow collections nested deeper than {MAX_YAML_DEPTH}",
                                n + 1
                            ));
                        }
                    }
                    b']' | b'}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = b;
            i += 1;
        }
    }
    Ok(())
}

/// Counts the nodes of a YAML document as the deserializer sees them (aliases expanded) and
/// stops at `left`: an alias bomb is refused after [`MAX_YAML_NODES`] nodes instead of
/// being built in memory.
struct NodeBudget<'a>(&'a Cell<usize>);

impl NodeBudget<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(n) => {
                self.0.set(n);
                Ok(())
            }
            None => Err(E::custom(format!(
                "more than {MAX_YAML_NODES} nodes once aliases are expanded (an alias bomb?)"
            ))),
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for NodeBudget<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! budget_scalar {
    ($($f:ident: $t:ty),*) => {$(
        fn $f<E: serde::de::Error>(self, _: $t) -> Result<(), E> { self.take() }
    )*};
}

impl<'de> serde::de::Visitor<'de> for NodeBudget<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    budget_scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
        visit_u128: u128, visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.take()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.take()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        self.take()?;
        while a.next_element_seed(NodeBudget(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        self.take()?;
        while a.next_key_seed(NodeBudget(self.0))?.is_some() {
            a.next_value_seed(NodeBudget(self.0))?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, a: A) -> Result<(), A::Error> {
        use serde::de::VariantAccess;
        self.take()?;
        let ((), v) = a.variant_seed(NodeBudget(self.0))?;
        v.newtype_variant_seed(NodeBudget(self.0))
    }
}

/// Parses YAML text into `T` behind the limits above: nesting is checked first (linear),
/// then the nodes are counted with aliases expanded (stops at [`MAX_YAML_NODES`]), and
/// only then is `T` built.
pub fn from_yaml_limited<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    check_yaml_nesting(text)?;
    let left = Cell::new(MAX_YAML_NODES);
    for doc in serde_norway::Deserializer::from_str(text) {
        serde::de::DeserializeSeed::deserialize(NodeBudget(&left), doc)
            .map_err(|e| e.to_string())?;
    }
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            read_bounded_text(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
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
    map: &mut serde_norway::Mapping,
    key: &str,
    section: &str,
) -> Result<Option<Duration>, String> {
    match map.remove(key) {
        None => Ok(None),
        Some(serde_norway::Value::String(s)) => parse_duration(&s)
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
        from_yaml_limited(text)?
    };
    for (name, g) in &raw.groups {
        if g.required == Some(0) {
            return Err(format!(
                "groups.{name}.required: must be at least 1 (0 would call a group with no \
                 healthy member redundant)"
            ));
        }
    }
    let mut cfg = Config {
        hold_down: raw.hold_down.as_deref().map(parse_duration).transpose()?,
        groups: raw.groups,
        drills: crate::drill::schedule::parse(raw.drills)?,
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
            serde_norway::Value::Mapping(m) => m,
            serde_norway::Value::Null => serde_norway::Mapping::new(),
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
        if schedule.timeout == Some(Duration::ZERO) {
            return Err(format!("collectors.{name}.timeout: must be above zero"));
        }
        unique_group_names(&map, &name)?;
        cfg.schedules.insert(name.clone(), schedule);
        cfg.collectors
            .insert(name, serde_norway::Value::Mapping(map));
    }
    Ok(cfg)
}

/// `collectors.<name>.groups` lists groups by `name`; two with one name would export the
/// same series twice.
fn unique_group_names(section: &serde_norway::Mapping, collector: &str) -> Result<(), String> {
    let Some(serde_norway::Value::Sequence(groups)) = section.get("groups") else {
        return Ok(());
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        if let Some(serde_norway::Value::String(n)) = g.get("name") {
            if let Some(first) = seen.insert(n.as_str(), i) {
                return Err(format!(
                    "collectors.{collector}.groups[{i}].name: duplicate group name {n:?} \
                     (also groups[{first}])"
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn validation_names_the_key() {
        let cases = [
            (
                "groups: {\"bond:bond0\": {required: 0}}",
                "groups.bond:bond0.required",
            ),
            ("collectors: {net: {timeout: 0s}}", "collectors.net.timeout"),
            (
                "collectors: {net: {groups: [{name: a, members: [x]}, {name: a, members: [y]}]}}",
                "collectors.net.groups[1].name: duplicate group name \"a\"",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, vec!["net"]).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn alias_bomb_and_deep_nesting_are_refused() {
        let mut text = String::from("groups:\n  x:\n    a0: &a0 [x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 8].join(", ");
            text.push_str(&format!("    a{i}: &a{i} [{refs}]\n"));
        }
        let e = parse(&text, vec!["net"]).expect_err("bomb");
        assert!(
            e.contains("nodes once aliases are expanded") || e.contains("repetition limit"),
            "{e}"
        );
        let deep = format!("hold_down: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse(&deep, vec!["net"]).expect_err("deep");
        assert!(e.contains("nested deeper"), "{e}");
        let deep = format!("hold_down:\n{}x\n", "- ".repeat(10_000));
        let e = parse(&deep, vec!["net"]).expect_err("deep block");
        assert!(e.contains("nested deeper"), "{e}");
        // Quotes and comments do not count.
        let ok = format!(
            "hold_down: 1s # {}\ngroups: {{\"a[[[\": {{required: 1}}}}\n",
            "[".repeat(100)
        );
        parse(&ok, vec!["net"]).expect("brackets in quotes and comments are text");
    }

    #[test]
    fn fifo_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.yml");
        std::fs::write(&big, vec![b'#'; 2048]).expect("write");
        let e = read_bounded(&big, 1024).expect_err("too big");
        assert!(e.to_string().contains("limit"), "{e}");
        assert!(read_bounded(dir.path(), 1024)
            .expect_err("dir")
            .to_string()
            .contains("a directory"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s, vec!["net"]);
        }
    }
}
