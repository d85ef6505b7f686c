//! Backoff schedules: pure functions from the attempt number (and a random draw) to a wait.

use std::time::Duration;

/// How randomness is mixed into the exponential schedule (see Brooker, "Exponential Backoff And
/// Jitter"). `n` counts retries from 0; `v = min(cap, base * 2^n)`.
///
/// `Jitter::default()` is [`Guide`](Self::Guide), the Fireworks guide's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The Fireworks guide's loop: `base * 2^n + U(0, spread)` (spread 1 s by default), capped.
    /// Waits of 1+u, 2+u, 4+u, 8+u s with the defaults.
    #[default]
    Guide,
    /// `U(0, v)`: the least total work under contention.
    Full,
    /// `v/2 + U(0, v/2)`.
    Equal,
    /// `min(cap, U(base, 3 * previous))`, with `previous = base` at first.
    Decorrelated,
    /// `v` exactly. Only sensible for a single client; herds synchronise.
    None,
}

/// An exponential schedule with jitter. Every value it returns is at most its
/// [`cap`](Self::cap).
///
/// Like every configuration value of this crate, it starts from [`Default`] (the guide's
/// numbers), is changed with `with_*` setters and read back with getters named after what
/// they return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    base: Duration,
    cap: Duration,
    jitter: Jitter,
    spread: Duration,
}

impl Default for Schedule {
    /// The guide's numbers: base 1 s, `+ U(0, 1 s)`, capped at 30 s (the guide's five attempts
    /// never reach the cap: their longest wait is 8 + 1 s).
    fn default() -> Self {
        Schedule {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            jitter: Jitter::Guide,
            spread: Duration::from_secs(1),
        }
    }
}

impl Schedule {
    /// Sets the first wait's scale (`base` in [`Jitter`]'s formulas).
    pub const fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the largest wait the schedule itself produces.
    pub const fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Sets the jitter mode.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the additive spread of [`Jitter::Guide`].
    pub const fn with_spread(mut self, spread: Duration) -> Self {
        self.spread = spread;
        self
    }

    /// The first wait's scale (`base` in [`Jitter`]'s formulas). Guide: 1 s.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The largest wait the schedule itself produces. Default: 30 s.
    pub const fn cap(&self) -> Duration {
        self.cap
    }

    /// The jitter mode. Default: [`Jitter::Guide`].
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The additive spread of [`Jitter::Guide`]. Guide: 1 s.
    pub const fn spread(&self) -> Duration {
        self.spread
    }

    /// The wait before retry number `n` (0 for the first retry). `previous` is the last wait
    /// actually made (used by [`Jitter::Decorrelated`]); `unit` is a uniform draw in `[0, 1)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_reliability::backoff::{Jitter, Schedule};
    ///
    /// let guide = Schedule::default();
    /// // With the draw at 0.5, the guide's loop waits 1.5, 2.5, 4.5, 8.5 s.
    /// let waits: Vec<_> = (0..4).map(|n| guide.delay(n, None, 0.5)).collect();
    /// assert_eq!(waits, [1500, 2500, 4500, 8500].map(Duration::from_millis));
    ///
    /// let full = guide.with_jitter(Jitter::Full);
    /// assert!(full.delay(3, None, 0.999) < Duration::from_secs(8));
    /// ```
    pub fn delay(&self, n: u32, previous: Option<Duration>, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cap = self.cap.as_secs_f64();
        let base = self.base.as_secs_f64();
        // 2^n saturates long before n matters: the cap takes over.
        let exp = (base * 2f64.powi(n.min(62) as i32)).min(cap);
        let secs = match self.jitter {
            Jitter::Guide => exp + unit * self.spread.as_secs_f64(),
            Jitter::Full => unit * exp,
            Jitter::Equal => exp / 2.0 + unit * exp / 2.0,
            Jitter::Decorrelated => {
                let prev = previous.map_or(base, |p| p.as_secs_f64()).max(base);
                base + unit * (prev * 3.0 - base)
            }
            Jitter::None => exp,
        };
        // A cap that is not exact in f64 seconds could round up: clamp after converting too.
        Duration::try_from_secs_f64(secs.min(cap)).map_or(self.cap, |d| d.min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn setters_round_trip_through_the_getters() {
        let s = Schedule::default()
            .with_base(Duration::from_millis(10))
            .with_cap(Duration::from_secs(3))
            .with_jitter(Jitter::Full)
            .with_spread(Duration::from_millis(7));
        assert_eq!(s.base(), Duration::from_millis(10));
        assert_eq!(s.cap(), Duration::from_secs(3));
        assert_eq!(s.jitter(), Jitter::Full);
        assert_eq!(s.spread(), Duration::from_millis(7));
        let d = Schedule::default();
        assert_eq!(
            (d.base(), d.cap()),
            (Duration::from_secs(1), Duration::from_secs(30))
        );
        assert_eq!(
            (d.jitter(), d.spread()),
            (Jitter::Guide, Duration::from_secs(1))
        );
    }

    #[test]
    fn guide_matches_the_python_loop() {
        let s = Schedule::default();
        for n in 0..4u32 {
            let lo = secs(s.delay(n, None, 0.0));
            let hi = secs(s.delay(n, None, 0.999_999));
            assert_eq!(lo, 2f64.powi(n as i32));
            assert!(hi < lo + 1.0 && hi > lo + 0.99);
        }
    }

    #[test]
    fn every_mode_respects_the_cap_even_for_huge_n() {
        for jitter in [
            Jitter::Guide,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::None,
        ] {
            let s = Schedule::default()
                .with_jitter(jitter)
                .with_cap(Duration::from_secs(5));
            for n in [0, 1, 10, 63, u32::MAX] {
                for unit in [0.0, 0.5, 0.999, f64::NAN, -3.0, 7.0] {
                    let d = s.delay(n, Some(Duration::from_secs(1_000_000)), unit);
                    assert!(
                        d <= Duration::from_secs(5),
                        "{jitter:?} n={n} unit={unit} {d:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn full_equal_and_decorrelated_ranges() {
        let base = Schedule::default().with_cap(Duration::from_secs(100));
        let full = base.with_jitter(Jitter::Full);
        assert_eq!(full.delay(2, None, 0.0), Duration::ZERO);
        assert_eq!(full.delay(2, None, 0.5), Duration::from_secs(2));
        let equal = base.with_jitter(Jitter::Equal);
        assert_eq!(equal.delay(2, None, 0.0), Duration::from_secs(2));
        assert_eq!(equal.delay(2, None, 1.0), Duration::from_secs(4));
        let dec = base.with_jitter(Jitter::Decorrelated);
        assert_eq!(dec.delay(0, None, 0.0), Duration::from_secs(1));
        assert_eq!(dec.delay(0, None, 1.0), Duration::from_secs(3));
        assert_eq!(
            dec.delay(5, Some(Duration::from_secs(3)), 1.0),
            Duration::from_secs(9)
        );
        let none = base.with_jitter(Jitter::None);
        assert_eq!(none.delay(3, None, 0.7), Duration::from_secs(8));
    }
}
