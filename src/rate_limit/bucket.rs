//! The client's mirror of the server's request bucket, learned from a [`Quota`] reading.
//!
//! Once a response says the quota is spent, every request is charged one request here and
//! goes when the mirrored bucket covers it: the next one after one refill interval, then one
//! per interval while demand exceeds the quota, and a burst again after a quiet spell, the way
//! the server's own bucket refills. The server's readings only ever lower the level (requests
//! this client sent since, or holds a slot for, are not in them), so the mirror never admits
//! more than the server would. Once the mirror is full again it has nothing left to enforce
//! and the gate drops it.
//!
//! A request is charged when it goes; the gate's queue spaces its waiters one refill interval
//! apart from the moment the mirror covers the first, so the queue and the bucket agree.

use std::time::Duration;

use tokio::time::Instant;

use super::Quota;
use crate::time;

/// Rounding slack: a level this close to a whole request counts as that request.
const EPSILON: f64 = 1e-6;

/// A continuously refilling bucket of requests, mirrored on the client side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RequestBucket {
    capacity: f64,
    interval: Duration,
    /// Requests available at `at`.
    level: f64,
    at: Instant,
}

impl RequestBucket {
    /// The mirror of what `quota` says at `now`, with the refill interval capped at
    /// `max_interval`; `None` when the reading says nothing about the refill rate.
    pub(crate) fn new(now: Instant, quota: Quota, max_interval: Duration) -> Option<Self> {
        let interval = quota.refill_interval()?.min(max_interval);
        let capacity = quota.capacity() as f64;
        Some(RequestBucket {
            capacity,
            interval,
            level: (quota.remaining as f64).min(capacity),
            at: now,
        })
    }

    /// A bucket of `capacity` refilling one every `interval`, full at `now` (a client-side
    /// limit of its own, such as the ramp guard's).
    pub(crate) fn full(now: Instant, capacity: f64, interval: Duration) -> Self {
        let capacity = capacity.max(1.0);
        RequestBucket {
            capacity,
            interval,
            level: capacity,
            at: now,
        }
    }

    /// A new size and refill rate from `now` on, keeping the level (up to the new size).
    pub(crate) fn resize(&mut self, now: Instant, capacity: f64, interval: Duration) {
        let level = self.level(now);
        self.capacity = capacity.max(1.0);
        self.interval = interval;
        self.level = level.min(self.capacity);
        self.at = now;
    }

    /// Takes in a newer reading: its size and refill rate, and its level if lower than the
    /// mirror's.
    pub(crate) fn learn(&mut self, now: Instant, quota: Quota, max_interval: Duration) {
        let Some(interval) = quota.refill_interval() else {
            return;
        };
        let level = self.level(now);
        let server = quota.remaining as f64;
        self.capacity = quota.capacity() as f64;
        self.interval = interval.min(max_interval);
        self.level = level.min(server);
        self.at = now;
    }

