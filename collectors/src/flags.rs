//! Command-line flags of the collectors, without a command-line parser.
//!
//! A collector declares its flags as data ([`FlagSpec`]); the agent's `src/cli` turns them
//! into arguments of its parser, parses the command line once, and hands each collector the
//! values as [`Flags`]. So this crate does not depend on clap, and a collector is built and
//! tested from plain values. Asking for a flag that was never declared (a flag renamed on
//! one side only) is an error that marks the collector down at start-up, never a silent
//! default.

use std::collections::BTreeMap;

use crate::BuildError;

/// What kind of value a flag takes. The agent's parser checks the value against it, so a
/// collector receives only well-formed values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `--name VALUE`, any text.
    Text,
    /// `--name VALUE`, repeatable: every value, in order.
    Repeated,
    /// `--name`, no value.
    Switch,
    /// `--name N`, an unsigned integer of at most this many bits (8, 16 or 32).
    Unsigned(u8),
}

/// One flag a collector declares (`--ipmi.host`, `--collector.net.device-include`).
#[derive(Clone, Copy, Debug)]
pub struct FlagSpec {
    /// The long name without dashes; also the key it is looked up by.
    pub name: &'static str,
    /// Shown in `--help` for the value (`HOST`, `REGEX`); unused by a switch.
    pub value_name: &'static str,
    pub help: &'static str,
    pub kind: FlagKind,
}

impl FlagSpec {
    pub const fn text(name: &'static str, value_name: &'static str, help: &'static str) -> Self {
        FlagSpec {
            name,
            value_name,
            help,
            kind: FlagKind::Text,
        }
    }
    pub const fn repeated(
        name: &'static str,
        value_name: &'static str,
        help: &'static str,
    ) -> Self {
        FlagSpec {
            name,
            value_name,
            help,
            kind: FlagKind::Repeated,
        }
    }
    pub const fn switch(name: &'static str, help: &'static str) -> Self {
        FlagSpec {
            name,
            value_name: "",
            help,
            kind: FlagKind::Switch,
        }
    }
    pub const fn unsigned(
        name: &'static str,
        value_name: &'static str,
        bits: u8,
        help: &'static str,
    ) -> Self {
        FlagSpec {
            name,
            value_name,
            help,
            kind: FlagKind::Unsigned(bits),
        }
    }
}

/// A value given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagValue {
    Text(String),
    Repeated(Vec<String>),
    Switch,
    Unsigned(u64),
}

/// The values of every declared collector flag: absent when not given.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    declared: BTreeMap<&'static str, FlagKind>,
    given: BTreeMap<&'static str, FlagValue>,
}

impl Flags {
    /// No flag given; every flag of the collector table declared.
    pub fn none() -> Flags {
        Flags::new(crate::COLLECTORS.iter().flat_map(|c| c.flags.iter()))
    }

