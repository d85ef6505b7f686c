//! The circuit breaker: tells an outage from load shedding, then tests the server with one
//! probe at a time.
//!
//! A busy provider load-sheds: it answers `503` to part of the requests while most succeed.
//! At a 30 % shed rate, three failures in a row happen every few dozen requests, so a breaker
//! that trips on a short run holds every caller again and again on a server that serves 70 %
//! of requests at once. What tells an outage apart is the failure *ratio* over a window with
//! enough requests in it, as in Polly's advanced circuit breaker (failure ratio, minimum
//! throughput, sampling duration) and Envoy's outlier detection (failure percentage with a
//! minimum request volume): the breaker trips when, among the outcomes of the last
//! [`sampling_duration`](super::GateConfig::sampling_duration), there are at least
//! [`minimum_throughput`](super::GateConfig::minimum_throughput) and at least
//! [`failure_ratio`](super::GateConfig::failure_ratio) of them failed.
//!
//! The window only fills while the gate is restricted (the lock-free healthy path records
//! nothing): after a healthy spell it starts at the first failure, so a total outage trips it
//! after `minimum_throughput` failures, while shedding soon fills it with enough successes
//! that its ratio stays near the shed rate.
//!
//! Tripped, it holds every request for [`probe_base`](super::GateConfig::probe_base), then lets
//! one request through as a probe. The probe's failure holds again, twice as long (up to
//! [`probe_max`](super::GateConfig::probe_max)); a probe that has not answered within that
//! interval (a long generation) counts as failed and the next request probes. Any answer from
//! the server (the probe's, or a request sent before the trip) closes the breaker.
//!
//! Plain arithmetic on instants, no clock, no I/O.

use std::time::Duration;

use tokio::time::Instant;

use super::{GateConfig, Probe};
use crate::time;

/// The shortest hold the breaker asks for: a zero knob must not make held requests spin.
pub(crate) const MIN_HOLD: Duration = Duration::from_millis(1);

/// The window is kept in this many buckets (outcomes age out a bucket at a time).
const BUCKETS: u64 = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket of time since the window's origin this counts.
    index: u64,
    ok: u32,
    failed: u32,
}

/// Outcomes over the last `sampling_duration`, in [`BUCKETS`] buckets of time.
#[derive(Debug, Clone)]
struct Window {
    origin: Option<Instant>,
    width: Duration,
    buckets: [Bucket; BUCKETS as usize],
}

impl Window {
    fn new(sampling: Duration) -> Self {
        Window {
            origin: None,
            width: (sampling / BUCKETS as u32).max(Duration::from_nanos(1)),
            buckets: [Bucket::default(); BUCKETS as usize],
        }
    }

    fn index(&self, origin: Instant, now: Instant) -> u64 {
        let since = now.saturating_duration_since(origin).as_nanos();
        u64::try_from(since / self.width.as_nanos()).unwrap_or(u64::MAX)
    }

    fn add(&mut self, now: Instant, failed: bool) {
        let origin = *self.origin.get_or_insert(now);
        let index = self.index(origin, now);
        let bucket = &mut self.buckets[(index % BUCKETS) as usize];
        if bucket.index != index {
            *bucket = Bucket {
                index,
                ..Bucket::default()
            };
        }
        if failed {
            bucket.failed = bucket.failed.saturating_add(1);
        } else {
            bucket.ok = bucket.ok.saturating_add(1);
        }
    }

    /// (successes, failures) within the window at `now`.
    fn totals(&self, now: Instant) -> (u32, u32) {
        let Some(origin) = self.origin else {
            return (0, 0);
        };
        let current = self.index(origin, now);
        self.buckets
            .iter()
            .filter(|b| b.index <= current && current - b.index < BUCKETS)
            .fold((0u32, 0u32), |(ok, failed), b| {
                (ok.saturating_add(b.ok), failed.saturating_add(b.failed))
            })
    }

    fn clear(&mut self) {
        self.origin = None;
        self.buckets = [Bucket::default(); BUCKETS as usize];
    }
}

/// One probe turn: its token, and when it counts as unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Turn {
    id: u64,
    expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Holding everyone until `until`; then the next request probes.
    Open {
        until: Instant,
    },
    /// Testing the server: `probe` is the turn in flight, if any.
    HalfOpen {
        probe: Option<Turn>,
    },
}

/// What the breaker says about sending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not engaged: the rest of the gate decides.
    Pass,
    /// A probe may go (it has been due since `since`): [`Breaker::take_probe`].
    ProbeDue { since: Instant },
    /// Hold until then (or a wake-up).
    Hold { until: Instant },
}

