//! Rules every collector of one kind of group shares, written once: the `required` of PSU
//! and fan groups (DESIGN §2), whichever collector (hwmon, IPMI) builds the group, and the
//! message of a caught panic.

/// `required` for `n` power supplies: 1 for one or two, ceil(n/2) above.
pub fn psu_required(n: u32) -> u32 {
    if n <= 2 {
        1
    } else {
        n.div_ceil(2)
    }
}

/// `required` for `n` fans of one zone: N − 1, at least 1.
pub fn fan_required(n: u32) -> u32 {
    n.saturating_sub(1).max(1)
}

/// The message of a panic caught with `catch_unwind` ("unknown panic" when it carried no
/// string).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psu_and_fan_required_per_design() {
        let psu: Vec<u32> = (1..=5).map(psu_required).collect();
        assert_eq!(psu, [1, 1, 2, 2, 3]);
        let fan: Vec<u32> = (0..=4).map(fan_required).collect();
        assert_eq!(fan, [1, 1, 1, 2, 3]);
    }

    #[test]
    fn panic_messages() {
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "static");
        let n = 7;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "formatted 7");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "unknown panic");
    }
}
