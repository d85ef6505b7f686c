//! Slow start after the breaker closes: the held backlog leaves at the base pace, doubling
//! every round while successes come back.
//!
//! During an outage every request is held; once a probe succeeds, the backlog must reach the
//! server paced (not as a herd), but at the fixed base pace a backlog of 20 s of arrivals takes
//! as long again to drain, and new arrivals queue behind it until arrivals stop. Like TCP's
//! slow start, the pace doubles every [`ROUND`] in which the server answered more successes
//! than failures, up to whatever the server takes: a throttle hands over to the adaptive rate,
//! failures stop the doubling (and trip the breaker again if they dominate). The ramp ends once
//! the queue is empty.

use std::time::Duration;

use tokio::time::Instant;

/// How often the pace may double (at 50 requests/s to start with, a backlog of 1000 is gone in
/// about 0.7 s).
pub(crate) const ROUND: Duration = Duration::from_millis(100);

/// The pace of the release after a breaker spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ramp {
    spacing: Duration,
    round_from: Instant,
    successes: u32,
    failures: u32,
}

impl Ramp {
    /// A ramp starting at `now` with `spacing` between releases.
    pub(crate) fn new(now: Instant, spacing: Duration) -> Self {
        Ramp {
            spacing,
            round_from: now,
            successes: 0,
            failures: 0,
        }
    }

    /// The gap between two releases now.
    pub(crate) fn spacing(&self) -> Duration {
        self.spacing
    }

    /// A success came back. Returns whether the pace doubled.
    pub(crate) fn success(&mut self, now: Instant) -> bool {
        self.successes = self.successes.saturating_add(1);
        let round_over = now.saturating_duration_since(self.round_from) >= ROUND;
        if round_over && self.successes > self.failures {
            self.spacing /= 2;
            self.round_from = now;
            self.successes = 0;
            self.failures = 0;
            return true;
        }
        false
    }

    /// A failure came back: the round doubles only if successes outnumber failures.
    pub(crate) fn failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_every_round_while_successes_come_back() {
        let t0 = Instant::now();
        let mut r = Ramp::new(t0, ms(20));
        assert!(!r.success(t0 + ROUND / 2), "within the first round");
        assert!(r.success(t0 + ROUND));
        assert_eq!(r.spacing(), ms(10));
        // A round where failures dominate holds the pace.
        let t1 = t0 + ROUND * 3;
        r.failure();
        r.failure();
        assert!(!r.success(t1));
        assert!(!r.success(t1 + ms(1)));
        assert_eq!(r.spacing(), ms(10));
        assert!(r.success(t1 + ms(2)), "3 successes, 2 failures");
        assert_eq!(r.spacing(), ms(5));
    }
}
