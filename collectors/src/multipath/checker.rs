//! multipathd's path checker verdicts (`multipathd show paths raw format "%d|%T"`), pure:
//! takes the text, never a path.
//!
//! The device-mapper state (`A`/`F`) already carries the checker's verdict once multipathd
//! acts on it (`fail_path` / `reinstate_path`); the checker state adds what the dm state
//! cannot say: a path the checker just found faulty but multipathd has not failed yet, a
//! `shaky` (marginal) path, and a `ghost` (ALUA standby port) path.

use crate::MemberHealth;

/// Checker states as multipathd prints them.
pub const CHECKER_STATES: [&str; 8] = [
    "ready",
    "faulty",
    "shaky",
    "ghost",
    "i/o pending",
    "i/o timeout",
    "delayed",
    "undef",
];

/// `dev|chk_st` lines → (device, checker state). A header line (`dev|chk_st`) and lines
/// without the separator are skipped; fields are trimmed (multipathd pads columns when
/// `raw` is not honoured).
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(d, s)| (d.trim().to_string(), s.trim().to_string()))
        .filter(|(d, s)| !d.is_empty() && !s.is_empty() && d != "dev")
        .collect()
}

/// Health of a path whose dm state is usable (`A`), given its checker state: faulty and
/// i/o timeout are unhealthy (multipathd is about to fail it), shaky is at risk; ready,
/// ghost and the states without a verdict leave it healthy.
pub fn health_of_usable_path(checker: Option<&str>) -> MemberHealth {
    match checker {
        Some(s @ ("faulty" | "i/o timeout")) => MemberHealth::Unhealthy(format!("checker {s}")),
        Some("shaky") => MemberHealth::AtRisk("checker shaky".into()),
        _ => MemberHealth::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_raw_and_padded_output() {
        let got = parse("dev|chk_st\nsdb |ready  \nsdc|i/o pending\nsdd|faulty\ngarbage\n");
        assert_eq!(
            got,
            vec![
                ("sdb".to_string(), "ready".to_string()),
                ("sdc".to_string(), "i/o pending".to_string()),
                ("sdd".to_string(), "faulty".to_string()),
            ]
        );
        assert!(parse("").is_empty());
    }

    #[test]
    fn verdicts() {
        assert_eq!(health_of_usable_path(Some("ready")), MemberHealth::Healthy);
        assert_eq!(health_of_usable_path(Some("ghost")), MemberHealth::Healthy);
        assert_eq!(health_of_usable_path(None), MemberHealth::Healthy);
        assert_eq!(
            health_of_usable_path(Some("faulty")),
            MemberHealth::Unhealthy("checker faulty".into())
        );
        assert!(matches!(
            health_of_usable_path(Some("shaky")),
            MemberHealth::AtRisk(_)
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
