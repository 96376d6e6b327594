//! Capacity-true power redundancy: can the supplies that are left carry the load when the
//! largest one fails? Two 800 W supplies feeding 1100 W read "redundant" by count and are an
//! outage in fact.

use std::collections::BTreeMap;

use crate::PowerCapacity;

/// One supply as far as watts go.
#[derive(Clone, Debug, PartialEq)]
pub struct Supply {
    pub name: String,
    /// Counts healthy (after nothing: the collector's raw view). An unhealthy supply carries
    /// no load share after the next failure and adds no capacity.
    pub healthy: bool,
    /// What it delivers now, in watts.
    pub load_watts: Option<f64>,
    /// What it can deliver (rated maximum), in watts.
    pub capacity_watts: Option<f64>,
}

/// Compares the load with what the healthy supplies deliver after losing the largest one.
/// `margin_percent` is headroom the survivors must keep (10: at most 90 % of their rating).
/// `None` when fewer than two supplies are healthy (the member count already says there is
/// no spare) or no supply reports any watts (nothing to say).
pub fn capacity(supplies: &[Supply], margin_percent: f64) -> Option<PowerCapacity> {
    let healthy: Vec<&Supply> = supplies.iter().filter(|s| s.healthy).collect();
    if healthy.len() < 2
        || supplies
            .iter()
            .all(|s| s.load_watts.is_none() && s.capacity_watts.is_none())
    {
        return None;
    }
    let unknown = |what: &str, names: Vec<&str>| PowerCapacity {
        sufficient: None,
        load_watts: None,
        after_loss_watts: None,
        reason: format!("{what} of {} unknown", names.join(", ")),
    };
    let no_cap: Vec<&str> = healthy
        .iter()
        .filter(|s| !s.capacity_watts.is_some_and(|c| c.is_finite() && c > 0.0))
        .map(|s| s.name.as_str())
        .collect();
    if !no_cap.is_empty() {
        return Some(unknown("rated capacity", no_cap));
    }
    let no_load: Vec<&str> = healthy
        .iter()
        .filter(|s| !s.load_watts.is_some_and(|l| l.is_finite() && l >= 0.0))
        .map(|s| s.name.as_str())
        .collect();
    if !no_load.is_empty() {
        return Some(unknown("load", no_load));
    }
    let load: f64 = healthy.iter().filter_map(|s| s.load_watts).sum();
    // The first of the largest, so equal supplies name the first one ("losing PS1").
    let largest = healthy.iter().copied().reduce(|best, s| {
        if s.capacity_watts.unwrap_or(0.0) > best.capacity_watts.unwrap_or(0.0) {
            s
        } else {
            best
        }
    })?;
    let total: f64 = healthy.iter().filter_map(|s| s.capacity_watts).sum();
    let left = total - largest.capacity_watts.unwrap_or(0.0);
    let margin = if margin_percent.is_finite() {
        margin_percent.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let usable = left * (1.0 - margin / 100.0);
    let with_margin = if margin > 0.0 {
        format!(" (keeping {margin:.0} % margin)")
    } else {
        String::new()
    };
    let sufficient = load <= usable;
    let reason = if sufficient {
        format!(
            "load {load:.0} W <= {usable:.0} W left after losing {}{with_margin}",
            largest.name
        )
    } else {
        format!(
            "load {load:.0} W > {usable:.0} W left after losing {}{with_margin}",
            largest.name
        )
    };
    Some(PowerCapacity {
        sufficient: Some(sufficient),
        load_watts: Some(load),
        after_loss_watts: Some(usable),
        reason,
    })
}

/// Load and rating of a PMBus supply from its hwmon attributes (values in microwatts):
/// the output sensor (label `pout…`) when it has both an input and a `rated_max`, else the
/// input sensor (label `pin`), else the first power sensor with both; `(None, None)` when
/// the chip reports no power at all.
pub fn pmbus_watts(attrs: &BTreeMap<String, Option<String>>) -> (Option<f64>, Option<f64>) {
    let get = |k: String| -> Option<f64> {
        attrs
            .get(&k)
            .and_then(|v| v.as_deref())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|uw| uw / 1_000_000.0)
    };
    let mut sensors: Vec<(u8, String)> = attrs
        .keys()
        .filter_map(|k| k.strip_suffix("_input"))
        .filter(|s| s.starts_with("power"))
        .map(|s| {
            let label = attrs
                .get(&format!("{s}_label"))
                .and_then(|v| v.as_deref())
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let rank = if label.starts_with("pout") {
                0
            } else if label.starts_with("pin") {
                1
            } else {
                2
            };
            (rank, s.to_string())
        })
        .collect();
    sensors.sort();
    let both = sensors.iter().find_map(|(_, s)| {
        match (get(format!("{s}_input")), get(format!("{s}_rated_max"))) {
            (Some(i), Some(m)) => Some((Some(i), Some(m))),
            _ => None,
        }
    });
    both.unwrap_or_else(|| {
        (
            sensors.first().and_then(|(_, s)| get(format!("{s}_input"))),
            None,
        )
    })
}

