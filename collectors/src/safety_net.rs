//! The stretched safety net: how often a collector whose events are live re-reads
//! everything on its interval (issue 14, "cost follows change").
//!
//! A collector with kernel events (net: rtnetlink; md: `poll()` on `/proc/mdstat`) reads
//! what the events name when they come; its interval pass exists only to catch what the
//! events missed. On a large host that pass is the whole idle cost (10,000 NICs: ~100,000
//! sysfs files, ~1.2 s every 30 s). So, while the events are live, an interval pass reads
//! everything at most once per `STRETCH_FACTOR` × the duration of the last full pass
//! (capped at [`MAX_STRETCH`]): the safety net then costs at most 1/`STRETCH_FACTOR` of a
//! core (0.5 %) however large the host is. Below the interval nothing changes: a pass of a
//! few milliseconds gives a period far under 30 s, so every interval pass is a full one,
//! as before. Anything that says events may have been missed (lost events, start-up, the
//! watcher gone) forces a full pass at once; the collector decides what counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Reading;

/// A safety-net full pass is due at most once per this many times its own duration.
pub const STRETCH_FACTOR: u32 = 200;

/// However long a full pass takes, the safety net runs at least this often, so drift the
/// events cannot show is still caught within this bound.
pub const MAX_STRETCH: Duration = Duration::from_secs(600);

/// The shortest time between two safety-net full passes after a full pass that took
/// `last_full_took`: `STRETCH_FACTOR` × it, at most [`MAX_STRETCH`]. The collector's
/// interval still applies on top (an interval pass only happens on the interval), so the
/// effective period is `max(interval, period)`.
pub fn period(last_full_took: Duration) -> Duration {
    last_full_took
        .saturating_mul(STRETCH_FACTOR)
        .min(MAX_STRETCH)
}

/// Whether an interval pass must read everything: events not live, a full pass forced
/// (lost events, nothing remembered yet, …), or the period since the last full pass
/// started has run out. `last_full`: (time since that pass started, how long it took).
pub fn full_pass_due(
    events_live: bool,
    forced: bool,
    last_full: Option<(Duration, Duration)>,
) -> bool {
    match last_full {
        _ if forced || !events_live => true,
        None => true,
        Some((since, took)) => since >= period(took),
    }
}

/// The time source; a test drives it by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Whether a collector's event watcher still runs: `link` is the collector's half of an
/// `Arc` whose other half the watcher thread holds, and drops when it stops (a socket error).
/// `None`: `watch` was never called or failed.
pub fn watcher_alive<T>(link: &Option<Arc<T>>) -> bool {
    link.as_ref().is_some_and(|l| Arc::strong_count(l) > 1)
}

/// A clock that moves one second each time it is read (so a full pass measures whole
/// seconds); the test moves the shared instant further to jump ahead.
#[cfg(test)]
pub(crate) fn stepping_clock() -> (Arc<std::sync::Mutex<Instant>>, Clock) {
    let t = Arc::new(std::sync::Mutex::new(Instant::now()));
    let t2 = Arc::clone(&t);
    let clock: Clock = Arc::new(move || {
        let mut g = t2.lock().unwrap_or_else(|e| e.into_inner());
        *g += Duration::from_secs(1);
        *g
    });
    (t, clock)
}

/// The value of the reading `name` (with a label value `label`, if given) among a
/// collection's data readings and pass counters; panics naming what is missing.
#[cfg(test)]
pub(crate) fn reading_value(c: &crate::Collection, name: &str, label: Option<&str>) -> f64 {
    c.readings
        .iter()
        .chain(&c.pass_stats)
        .find(|r| r.name == name && label.is_none_or(|d| r.labels.iter().any(|(_, v)| v == d)))
        .unwrap_or_else(|| panic!("{name} {label:?} not exported"))
        .value
}

/// One collector's record of its full passes and of the interval passes it skipped.
pub struct SafetyNet {
    clock: Clock,
    /// When the last full pass started and how long it took.
    last_full: Option<(Instant, Duration)>,
    pub full_passes: u64,
    pub skipped: u64,
}

impl SafetyNet {
    pub fn new(clock: Clock) -> Self {
        SafetyNet {
            clock,
            last_full: None,
            full_passes: 0,
            skipped: 0,
        }
    }

    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// [`full_pass_due`] now.
    pub fn due(&self, events_live: bool, forced: bool) -> bool {
        let now = self.now();
        full_pass_due(
            events_live,
            forced,
            self.last_full
                .map(|(at, took)| (now.saturating_duration_since(at), took)),
        )
    }

