//! [`RefillBucket`]: one continuously refilled per-minute bucket of a model's limits, which
//! may run into debt (generated tokens are charged as produced, whatever is left).

use std::time::Duration;

// Tokio's clock: under paused time (`start_paused`) the buckets refill in virtual time.
use tokio::time::Instant;

/// Nanoseconds a minute: levels are kept in units of `1 / NANOS_PER_MINUTE`, so a refill of
/// `per_minute` units a minute adds exactly `per_minute` of them each nanosecond, with no
/// rounding (a test that waits the announced time finds the request fits, exactly).
const NANOS_PER_MINUTE: i128 = 60_000_000_000;

/// A bucket of `per_minute` units a minute, holding `window` of that rate, full when created.
#[derive(Debug)]
pub(crate) struct RefillBucket {
    per_minute: u64,
    /// The capacity, in units of `1 / NANOS_PER_MINUTE`.
    capacity: i128,
    /// The level, in the same units; below zero when in debt.
    level: i128,
    updated: Instant,
}

impl RefillBucket {
    pub(crate) fn new(per_minute: u64, window: Duration, now: Instant) -> Self {
        let capacity = i128::from(per_minute).saturating_mul(nanos(window));
        Self {
            per_minute,
            capacity,
            level: capacity,
            updated: now,
        }
    }

    /// The limit, per minute.
    pub(crate) fn per_minute(&self) -> u64 {
        self.per_minute
    }

    /// Adds what was refilled since the last update (never above the capacity).
    pub(crate) fn refill(&mut self, now: Instant) {
        let elapsed = nanos(now.saturating_duration_since(self.updated));
        self.updated = now;
        let added = elapsed.saturating_mul(i128::from(self.per_minute));
        self.level = self.level.saturating_add(added).min(self.capacity);
    }

    /// Takes `amount` units, going below zero if need be.
    pub(crate) fn take(&mut self, amount: u64) {
        let amount = i128::from(amount).saturating_mul(NANOS_PER_MINUTE);
        self.level = self.level.saturating_sub(amount);
    }

    /// The whole units left (rounded down, never below zero).
    pub(crate) fn remaining(&self) -> u64 {
        let units = self.level.max(0) / NANOS_PER_MINUTE;
        u64::try_from(units).unwrap_or(u64::MAX)
    }

    /// Whether it holds less than `share` of its capacity.
    pub(crate) fn below(&self, share: f64) -> bool {
        (self.level as f64) < share * self.capacity as f64
    }

    /// How long until it holds `needed` units: zero if it does, `None` if it never will (more
    /// than its capacity).
    pub(crate) fn wait_for(&self, needed: u64) -> Option<Duration> {
        let needed = i128::from(needed).saturating_mul(NANOS_PER_MINUTE);
        if needed > self.capacity {
            return None;
        }
        Some(self.time_to(needed))
    }

    /// How long until it is full again.
    pub(crate) fn time_to_full(&self) -> Duration {
        self.time_to(self.capacity)
    }

    /// The time until the level reaches `level`, rounded up to the nanosecond.
    fn time_to(&self, level: i128) -> Duration {
        let missing = level.saturating_sub(self.level);
        if missing <= 0 {
            return Duration::ZERO;
        }
        if self.per_minute == 0 {
            return Duration::MAX;
        }
        let rate = i128::from(self.per_minute);
        let nanos = missing / rate + i128::from(missing % rate != 0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

fn nanos(duration: Duration) -> i128 {
    i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_continuously_and_pays_debts_first() {
        let start = Instant::now();
        let mut bucket = RefillBucket::new(600, Duration::from_secs(60), start);
        assert_eq!(bucket.remaining(), 600);
        bucket.take(700);
        assert_eq!(bucket.remaining(), 0);
        // 100 in debt at 10 a second: 10 s to get back to zero, 11 s to hold 10.
        assert_eq!(bucket.wait_for(10), Some(Duration::from_secs(11)));
        bucket.refill(start + Duration::from_secs(15));
        assert_eq!(bucket.remaining(), 50);
        assert_eq!(bucket.time_to_full(), Duration::from_secs(55));
        bucket.refill(start + Duration::from_secs(3600));
        assert_eq!(bucket.remaining(), 600);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_sizes_the_bucket_and_nothing_larger_ever_fits() {
        let mut bucket = RefillBucket::new(600, Duration::from_secs(6), Instant::now());
        assert_eq!(bucket.remaining(), 60);
        assert_eq!(bucket.wait_for(61), None);
        bucket.take(60);
        assert!(bucket.below(0.25));
        assert_eq!(bucket.wait_for(60), Some(Duration::from_secs(6)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_never_admits_and_never_panics() {
        let bucket = RefillBucket::new(0, Duration::MAX, Instant::now());
        assert_eq!(bucket.remaining(), 0);
        assert_eq!(bucket.wait_for(1), None);
        assert_eq!(bucket.time_to_full(), Duration::ZERO);
    }
}