    /// Declares these flags, none given yet.
    pub fn new<'a>(specs: impl IntoIterator<Item = &'a FlagSpec>) -> Flags {
        Flags {
            declared: specs.into_iter().map(|s| (s.name, s.kind)).collect(),
            given: BTreeMap::new(),
        }
    }

    /// Records a value the parser found for a declared flag; a value of another kind than
    /// declared is refused.
    pub fn set(&mut self, name: &str, value: FlagValue) -> Result<(), String> {
        let Some((&key, &kind)) = self.declared.get_key_value(name) else {
            return Err(format!("--{name} is not a collector flag"));
        };
        let fits = match (&value, kind) {
            (FlagValue::Text(_), FlagKind::Text)
            | (FlagValue::Repeated(_), FlagKind::Repeated)
            | (FlagValue::Switch, FlagKind::Switch) => true,
            (FlagValue::Unsigned(n), FlagKind::Unsigned(bits)) => bits >= 64 || *n < (1u64 << bits),
            _ => false,
        };
        if !fits {
            return Err(format!("--{name}: {value:?} does not fit {kind:?}"));
        }
        self.given.insert(key, value);
        Ok(())
    }

    fn lookup(
        &self,
        collector: &'static str,
        name: &str,
        want: fn(FlagKind) -> bool,
    ) -> Result<Option<&FlagValue>, BuildError> {
        match self.declared.get(name) {
            Some(&k) if want(k) => Ok(self.given.get(name)),
            Some(k) => Err(BuildError::Config {
                collector,
                detail: format!("--{name} is declared as {k:?}, read as another kind"),
            }),
            None => Err(BuildError::Config {
                collector,
                detail: format!("--{name} is read but not declared (a renamed flag?)"),
            }),
        }
    }

    /// The text of `--name VALUE`, if given.
    pub fn text(&self, collector: &'static str, name: &str) -> Result<Option<&str>, BuildError> {
        Ok(
            match self.lookup(collector, name, |k| k == FlagKind::Text)? {
                Some(FlagValue::Text(s)) => Some(s.as_str()),
                _ => None,
            },
        )
    }

    /// Every value of a repeatable flag, in command-line order.
    pub fn repeated(&self, collector: &'static str, name: &str) -> Result<&[String], BuildError> {
        Ok(
            match self.lookup(collector, name, |k| k == FlagKind::Repeated)? {
                Some(FlagValue::Repeated(v)) => v.as_slice(),
                _ => &[],
            },
        )
    }

    /// Whether a switch was given.
    pub fn switch(&self, collector: &'static str, name: &str) -> Result<bool, BuildError> {
        Ok(matches!(
            self.lookup(collector, name, |k| k == FlagKind::Switch)?,
            Some(FlagValue::Switch)
        ))
    }

    /// An unsigned flag, converted to the collector's type (the parser already checked the
    /// range it was declared with).
    pub fn unsigned<T: TryFrom<u64>>(
        &self,
        collector: &'static str,
        name: &str,
    ) -> Result<Option<T>, BuildError> {
        match self.lookup(collector, name, |k| matches!(k, FlagKind::Unsigned(_)))? {
            Some(FlagValue::Unsigned(n)) => {
                T::try_from(*n).map(Some).map_err(|_| BuildError::Config {
                    collector,
                    detail: format!("--{name}: {n} is out of range"),
                })
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: [FlagSpec; 4] = [
        FlagSpec::text("x.host", "HOST", "h"),
        FlagSpec::repeated("x.addr", "A", "a"),
        FlagSpec::switch("x.insecure", "i"),
        FlagSpec::unsigned("x.port", "PORT", 16, "p"),
    ];

    #[test]
    fn given_values_come_back_by_kind_and_absent_ones_are_none() {
        let mut f = Flags::new(&SPECS);
        assert_eq!(f.text("x", "x.host").unwrap(), None);
        assert!(f.repeated("x", "x.addr").unwrap().is_empty());
        assert!(!f.switch("x", "x.insecure").unwrap());
        f.set("x.host", FlagValue::Text("bmc1".into())).unwrap();
        f.set("x.addr", FlagValue::Repeated(vec!["a".into(), "b".into()]))
            .unwrap();
        f.set("x.insecure", FlagValue::Switch).unwrap();
        f.set("x.port", FlagValue::Unsigned(623)).unwrap();
        assert_eq!(f.text("x", "x.host").unwrap(), Some("bmc1"));
        assert_eq!(f.repeated("x", "x.addr").unwrap(), ["a", "b"]);
        assert!(f.switch("x", "x.insecure").unwrap());
        assert_eq!(f.unsigned::<u16>("x", "x.port").unwrap(), Some(623));
        // Declared 16 bits wide, read into a u8: an error, not a truncation.
        assert!(f.unsigned::<u8>("x", "x.port").is_err());
    }

    #[test]
    fn an_undeclared_or_mistyped_flag_is_an_error_not_a_default() {
        let mut f = Flags::new(&SPECS);
        let e = f.text("x", "x.hots").unwrap_err().to_string();
        assert!(e.contains("--x.hots is read but not declared"), "{e}");
        assert!(f.switch("x", "x.host").is_err());
        assert!(f.set("x.nope", FlagValue::Switch).is_err());
        assert!(f.set("x.host", FlagValue::Switch).is_err());
        assert!(f.set("x.port", FlagValue::Unsigned(70_000)).is_err());
    }

    #[test]
    fn every_flag_of_the_table_is_declared_once() {
        let mut seen = std::collections::BTreeSet::new();
        for c in crate::COLLECTORS {
            for s in c.flags {
                assert!(seen.insert(s.name), "--{} declared twice", s.name);
            }
        }
        assert!(seen.contains("ipmi.host") && seen.contains("ups.nut-address"));
    }
}