/// The breaker's state.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    phase: Phase,
    window: Window,
    /// The current hold between probes.
    probe_wait: Duration,
    turns: u64,
    /// Since when a freed probe turn is waiting to be taken.
    free_since: Option<Instant>,
    ratio: f64,
    minimum: u32,
    first_wait: Duration,
    max_wait: Duration,
}

impl Breaker {
    pub(crate) fn new(config: &GateConfig) -> Self {
        let max_wait = config.probe_max.max(MIN_HOLD);
        let first_wait = config.probe_base.clamp(MIN_HOLD, max_wait);
        Breaker {
            phase: Phase::Closed,
            window: Window::new(config.sampling_duration),
            probe_wait: first_wait,
            turns: 0,
            free_since: None,
            // The setters keep both sane: no NaN ratio, at least one outcome.
            ratio: config.failure_ratio,
            minimum: config.minimum_throughput,
            first_wait,
            max_wait,
        }
    }

    /// Whether it holds requests (open or half-open).
    pub(crate) fn is_engaged(&self) -> bool {
        self.phase != Phase::Closed
    }

    /// Closed with no failure in the window: nothing to watch, the lock-free path may resume.
    pub(crate) fn is_quiet(&self, now: Instant) -> bool {
        self.phase == Phase::Closed && self.window.totals(now).1 == 0
    }

    /// Whether `probe` is the turn in flight.
    pub(crate) fn is_current(&self, probe: Option<Probe>) -> bool {
        matches!(
            (self.phase, probe),
            (Phase::HalfOpen { probe: Some(turn) }, Some(p)) if turn.id == p.0
        )
    }

    /// May a request go at `now`?
    pub(crate) fn admit(&mut self, now: Instant) -> Verdict {
        match self.phase {
            Phase::Closed => Verdict::Pass,
            Phase::Open { until } if now < until => Verdict::Hold { until },
            Phase::HalfOpen { probe: Some(turn) } if now < turn.expires => Verdict::Hold {
                until: turn.expires,
            },
            Phase::Open { until } => Verdict::ProbeDue { since: until },
            Phase::HalfOpen { probe: Some(turn) } => Verdict::ProbeDue {
                since: turn.expires,
            },
            Phase::HalfOpen { probe: None } => Verdict::ProbeDue {
                since: *self.free_since.get_or_insert(now),
            },
        }
    }

    /// Hands out the next probe turn (when [`admit`](Self::admit) says one is due).
    pub(crate) fn take_probe(&mut self, now: Instant) -> Probe {
        if matches!(self.phase, Phase::HalfOpen { probe: Some(_) }) {
            // The probe in flight did not answer within its interval: as good as failed.
            self.probe_wait = self.next_wait();
        }
        self.turns += 1;
        self.free_since = None;
        self.phase = Phase::HalfOpen {
            probe: Some(Turn {
                id: self.turns,
                expires: time::after(now, self.probe_wait),
            }),
        };
        Probe(self.turns)
    }

    /// A failure (`probe`: the turn it was sent as, if any). Returns the failures in the window
    /// if it tripped the breaker.
    pub(crate) fn failure(&mut self, now: Instant, probe: Option<Probe>) -> Option<u32> {
        match self.phase {
            Phase::Closed => {
                self.window.add(now, true);
                let (ok, failed) = self.window.totals(now);
                let total = ok.saturating_add(failed);
                if total >= self.minimum && f64::from(failed) >= self.ratio * f64::from(total) {
                    self.probe_wait = self.first_wait;
                    self.phase = Phase::Open {
                        until: time::after(now, self.probe_wait),
                    };
                    return Some(failed);
                }
                None
            }
            _ if self.is_current(probe) => {
                self.probe_wait = self.next_wait();
                self.phase = Phase::Open {
                    until: time::after(now, self.probe_wait),
                };
                None
            }
            // Held: a request sent before the trip failing says nothing new.
            _ => None,
        }
    }

    /// The server answered. Returns whether that closed the breaker.
    pub(crate) fn success(&mut self, now: Instant) -> bool {
        if self.phase == Phase::Closed {
            self.window.add(now, false);
            return false;
        }
        self.phase = Phase::Closed;
        self.window.clear();
        self.probe_wait = self.first_wait;
        true
    }

    /// The probe `probe` ended without an outcome: its turn is free. Returns whether it was
    /// the turn in flight.
    pub(crate) fn release(&mut self, probe: Option<Probe>) -> bool {
        if self.is_current(probe) {
            self.phase = Phase::HalfOpen { probe: None };
            self.free_since = None;
            return true;
        }
        false
    }

