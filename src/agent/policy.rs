//! The state table of DESIGN.md §2 as one pure function, so it can be property-tested.

use sparewatch_collectors::{GroupState, Role, StatedRedundancy};

/// A member's health after hysteresis, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effective {
    Healthy,
    AtRisk,
    Unhealthy,
    Unknown,
}

/// The verdict for one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub state: GroupState,
    /// What the member count alone says (before hardware evidence is merged).
    pub counted_state: GroupState,
    /// Counted (non-spare) members that are healthy or at risk; unknown ones are not.
    pub healthy: u32,
    /// `healthy − required`; negative when below the minimum.
    pub spare: i64,
    /// The hardware states a redundancy that differs from the member count.
    pub disagreement: bool,
}

fn state_for(healthy: u32, required: u32, all_fine: bool) -> GroupState {
    let spare = i64::from(healthy) - i64::from(required);
    if spare < 0 {
        GroupState::Failed
    } else if spare == 0 {
        GroupState::NoRedundancy
    } else if all_fine {
        GroupState::Redundant
    } else {
        GroupState::Degraded
    }
}

/// Worse of two known states (`Redundant < Degraded < NoRedundancy < Failed`).
pub fn worse(a: GroupState, b: GroupState) -> GroupState {
    a.max(b)
}

