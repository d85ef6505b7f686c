//! The ramp guard: an optional cap on how fast a scope's sending rate may grow.

use std::time::Duration;

use tokio::time::Instant;

use super::bucket::RequestBucket;
use crate::time;

/// The window whose sending rate the next one may grow from.
const WINDOW: Duration = Duration::from_secs(60);

/// The ramp guard: an optional cap on how fast a scope's sending rate may grow.
///
/// Fireworks' limits are adaptive: they grow with sustained use, and "traffic that gradually
/// doubles within an hour" stays within them, while a fast ramp gets 429s. The gate learns a
/// limit from throttles; it cannot know a spike policy before it is hit. A user who knows it
/// can say so: with a [`RampGuard`], each scope sends at most `floor` requests a second, or
/// `2^(1 min / doubling)` times what it sent in the previous full minute if that is more, so
/// its rate at most doubles every `doubling`. A second's worth of the allowed rate may go at
/// once (a burst); beyond it requests queue, in priority order, and give up locally when the
/// wait would pass their deadline.
///
/// After a minute with nothing sent the guard starts again from `floor`: to the provider, a
/// return from idle is a new ramp. Off by default. While on, every request takes the gate's
/// full path (the store's lock and the request body's model), because the guard measures
/// every scope's rate. With a fleet store each process guards its own sending.
///
/// Like every configuration value of this crate, it is built with [`new`](Self::new), changed
/// with `with_*` setters and read back with getters named after what they return. The setters
/// keep it sane rather than fail: a floor that is not a positive number becomes the most
/// careful one (0.01 a second), an infinite one the largest finite (no guard), and the
/// doubling time is at least a millisecond.
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::rate_limit::{GateConfig, RampGuard};
///
/// // 20 requests a second at any time, doubling at most every hour above that.
/// let guard = RampGuard::new(20.0, Duration::from_secs(3600));
/// let config = GateConfig::default().with_ramp_guard(Some(guard));
/// assert_eq!(config.ramp_guard().map(|g| g.floor()), Some(20.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RampGuard {
    floor: f64,
    doubling: Duration,
}

/// The lowest floor: a floor that is not a positive number is the most careful one.
const MIN_FLOOR: f64 = 0.01;

/// The shortest doubling time.
const MIN_DOUBLING: Duration = Duration::from_millis(1);

impl RampGuard {
    /// A guard allowing `floor` requests a second, doubling at most every `doubling` above it
    /// (both clamped as the setters do).
    pub const fn new(floor: f64, doubling: Duration) -> Self {
        RampGuard {
            floor: MIN_FLOOR,
            doubling: MIN_DOUBLING,
        }
        .with_floor(floor)
        .with_doubling(doubling)
    }

    /// Sets the requests per second a scope may always send. NaN, zero or negative: 0.01;
    /// infinite: `f64::MAX` (no guard).
    pub const fn with_floor(mut self, floor: f64) -> Self {
        self.floor = if floor.is_nan() || floor < MIN_FLOOR {
            MIN_FLOOR
        } else if floor > f64::MAX {
            f64::MAX
        } else {
            floor
        };
        self
    }

    /// Sets the shortest time in which the sending rate may double above the floor (at least
    /// a millisecond).
    pub const fn with_doubling(mut self, doubling: Duration) -> Self {
        self.doubling = if doubling.as_nanos() < MIN_DOUBLING.as_nanos() {
            MIN_DOUBLING
        } else {
            doubling
        };
        self
    }

    /// Requests per second a scope may always send (its guaranteed or starting rate).
    pub const fn floor(&self) -> f64 {
        self.floor
    }

    /// The shortest time in which the sending rate may double above [`floor`](Self::floor).
    pub const fn doubling(&self) -> Duration {
        self.doubling
    }

    /// The rate allowed in a window after one that sent `previous` requests a second.
    fn allowed(&self, previous: f64) -> f64 {
        let doubling = self.doubling.as_secs_f64();
        let growth = 2f64.powf((WINDOW.as_secs_f64() / doubling).min(64.0));
        (previous * growth).max(self.floor)
    }
}

/// One scope's guard: the current window's count and the rate it may send at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardState {
    guard: RampGuard,
    window_start: Instant,
    sent: u64,
    bucket: RequestBucket,
}

impl GuardState {
    pub(crate) fn new(now: Instant, guard: RampGuard) -> Self {
        let allowed = guard.allowed(0.0);
        GuardState {
            guard,
            window_start: now,
            sent: 0,
            bucket: RequestBucket::full(now, allowed, interval(allowed)),
        }
    }