    /// Records a full pass that started at `started` and has just ended.
    pub fn full_done(&mut self, started: Instant) {
        self.full_passes += 1;
        self.last_full = Some((started, self.now().saturating_duration_since(started)));
    }

    /// Records an interval pass that read nothing.
    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    /// Forgets the last full pass (the subsystem went away): the next pass is a full one.
    pub fn reset(&mut self) {
        self.last_full = None;
    }

    /// The current period, 0 before the first full pass.
    pub fn current_period(&self) -> Duration {
        self.last_full
            .map(|(_, took)| period(took))
            .unwrap_or_default()
    }

    /// Full passes so far, and interval passes that read nothing (or only a summary).
    pub fn passes(&self) -> (u64, u64) {
        (self.full_passes, self.skipped)
    }

    /// The three readings an operator sees this by, each (name, help): the full passes, the
    /// skipped interval passes and the current period (`<prefix>_full_passes_total`,
    /// `<prefix>_full_passes_skipped_total`, `<prefix>_safety_net_period_seconds`).
    pub fn readings(
        &self,
        full: (&'static str, &'static str),
        skipped: (&'static str, &'static str),
        period: (&'static str, &'static str),
        out: &mut Vec<Reading>,
    ) {
        out.push(Reading::counter(
            full.0,
            full.1,
            Vec::new(),
            self.full_passes as f64,
        ));
        out.push(Reading::counter(
            skipped.0,
            skipped.1,
            Vec::new(),
            self.skipped as f64,
        ));
        out.push(Reading::gauge(
            period.0,
            period.1,
            Vec::new(),
            self.current_period().as_secs_f64(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_period_is_200_times_the_pass_and_at_most_ten_minutes() {
        assert_eq!(period(5 * MS), Duration::from_secs(1));
        assert_eq!(period(1200 * MS), Duration::from_secs(240));
        assert_eq!(period(Duration::from_secs(3)), MAX_STRETCH);
        assert_eq!(period(Duration::from_secs(27)), MAX_STRETCH);
        assert_eq!(period(Duration::MAX), MAX_STRETCH);
        assert_eq!(period(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_small_host_reads_everything_on_every_interval() {
        // A 5 ms pass, the 30 s interval later: due, as before the stretch.
        let last = Some((Duration::from_secs(30), 5 * MS));
        assert!(full_pass_due(true, false, last));
    }

    #[test]
    fn a_large_host_skips_until_the_stretched_period_ran_out() {
        let took = 1200 * MS; // period 240 s
        for since in [30, 60, 239] {
            let last = Some((Duration::from_secs(since), took));
            assert!(!full_pass_due(true, false, last), "{since} s");
        }
        assert!(full_pass_due(
            true,
            false,
            Some((Duration::from_secs(240), took))
        ));
        // However long the pass, at most ten minutes apart.
        let huge = Duration::from_secs(60);
        assert!(!full_pass_due(
            true,
            false,
            Some((Duration::from_secs(599), huge))
        ));
        assert!(full_pass_due(
            true,
            false,
            Some((Duration::from_secs(600), huge))
        ));
    }

    #[test]
    fn lost_events_dead_events_or_no_full_pass_yet_force_a_full_pass() {
        let recent = Some((Duration::from_secs(1), Duration::from_secs(2)));
        assert!(full_pass_due(true, true, recent), "forced");
        assert!(full_pass_due(false, false, recent), "events not live");
        assert!(full_pass_due(true, false, None), "no full pass yet");
    }

    #[test]
    fn the_record_measures_passes_on_its_clock() {
        let t0 = Instant::now();
        let now = Arc::new(std::sync::Mutex::new(t0));
        let n2 = Arc::clone(&now);
        let mut s = SafetyNet::new(Arc::new(move || *n2.lock().unwrap()));
        assert!(s.due(true, false));
        let started = s.now();
        *now.lock().unwrap() = t0 + Duration::from_secs(1);
        s.full_done(started);
        assert_eq!(s.current_period(), Duration::from_secs(200));
        *now.lock().unwrap() = t0 + Duration::from_secs(199);
        assert!(!s.due(true, false));
        *now.lock().unwrap() = t0 + Duration::from_secs(200);
        assert!(s.due(true, false));
        s.reset();
        assert!(s.due(true, false));
        assert_eq!(s.full_passes, 1);
    }
}