    /// How long the bucket takes to give one request back.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Requests available at `now`.
    fn level(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.level + elapsed / self.interval.as_secs_f64()).min(self.capacity)
    }

    /// When the bucket covers one more request (`now` if it already does).
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        self.ready_for(now, 1)
    }

    /// When the bucket covers `cost` (a request's tokens; a cost above the bucket's size waits
    /// for a full bucket, and then goes alone).
    pub(crate) fn ready_for(&self, now: Instant, cost: u64) -> Instant {
        let cost = (cost as f64).min(self.capacity).max(1.0);
        let missing = cost - self.level(now);
        if missing <= EPSILON {
            return now;
        }
        let wait = Duration::try_from_secs_f64(missing * self.interval.as_secs_f64())
            .unwrap_or(Duration::MAX);
        time::after(now, wait)
    }

    /// Whether the bucket has refilled completely: nothing left to enforce.
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        self.level(now) >= self.capacity - EPSILON
    }

    /// A request goes now: charge it.
    pub(crate) fn take(&mut self, now: Instant) {
        self.take_n(now, 1);
    }

    /// A request costing `cost` goes now: charge it (the level may go below zero: the server
    /// counts what was sent).
    pub(crate) fn take_n(&mut self, now: Instant, cost: u64) {
        self.level = self.level(now) - cost as f64;
        self.at = now;
    }

    /// A request charged `charged` turned out to cost `actual`: charge the difference, or
    /// refund it (up to a full bucket). Returns whether anything came back.
    pub(crate) fn settle(&mut self, now: Instant, charged: u64, actual: u64) -> bool {
        let level = self.level(now);
        self.at = now;
        if actual >= charged {
            self.level = level - (actual - charged) as f64;
            return false;
        }
        self.level = (level + (charged - actual) as f64).min(self.capacity);
        true
    }

    /// When the bucket does not cover `cost` at `now`: when it will, and the spacing that
    /// keeps a queue of such requests at the refill rate. `None` when it covers it now.
    pub(crate) fn shortfall(&self, now: Instant, cost: u64) -> Option<(Instant, Duration)> {
        let at = self.ready_for(now, cost);
        (at > now).then(|| (at, self.interval_for(cost)))
    }

    /// How long the bucket takes to give `cost` back.
    pub(crate) fn interval_for(&self, cost: u64) -> Duration {
        let cost = (cost as f64).min(self.capacity).max(1.0);
        Duration::try_from_secs_f64(self.interval.as_secs_f64() * cost).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn per_minute(limit: u64, remaining: u64) -> Quota {
        Quota::new(Some(limit), remaining, Some(Duration::from_secs(60)))
    }

    fn bucket(now: Instant) -> RequestBucket {
        RequestBucket::new(now, per_minute(30, 0), Duration::from_secs(120)).expect("a rate")
    }

    #[test]
    fn an_empty_bucket_paces_at_the_refill_rate() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        assert_eq!(b.interval(), ms(2000));
        assert_eq!(b.ready_at(t0), t0 + ms(2000));
        // Requests going as soon as it covers them go one interval apart.
        let mut at = t0;
        let mut sent = Vec::new();
        for _ in 0..3 {
            at = b.ready_at(at);
            b.take(at);
            sent.push(at);
        }
        assert_eq!(sent, [t0 + ms(2000), t0 + ms(4000), t0 + ms(6000)]);
        assert_eq!(b.ready_at(t0 + ms(6000)), t0 + ms(8000));
    }

    #[test]
    fn a_quiet_spell_refills_it_up_to_its_size() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        let later = t0 + ms(11_000);
        for _ in 0..5 {
            assert_eq!(b.ready_at(later), later, "5.5 requests came back");
            b.take(later);
        }
        assert_eq!(b.ready_at(later), later + ms(1000));
        assert!(!b.is_full(later));
        assert!(b.is_full(later + ms(60_000)));
        assert!(!b.is_full(later + ms(58_000)));
    }

    #[test]
    fn readings_only_lower_the_level() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        let t1 = t0 + ms(10_000);
        // The server says 9 left (21 missing, back in 42 s); the mirror, with nothing sent,
        // has 5.
        let nine_left = Quota::new(Some(30), 9, Some(Duration::from_secs(42)));
        b.learn(t1, nine_left, Duration::from_secs(120));
        assert_eq!(b.ready_at(t1), t1);
        for _ in 0..5 {
            b.take(t1);
        }
        assert_eq!(b.ready_at(t1), t1 + ms(2000));
        // One more sent here, which the server's next reading (none left) already counts.
        b.take(t1);
        b.learn(t1, per_minute(30, 0), Duration::from_secs(120));
        assert_eq!(b.ready_at(t1), t1 + ms(4000));
        // A faster quota (60 a minute) takes effect at once.
        b.learn(t1, per_minute(60, 0), Duration::from_secs(120));
        assert_eq!(b.ready_at(t1), t1 + ms(2000));
    }

    #[test]
    fn the_interval_is_capped() {
        let t0 = Instant::now();
        let quota = Quota::new(None, 0, Some(Duration::from_secs(86_400)));
        let b = RequestBucket::new(t0, quota, ms(300)).expect("a rate");
        assert_eq!(b.ready_at(t0), t0 + ms(300));
        assert!(RequestBucket::new(t0, Quota::new(None, 0, None), ms(300)).is_none());
    }
}