    fn next_wait(&self) -> Duration {
        self.probe_wait.saturating_mul(2).min(self.max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn breaker() -> Breaker {
        Breaker::new(&GateConfig::default())
    }

    #[test]
    fn trips_on_the_ratio_once_the_window_has_enough_outcomes() {
        let mut b = breaker();
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(b.failure(t0 + ms(i), None), None, "only {} outcomes", i + 1);
        }
        assert_eq!(b.failure(t0 + ms(9), None), Some(10));
        assert!(b.is_engaged());
    }

    #[test]
    fn successes_in_the_window_keep_it_closed() {
        let mut b = breaker();
        let t0 = Instant::now();
        // 7 failures, 3 successes, then failures: 8 of 11 is under 0.8 of the window...
        for i in 0..7 {
            b.failure(t0 + ms(i), None);
        }
        for i in 0..3 {
            b.success(t0 + ms(10 + i));
        }
        assert_eq!(b.failure(t0 + ms(20), None), None);
        // ...12 of 15 is not.
        for i in 0..3 {
            b.failure(t0 + ms(30 + i), None);
        }
        assert_eq!(b.failure(t0 + ms(40), None), Some(12));
    }

    #[test]
    fn outcomes_older_than_the_sampling_duration_are_forgotten() {
        let mut b = breaker();
        let t0 = Instant::now();
        for i in 0..9 {
            b.failure(t0 + ms(i), None);
        }
        assert!(!b.is_quiet(t0 + ms(10)));
        // 11 s later, the nine are gone: one more failure is one of one.
        let later = t0 + Duration::from_secs(11);
        assert!(b.is_quiet(later));
        assert_eq!(b.failure(later, None), None);
    }

    #[test]
    fn an_unanswered_probe_lets_the_next_one_go_after_its_interval() {
        let mut b = breaker();
        let t0 = Instant::now();
        for _ in 0..10 {
            b.failure(t0, None);
        }
        assert_eq!(
            b.admit(t0),
            Verdict::Hold {
                until: t0 + ms(500)
            }
        );
        let t1 = t0 + ms(500);
        assert_eq!(b.admit(t1), Verdict::ProbeDue { since: t1 });
        let p1 = b.take_probe(t1);
        assert_eq!(
            b.admit(t1),
            Verdict::Hold {
                until: t1 + ms(500)
            }
        );
        // Unanswered after its interval: the next request probes, and waits double.
        let t2 = t1 + ms(500);
        assert_eq!(b.admit(t2), Verdict::ProbeDue { since: t2 });
        let p2 = b.take_probe(t2);
        assert_ne!(p1, p2);
        assert_eq!(
            b.admit(t2),
            Verdict::Hold {
                until: t2 + ms(1000)
            }
        );
        // The first probe's late failure is stale; the second's success closes.
        assert_eq!(b.failure(t2, Some(p1)), None);
        assert!(b.is_engaged());
        assert!(b.success(t2 + ms(10)));
        assert!(!b.is_engaged());
    }

    #[test]
    fn extreme_waits_are_capped_and_floored() {
        let t0 = Instant::now();
        let mut b = Breaker::new(
            &GateConfig::default()
                .with_probe_base(Duration::MAX)
                .with_probe_max(Duration::MAX),
        );
        for _ in 0..100 {
            b.failure(t0, None);
        }
        let mut now = t0;
        for _ in 0..5 {
            match b.admit(now) {
                Verdict::Hold { until } => now = until,
                Verdict::ProbeDue { .. } => {
                    let p = b.take_probe(now);
                    b.failure(now, Some(p));
                }
                Verdict::Pass => panic!("engaged"),
            }
        }
        let mut zero = Breaker::new(
            &GateConfig::default()
                .with_probe_base(Duration::ZERO)
                .with_probe_max(Duration::ZERO)
                .with_sampling_duration(Duration::ZERO),
        );
        for _ in 0..10 {
            zero.failure(t0, None);
        }
        assert!(zero.is_engaged());
        let Verdict::ProbeDue { .. } = zero.admit(t0 + MIN_HOLD) else {
            panic!("a probe")
        };
        zero.take_probe(t0 + MIN_HOLD);
        assert_eq!(
            zero.admit(t0 + MIN_HOLD),
            Verdict::Hold {
                until: t0 + MIN_HOLD * 2
            },
            "held strictly into the future"
        );
    }
}
