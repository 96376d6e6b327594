//! Runs every collector on its own thread: on its interval, or at once when an event wakes
//! it. A collector that errors, panics or hangs only marks itself down; it cannot delay
//! another collector or a scrape (a hung `collect` blocks only its own thread, and the engine
//! notices through the timeout).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::clock::Stamp;

use sparewatch_collectors::{Collection, Collector, Wake};

/// What the scheduler tells the engine.
pub enum Event {
    Started(&'static str, Stamp),
    Finished(&'static str, Result<Collection, String>, Duration, Stamp),
    /// `sparewatch forget` asked the running agent to forget these groups or members.
    Forget(Vec<String>),
}

pub struct Job {
    pub name: &'static str,
    pub interval: Duration,
    pub collector: Box<dyn Collector>,
}

/// The storm throttle: a collector's passes start at most once per `MIN_GAP` on average,
/// so an event storm (a flapping link, container veths coming and going) cannot turn into
/// back-to-back passes, but a short burst of up to `BURST` passes starts at once. One link
/// change is often two or three rtnetlink messages (the veth and its peer, carrier then
/// operstate) that arrive while the first pass runs: with a plain minimum gap the second
/// one waited 100 ms, the floor of the event → metric latency (issue 14). Passes are O(1)
/// per event now, so the burst costs nothing; the sustained rate is the same 10 a second.
const MIN_GAP: Duration = Duration::from_millis(100);
const BURST: u32 = 4;

/// The generic cell rate algorithm over pass starts: `tat` is when the next pass would be
/// due at the sustained rate; a pass may start up to `(BURST - 1) * MIN_GAP` before it.
struct Throttle {
    tat: Option<Instant>,
}

impl Throttle {
    fn new() -> Self {
        Throttle { tat: None }
    }

    /// How long a pass wanting to start at `now` must wait; records it as started then.
    fn admit(&mut self, now: Instant) -> Duration {
        let tolerance = MIN_GAP * (BURST - 1);
        let tat = self.tat.unwrap_or(now).max(now);
        let earliest = tat.checked_sub(tolerance).unwrap_or(now);
        let wait = earliest.saturating_duration_since(now);
        self.tat = Some(tat + MIN_GAP);
        wait
    }
}

/// One pass, with panics turned into errors.
pub fn collect_guarded(name: &str, c: &mut dyn Collector) -> Result<Collection, String> {
    match catch_unwind(AssertUnwindSafe(|| c.collect())) {
        Ok(Ok(col)) => Ok(col),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => {
            let msg = sparewatch_collectors::policy::panic_message(p.as_ref());
            tracing::error!(collector = name, panic = %msg, "collector panicked");
            Err(format!("panicked: {msg}"))
        }
    }
}

/// Starts one thread per job. Returns each job's wake handle (by name).
pub fn spawn(jobs: Vec<Job>, events: Sender<Event>) -> std::io::Result<Vec<(&'static str, Wake)>> {
    let mut wakes = Vec::new();
    for mut job in jobs {
        let (wtx, wrx) = mpsc::sync_channel::<()>(1);
        let wake = Wake::new(move || {
            let _ = wtx.try_send(());
        });
        if let Err(e) = job.collector.watch(wake.clone()) {
            tracing::warn!(collector = job.name, error = %e, "no kernel events; polling every {:?}", job.interval);
        }
        wakes.push((job.name, wake.clone()));
        let events = events.clone();
        thread::Builder::new()
            .name(format!("collect-{}", job.name))
            .spawn(move || run_job(job, wrx, events))?;
    }
    Ok(wakes)
}

fn run_job(mut job: Job, wakes: Receiver<()>, events: Sender<Event>) {
    let mut throttle = Throttle::new();
    loop {
        let wait = throttle.admit(Instant::now());
        if !wait.is_zero() {
            thread::sleep(wait);
        }
        let started = Instant::now();
        if events.send(Event::Started(job.name, Stamp::now())).is_err() {
            return;
        }
        let result = collect_guarded(job.name, job.collector.as_mut());
        if let Err(e) = &result {
            tracing::warn!(collector = job.name, error = %e, "collection failed");
        }
        let done = Event::Finished(job.name, result, started.elapsed(), Stamp::now());
        if events.send(done).is_err() {
            return;
        }
        match wakes.recv_timeout(job.interval.saturating_sub(started.elapsed())) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => thread::sleep(job.interval),
        }
    }
}

/// Runs every job once in parallel (for `status` and `check`), each bounded by its timeout.
/// A job that does not finish in time is reported as timed out; its thread is left behind
/// and dies with the process.
pub fn collect_once(
    jobs: Vec<(Job, Duration)>,
) -> Vec<(&'static str, Result<Collection, String>, Duration)> {
    let (tx, rx) = mpsc::channel();
    let mut pending = Vec::new();
    let mut out = Vec::new();
    for (mut job, timeout) in jobs {
        let tx = tx.clone();
        let name = job.name;
        let spawned = thread::Builder::new()
            .name(format!("collect-{name}"))
            .spawn(move || {
                let start = Instant::now();
                let r = collect_guarded(name, job.collector.as_mut());
                let _ = tx.send((name, r, start.elapsed()));
            });
        match spawned {
            Ok(_) => pending.push((name, Instant::now() + timeout, timeout)),
            Err(e) => out.push((
                name,
                Err(format!("cannot start thread: {e}")),
                Duration::ZERO,
            )),
        }
    }
    drop(tx);
    while !pending.is_empty() {
        let deadline = pending
            .iter()
            .map(|p| p.1)
            .min()
            .unwrap_or_else(Instant::now);
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((name, r, d)) => {
                pending.retain(|p| p.0 != name);
                out.push((name, r, d));
            }
            Err(_) => {
                let now = Instant::now();
                pending.retain(|(name, dl, timeout)| {
                    if *dl <= now {
                        out.push((name, Err(format!("timed out after {timeout:?}")), *timeout));
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of `BURST` passes starts at once, the next waits, and a storm is held to one
    /// pass per `MIN_GAP` however fast the events come; after a quiet spell the burst is back.
    #[test]
    fn throttle_lets_a_burst_through_and_holds_a_storm_to_the_rate() {
        let t0 = Instant::now();
        let mut th = Throttle::new();
        for _ in 0..BURST {
            assert_eq!(th.admit(t0), Duration::ZERO);
        }
        assert_eq!(th.admit(t0), MIN_GAP);
        // A storm: a pass wanted every millisecond for 10 s, each starting when admitted.
        let mut th = Throttle::new();
        let mut now = t0;
        let mut passes = 0u32;
        while now < t0 + Duration::from_secs(10) {
            now += th.admit(now);
            passes += 1;
            now += Duration::from_millis(1);
        }
        let most = 10_000 / MIN_GAP.as_millis() as u32 + BURST;
        assert!(
            passes <= most,
            "{passes} passes in 10 s, at most {most} allowed"
        );
        assert!(
            passes >= most - 2,
            "{passes} passes: the rate is not reached"
        );
        // Quiet for a while: a burst goes through at once again.
        let later = now + MIN_GAP * BURST * 2;
        for _ in 0..BURST {
            assert_eq!(th.admit(later), Duration::ZERO);
        }
    }
}
