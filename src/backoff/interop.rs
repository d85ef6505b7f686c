//! Interop with the `backoff` crate (feature `backoff`), for users migrating from it.
//!
//! The `backoff` crate is unmaintained (RUSTSEC-2025-0012) and pulls `instant`, also
//! unmaintained (RUSTSEC-2024-0384): this feature is opt-in and never in the default graph.

use std::{sync::Arc, time::Duration};

use super::JitteredBackoff;

impl JitteredBackoff {
    /// Lets a `backoff::backoff::Backoff` drive the schedule. `make` builds a fresh one; the
    /// wait before retry `n` is its `n + 1`-th `next_backoff()` (so every logical request
    /// gets its own, independent sequence), and `None` from it stops retrying. Server hints,
    /// the caps and the deadline still apply.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_reliability::JitteredBackoff;
    ///
    /// let backoff = JitteredBackoff::from_backoff(|| {
    ///     backoff::ExponentialBackoffBuilder::new()
    ///         .with_initial_interval(Duration::from_millis(500))
    ///         .with_multiplier(2.0)
    ///         .build()
    /// });
    /// ```
    pub fn from_backoff<B, F>(make: F) -> Self
    where
        B: backoff::backoff::Backoff,
        F: Fn() -> B + Send + Sync + 'static,
    {
        JitteredBackoff::default().custom(Arc::new(move |n, _previous| {
            let mut schedule = make();
            let mut wait = Duration::ZERO;
            for _ in 0..=n {
                wait = schedule.next_backoff()?;
            }
            Some(wait)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    #[test]
    fn a_backoff_crate_schedule_drives_the_waits() {
        let b = JitteredBackoff::from_backoff(|| {
            backoff::backoff::Constant::new(Duration::from_millis(700))
        });
        let now = Instant::now();
        for n in 0..4 {
            assert_eq!(
                b.wait_before(n, None, None, now, None).unwrap(),
                Duration::from_millis(700)
            );
        }
        let exp = JitteredBackoff::from_backoff(|| {
            backoff::ExponentialBackoffBuilder::new()
                .with_initial_interval(Duration::from_millis(100))
                .with_randomization_factor(0.0)
                .with_multiplier(2.0)
                .build()
        });
        let waits: Vec<_> = (0..3)
            .map(|n| exp.wait_before(n, None, None, now, None).unwrap())
            .collect();
        assert_eq!(waits, [100, 200, 400].map(Duration::from_millis));
        let stop = JitteredBackoff::from_backoff(|| backoff::backoff::Stop {});
        assert!(stop.wait_before(0, None, None, now, None).is_err());
    }
}
