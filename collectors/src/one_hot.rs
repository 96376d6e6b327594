//! One-hot state readings: one series per known value, the current one is 1. An unknown
//! current value gets a series of its own, so a new kernel state is shown, not dropped.

use crate::Reading;

/// What one one-hot reading is called and which label carries the value.
pub struct OneHot {
    pub name: &'static str,
    pub help: &'static str,
    pub label: &'static str,
    pub known: &'static [&'static str],
}

impl OneHot {
    /// Appends one gauge per known value (plus `current` when it is not known), each with
    /// `labels` and the value label; nothing when `current` is `None`.
    pub fn push(
        &self,
        out: &mut Vec<Reading>,
        labels: &[(&'static str, String)],
        current: Option<&str>,
    ) {
        let Some(current) = current else { return };
        let extra = (!self.known.contains(&current)).then_some(current);
        for v in self.known.iter().copied().chain(extra) {
            let mut l = labels.to_vec();
            l.push((self.label, v.to_string()));
            out.push(Reading::gauge(
                self.name,
                self.help,
                l,
                (v == current) as u8 as f64,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: OneHot = OneHot {
        name: "sparewatch_x_state",
        help: "h",
        label: "state",
        known: &["a", "b"],
    };

    #[test]
    fn exactly_one_is_set_and_unknown_values_are_kept() {
        let mut out = Vec::new();
        H.push(&mut out, &[("device", "d".into())], Some("b"));
        let v: Vec<f64> = out.iter().map(|r| r.value).collect();
        assert_eq!(v, [0.0, 1.0]);
        out.clear();
        H.push(&mut out, &[], Some("new"));
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].labels, vec![("state", "new".to_string())]);
        assert_eq!(out[2].value, 1.0);
        out.clear();
        H.push(&mut out, &[], None);
        assert!(out.is_empty());
    }
}
