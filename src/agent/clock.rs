//! The agent's two clocks. Durations (collector timeouts, staleness, hold-down, the
//! `unknown` blip bound) are measured on the monotonic clock, so a wall-clock step (NTP,
//! an operator's `date -s`) neither disables hang detection nor releases a hold-down
//! early. The wall clock is used only for what is exported or persisted (since, last
//! success, "absent since").

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One moment on both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub wall: SystemTime,
    /// Nanoseconds on a monotonic axis shared by the whole process.
    mono: i128,
}

/// The process's anchor: the wall time and the monotonic instant of the first use.
fn anchor() -> &'static (i128, Instant) {
    static ANCHOR: OnceLock<(i128, Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| (unix_nanos(SystemTime::now()), Instant::now()))
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

impl Stamp {
    /// Now, on both clocks: what the running agent uses.
    pub fn now() -> Stamp {
        let (wall0, mono0) = anchor();
        Stamp {
            wall: SystemTime::now(),
            mono: wall0 + mono0.elapsed().as_nanos() as i128,
        }
    }

    /// Time elapsed from `earlier` to `self` on the monotonic clock (zero if negative).
    pub fn since(self, earlier: Stamp) -> Duration {
        let ns = self.mono - earlier.mono;
        if ns <= 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
        }
    }

    /// `self` plus `d` on both clocks.
    pub fn plus(self, d: Duration) -> Stamp {
        Stamp {
            wall: self.wall + d,
            mono: self.mono + d.as_nanos() as i128,
        }
    }
}

/// Ordered by the monotonic clock.
impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.mono.cmp(&other.mono)
    }
}

/// A wall time taken as a moment on both clocks: for one-shot runs and tests that replay
/// wall times (the two clocks then agree by construction).
impl From<SystemTime> for Stamp {
    fn from(wall: SystemTime) -> Stamp {
        Stamp {
            wall,
            mono: unix_nanos(wall),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_ignore_wall_clock_steps() {
        let a = Stamp::now();
        // The wall clock stepped back an hour between the two readings.
        let mut b = Stamp::now().plus(Duration::from_secs(2));
        b.wall -= Duration::from_secs(3600);
        assert!(b.since(a) >= Duration::from_secs(2));
        assert_eq!(a.since(b), Duration::ZERO);
        let w = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(
            Stamp::from(w + Duration::from_secs(5)).since(w.into()),
            Duration::from_secs(5)
        );
    }
}