/// Applies the state table.
///
/// - `spare = healthy − required`, counting active and standby members; hot spares
///   (`Role::Spare`) do not count until a rebuild makes them members, but a broken spare
///   makes the group `degraded` ("every member healthy" fails).
/// - A member of unknown health: the state is what both "it is healthy" and "it is not"
///   agree on, otherwise `unknown` — missing data is never reported as redundant.
/// - Hardware-stated redundancy merges as "worse wins"; when the count is unknown, a
///   stated loss or failure is still reported.
pub fn evaluate(
    members: &[(Role, Effective)],
    required: u32,
    stated: Option<StatedRedundancy>,
) -> Verdict {
    let mut healthy = 0u32;
    let mut unknown = 0u32;
    let mut all_fine = true;
    for (role, eff) in members {
        let counted = *role != Role::Spare;
        match eff {
            Effective::Healthy => healthy += u32::from(counted),
            Effective::AtRisk => {
                healthy += u32::from(counted);
                all_fine = false;
            }
            Effective::Unhealthy => all_fine = false,
            Effective::Unknown => unknown += u32::from(counted),
        }
    }
    let any_unknown = members.iter().any(|(_, e)| *e == Effective::Unknown);
    let worst = state_for(healthy, required, all_fine && !any_unknown);
    let best = state_for(healthy + unknown, required, all_fine);
    let counted_state = if worst == best {
        worst
    } else {
        GroupState::Unknown
    };
    let stated_state = stated.map(StatedRedundancy::as_state);
    let state = match (counted_state, stated_state) {
        (s, None) => s,
        (GroupState::Unknown, Some(h)) if h >= GroupState::NoRedundancy => h,
        (GroupState::Unknown, Some(_)) => GroupState::Unknown,
        (s, Some(h)) => worse(s, h),
    };
    Verdict {
        state,
        counted_state,
        healthy,
        spare: i64::from(healthy) - i64::from(required),
        disagreement: stated_state.is_some_and(|h| h != counted_state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Effective::*;

    fn a(e: Effective) -> (Role, Effective) {
        (Role::Active, e)
    }

    #[test]
    fn table_rows() {
        assert_eq!(
            evaluate(&[a(Healthy), a(Healthy)], 1, None).state,
            GroupState::Redundant
        );
        assert_eq!(
            evaluate(&[a(Healthy), a(Unhealthy)], 1, None).state,
            GroupState::NoRedundancy
        );
        assert_eq!(
            evaluate(&[a(Unhealthy), a(Unhealthy)], 1, None).state,
            GroupState::Failed
        );
        let three = [a(Healthy), a(Healthy), a(Unhealthy)];
        assert_eq!(evaluate(&three, 1, None).state, GroupState::Degraded);
        assert_eq!(evaluate(&three, 1, None).spare, 1);
        assert_eq!(
            evaluate(&[a(Healthy)], 1, None).state,
            GroupState::NoRedundancy
        );
    }

    #[test]
    fn unknown_is_never_redundant() {
        assert_eq!(
            evaluate(&[a(Healthy), a(Unknown)], 1, None).state,
            GroupState::Unknown
        );
        // Both readings of the unknown member agree: failed either way.
        let v = evaluate(&[a(Unhealthy), a(Unhealthy), a(Unknown)], 3, None);
        assert_eq!(v.state, GroupState::Failed);
    }

    #[test]
    fn hot_spare_does_not_count_but_a_broken_one_degrades() {
        let raid5_degraded_with_spare =
            [a(Healthy), a(Healthy), a(Unhealthy), (Role::Spare, Healthy)];
        assert_eq!(
            evaluate(&raid5_degraded_with_spare, 2, None).state,
            GroupState::NoRedundancy
        );
        let broken_spare = [a(Healthy), a(Healthy), (Role::Spare, Unhealthy)];
        assert_eq!(evaluate(&broken_spare, 1, None).state, GroupState::Degraded);
    }

    #[test]
    fn at_risk_counts_but_degrades() {
        let v = evaluate(&[a(Healthy), a(AtRisk)], 1, None);
        assert_eq!((v.state, v.spare), (GroupState::Degraded, 1));
    }

    #[test]
    fn hardware_evidence_worse_wins() {
        let v = evaluate(&[a(Healthy), a(Healthy)], 1, Some(StatedRedundancy::Lost));
        assert_eq!(v.state, GroupState::NoRedundancy);
        assert_eq!(v.counted_state, GroupState::Redundant);
        assert!(v.disagreement);
        let v = evaluate(
            &[a(Healthy), a(Unhealthy)],
            1,
            Some(StatedRedundancy::FullyRedundant),
        );
        assert_eq!(v.state, GroupState::NoRedundancy);
        assert!(v.disagreement);
        let v = evaluate(
            &[a(Healthy), a(Healthy)],
            1,
            Some(StatedRedundancy::FullyRedundant),
        );
        assert!(!v.disagreement);
    }

    fn effective() -> impl Strategy<Value = Effective> {
        prop_oneof![Just(Healthy), Just(AtRisk), Just(Unhealthy), Just(Unknown)]
    }
    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Active), Just(Role::Standby), Just(Role::Spare)]
    }
    fn stated() -> impl Strategy<Value = Option<StatedRedundancy>> {
        prop_oneof![
            Just(None),
            Just(Some(StatedRedundancy::FullyRedundant)),
            Just(Some(StatedRedundancy::Degraded)),
            Just(Some(StatedRedundancy::Lost)),
            Just(Some(StatedRedundancy::Insufficient)),
        ]
    }

    proptest! {
        /// For any member set the state follows the table, computed here independently.
        #[test]
        fn state_follows_the_table(
            members in proptest::collection::vec((role(), effective()), 0..12),
            required in 0u32..8,
        ) {
            let v = evaluate(&members, required, None);
            let counted: Vec<_> = members.iter().filter(|(r, _)| *r != Role::Spare).collect();
            let healthy = counted.iter().filter(|(_, e)| matches!(e, Healthy | AtRisk)).count() as i64;
            let unknown = members.iter().any(|(_, e)| *e == Unknown);
            prop_assert_eq!(v.spare, healthy - i64::from(required));
            if !unknown {
                let all_healthy = members.iter().all(|(_, e)| *e == Healthy);
                let expected = if v.spare < 0 { GroupState::Failed }
                    else if v.spare == 0 { GroupState::NoRedundancy }
                    else if all_healthy { GroupState::Redundant }
                    else { GroupState::Degraded };
                prop_assert_eq!(v.state, expected);
            } else {
                prop_assert_ne!(v.state, GroupState::Redundant);
            }
        }

        /// Hardware evidence can only make the state worse, never better.
        #[test]
        fn evidence_never_improves(
            members in proptest::collection::vec((role(), effective()), 0..12),
            required in 0u32..8,
            s in stated(),
        ) {
            let without = evaluate(&members, required, None).state;
            let with = evaluate(&members, required, s).state;
            if without != GroupState::Unknown {
                prop_assert!(with >= without);
            }
            prop_assert!(!(without == GroupState::Unknown && with == GroupState::Redundant));
        }
    }
}