    /// Moves to the window holding `now`: the allowed rate grows from the last full window's.
    pub(crate) fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let windows = (elapsed.as_secs_f64() / WINDOW.as_secs_f64()).floor();
        // The window just ended, unless a whole window passed with nothing sent after it.
        let previous = if windows < 2.0 {
            self.sent as f64 / WINDOW.as_secs_f64()
        } else {
            0.0
        };
        let allowed = self.guard.allowed(previous);
        self.bucket.resize(now, allowed, interval(allowed));
        self.window_start = time::after(
            self.window_start,
            Duration::try_from_secs_f64(windows * WINDOW.as_secs_f64()).unwrap_or(elapsed),
        );
        self.sent = 0;
    }

    /// When the guard lets one more request go and the spacing of its queue, if not now.
    pub(crate) fn shortfall(&self, now: Instant) -> Option<(Instant, Duration)> {
        self.bucket.shortfall(now, 1)
    }

    /// A request goes.
    pub(crate) fn take(&mut self, now: Instant) {
        self.sent += 1;
        self.bucket.take(now);
    }

    /// A whole window passed with nothing sent: the guard is back at its floor, as a fresh
    /// one would be.
    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.window_start) >= WINDOW * 2
    }
}

/// The refill interval of a bucket at `rate` a second.
fn interval(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends as fast as the guard allows from `from` for `span`; how many went.
    fn drain(state: &mut GuardState, from: Instant, span: Duration) -> u64 {
        let mut now = from;
        let mut sent = 0;
        while now < from + span {
            state.roll(now);
            match state.shortfall(now) {
                None => {
                    state.take(now);
                    sent += 1;
                }
                Some((at, _)) => now = at,
            }
        }
        sent
    }

    #[test]
    fn the_rate_at_most_doubles_per_doubling_time() {
        let t0 = Instant::now();
        let mut s = GuardState::new(t0, RampGuard::new(10.0, WINDOW));
        let first = drain(&mut s, t0, WINDOW);
        assert!((600..=612).contains(&first), "{first}");
        let second = drain(&mut s, t0 + WINDOW, WINDOW);
        assert!((1190..=1230).contains(&second), "{second}");
        let third = drain(&mut s, t0 + WINDOW * 2, WINDOW);
        assert!((2380..=2480).contains(&third), "{third}");
    }

    #[test]
    fn after_an_idle_window_it_starts_from_the_floor() {
        let t0 = Instant::now();
        let mut s = GuardState::new(t0, RampGuard::new(10.0, WINDOW));
        drain(&mut s, t0, WINDOW * 2);
        let later = t0 + WINDOW * 5;
        let after_idle = drain(&mut s, later, WINDOW);
        assert!((600..=622).contains(&after_idle), "{after_idle}");
        assert!(s.is_idle(later + WINDOW * 3));
    }

    #[test]
    fn setters_round_trip_through_the_getters() {
        let g = RampGuard::new(20.0, Duration::from_secs(3600));
        assert_eq!((g.floor(), g.doubling()), (20.0, Duration::from_secs(3600)));
        let g = g.with_floor(5.5).with_doubling(Duration::from_secs(60));
        assert_eq!((g.floor(), g.doubling()), (5.5, Duration::from_secs(60)));
    }

    #[test]
    fn odd_settings_are_clamped_in_the_setters() {
        let ms = Duration::from_millis(1);
        // A floor that is not a number, or not positive, is the most careful one.
        for odd in [f64::NAN, 0.0, -3.0, f64::NEG_INFINITY] {
            assert_eq!(RampGuard::new(odd, ms).floor(), 0.01, "{odd}");
            assert_eq!(
                RampGuard::new(1.0, ms).with_floor(odd).floor(),
                0.01,
                "{odd}"
            );
        }
        // An infinite one: no guard, as a finite number.
        assert_eq!(RampGuard::new(f64::INFINITY, ms).floor(), f64::MAX);
        // The doubling time is at least a millisecond.
        let quick = RampGuard::new(1.0, Duration::ZERO);
        assert_eq!(quick.doubling(), ms);
        assert_eq!(quick.with_doubling(Duration::from_nanos(1)).doubling(), ms);
    }

    #[test]
    fn odd_settings_stay_finite() {
        let t0 = Instant::now();
        for guard in [
            RampGuard::new(0.0, Duration::ZERO),
            RampGuard::new(f64::NAN, Duration::MAX),
            RampGuard::new(f64::INFINITY, Duration::from_secs(1)),
            RampGuard::new(-3.0, Duration::from_nanos(1)),
        ] {
            let mut s = GuardState::new(t0, guard);
            s.take(t0);
            s.roll(t0 + WINDOW * 3);
            let _ = s.shortfall(t0 + WINDOW * 3);
        }
    }
}