/// A PMBus supply for [`capacity`], from its hwmon attributes and raw health.
pub fn pmbus_supply(
    name: &str,
    health: &crate::MemberHealth,
    attrs: &BTreeMap<String, Option<String>>,
) -> Supply {
    let (load_watts, capacity_watts) = pmbus_watts(attrs);
    Supply {
        name: name.to_string(),
        healthy: health.counts_healthy(),
        load_watts,
        capacity_watts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(name: &str, healthy: bool, load: Option<f64>, cap: Option<f64>) -> Supply {
        Supply {
            name: name.into(),
            healthy,
            load_watts: load,
            capacity_watts: cap,
        }
    }

    #[test]
    fn two_800w_at_1100w_are_not_redundant() {
        let c = capacity(
            &[
                s("PS1", true, Some(550.0), Some(800.0)),
                s("PS2", true, Some(550.0), Some(800.0)),
            ],
            0.0,
        )
        .unwrap();
        assert_eq!(c.sufficient, Some(false));
        assert_eq!(c.reason, "load 1100 W > 800 W left after losing PS1");
    }

    #[test]
    fn survivors_that_carry_the_load_with_and_without_margin() {
        let ps = [
            s("PS1", true, Some(300.0), Some(800.0)),
            s("PS2", true, Some(300.0), Some(800.0)),
        ];
        assert_eq!(capacity(&ps, 0.0).unwrap().sufficient, Some(true));
        // 600 W > 800 W × 0.7.
        let c = capacity(&ps, 30.0).unwrap();
        assert_eq!(c.sufficient, Some(false));
        assert!(c.reason.contains("keeping 30 % margin"), "{}", c.reason);
    }

    #[test]
    fn the_largest_supply_is_the_one_lost() {
        let c = capacity(
            &[
                s("PS1", true, Some(400.0), Some(1200.0)),
                s("PS2", true, Some(400.0), Some(750.0)),
            ],
            0.0,
        )
        .unwrap();
        assert_eq!(c.sufficient, Some(false));
        assert_eq!(c.reason, "load 800 W > 750 W left after losing PS1");
    }

    #[test]
    fn unknown_capacity_is_said_never_guessed() {
        let c = capacity(
            &[
                s("PS1", true, Some(400.0), Some(800.0)),
                s("PS2", true, Some(400.0), None),
            ],
            0.0,
        )
        .unwrap();
        assert_eq!(c.sufficient, None);
        assert_eq!(c.reason, "rated capacity of PS2 unknown");
        // No watts at all: nothing to say; one healthy supply: the count already says it.
        assert_eq!(
            capacity(&[s("A", true, None, None), s("B", true, None, None)], 0.0),
            None
        );
        assert_eq!(
            capacity(
                &[
                    s("A", true, Some(1.0), Some(800.0)),
                    s("B", false, None, Some(800.0))
                ],
                0.0
            ),
            None
        );
    }

    #[test]
    fn pmbus_prefers_the_output_sensor() {
        let attrs: BTreeMap<String, Option<String>> = [
            ("power1_label", "pin"),
            ("power1_input", "600000000"),
            ("power1_rated_max", "900000000"),
            ("power2_label", "pout1"),
            ("power2_input", "550000000"),
            ("power2_rated_max", "800000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
        assert_eq!(pmbus_watts(&attrs), (Some(550.0), Some(800.0)));
        let only_input: BTreeMap<String, Option<String>> =
            [("power1_input".to_string(), Some("450000000".to_string()))].into();
        assert_eq!(pmbus_watts(&only_input), (Some(450.0), None));
    }

    proptest! {
        #[test]
        fn never_panics_and_never_claims_without_numbers(
            v in proptest::collection::vec(
                (any::<bool>(), proptest::option::of(any::<f64>()), proptest::option::of(any::<f64>())),
                0..5,
            ),
            margin in any::<f64>(),
        ) {
            let supplies: Vec<Supply> = v
                .iter()
                .enumerate()
                .map(|(i, (h, l, c))| s(&format!("PS{i}"), *h, *l, *c))
                .collect();
            if let Some(c) = capacity(&supplies, margin) {
                if c.sufficient.is_some() {
                    prop_assert!(supplies.iter().filter(|s| s.healthy).all(|s| s.capacity_watts.is_some() && s.load_watts.is_some()));
                }
            }
        }
    }
}
