//! [`GateConfig`]: the knobs of the in-memory rate-limit state.

use std::time::Duration;

use super::{Priority, RampGuard, RateControl};

/// The knobs of the in-memory state. Every wait has a cap, and every duration is safe from
/// zero to `Duration::MAX`.
///
/// Like every configuration value of this crate, it starts from [`Default`], is changed with
/// `with_*` setters (which clamp what would make no sense rather than fail) and read back with
/// getters named after what they return; each getter's docs give the knob's meaning and its
/// default. Set some knobs and keep the rest:
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::rate_limit::{GateConfig, Priority};
///
/// let config = GateConfig::default()
///     .with_max_hold(Duration::from_secs(30))
///     .with_priority(Priority::Fifo);
/// assert_eq!(config.max_hold(), Duration::from_secs(30));
/// assert_eq!(config.no_hint_max(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    pub(crate) release_spacing: Duration,
    pub(crate) rate_control: RateControl,
    pub(crate) min_rate: f64,
    pub(crate) hinted_plateau: Duration,
    pub(crate) forget_after: Duration,
    pub(crate) max_hold: Duration,
    pub(crate) no_hint_base: Duration,
    pub(crate) no_hint_max: Duration,
    pub(crate) failure_ratio: f64,
    pub(crate) minimum_throughput: u32,
    pub(crate) sampling_duration: Duration,
    pub(crate) probe_base: Duration,
    pub(crate) probe_max: Duration,
    pub(crate) token_pacing: bool,
    pub(crate) priority: Priority,
    pub(crate) ramp_guard: Option<RampGuard>,
}

/// The default lowest adaptive rate, and what a rate that makes no sense becomes.
const DEFAULT_MIN_RATE: f64 = 0.5;

/// The default failure ratio, and what NaN becomes.
const DEFAULT_FAILURE_RATIO: f64 = 0.8;

impl Default for GateConfig {
    /// The defaults each getter names.
    fn default() -> Self {
        GateConfig {
            release_spacing: Duration::from_millis(20),
            rate_control: RateControl::default(),
            min_rate: DEFAULT_MIN_RATE,
            forget_after: Duration::from_secs(30),
            hinted_plateau: Duration::from_secs(10),
            max_hold: Duration::from_secs(120),
            no_hint_base: Duration::from_millis(100),
            no_hint_max: Duration::from_secs(5),
            failure_ratio: DEFAULT_FAILURE_RATIO,
            minimum_throughput: 10,
            sampling_duration: Duration::from_secs(10),
            probe_base: Duration::from_millis(500),
            probe_max: Duration::from_secs(2),
            token_pacing: true,
            priority: Priority::default(),
            ramp_guard: None,
        }
    }
}

impl GateConfig {
    /// Sets the gap between two requests released after the gate reopens. See [`release_spacing`](Self::release_spacing).
    pub const fn with_release_spacing(mut self, release_spacing: Duration) -> Self {
        self.release_spacing = release_spacing;
        self
    }

    /// Sets how the client-side sending rate adapts to throttling. See [`rate_control`](Self::rate_control).
    pub const fn with_rate_control(mut self, rate_control: RateControl) -> Self {
        self.rate_control = rate_control;
        self
    }

    /// Sets the lowest adaptive rate, requests per second. A rate that is not a positive,
    /// finite number is the default, 0.5 (as the adaptive rate has always read it). See [`min_rate`](Self::min_rate).
    pub const fn with_min_rate(mut self, min_rate: f64) -> Self {
        self.min_rate = if min_rate.is_finite() && min_rate > 0.0 {
            min_rate
        } else {
            DEFAULT_MIN_RATE
        };
        self
    }

    /// Sets how long the adaptive rate holds at a limit found with a hint. See [`hinted_plateau`](Self::hinted_plateau).
    pub const fn with_hinted_plateau(mut self, hinted_plateau: Duration) -> Self {
        self.hinted_plateau = hinted_plateau;
        self
    }

    /// Sets how long without a throttle before adapting stops. See [`forget_after`](Self::forget_after).
    pub const fn with_forget_after(mut self, forget_after: Duration) -> Self {
        self.forget_after = forget_after;
        self
    }

    /// Sets the longest the gate stays closed on one server hint. See [`max_hold`](Self::max_hold).
    pub const fn with_max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = max_hold;
        self
    }

    /// Sets the first closure on a 429 without any hint. See [`no_hint_base`](Self::no_hint_base).
    pub const fn with_no_hint_base(mut self, no_hint_base: Duration) -> Self {
        self.no_hint_base = no_hint_base;
        self
    }

    /// Sets the cap on the no-hint closure. See [`no_hint_max`](Self::no_hint_max).
    pub const fn with_no_hint_max(mut self, no_hint_max: Duration) -> Self {
        self.no_hint_max = no_hint_max;
        self
    }

    /// Sets the failure ratio that trips the circuit breaker. NaN is the default, 0.8; a
    /// ratio below 0 is 0 (every failure trips it once the window has enough outcomes, as
    /// before); above 1 it never trips. See [`failure_ratio`](Self::failure_ratio).
    pub const fn with_failure_ratio(mut self, failure_ratio: f64) -> Self {
        self.failure_ratio = if failure_ratio.is_nan() {
            DEFAULT_FAILURE_RATIO
        } else if failure_ratio < 0.0 {
            0.0
        } else {
            failure_ratio
        };
        self
    }

    /// Sets the fewest outcomes before the failure ratio counts (at least 1: 0 is 1, as the
    /// breaker has always read it). See [`minimum_throughput`](Self::minimum_throughput).
    pub const fn with_minimum_throughput(mut self, minimum_throughput: u32) -> Self {
        self.minimum_throughput = if minimum_throughput == 0 {
            1
        } else {
            minimum_throughput
        };
        self
    }

    /// Sets how far back the breaker's failure ratio looks. See [`sampling_duration`](Self::sampling_duration).
    pub const fn with_sampling_duration(mut self, sampling_duration: Duration) -> Self {
        self.sampling_duration = sampling_duration;
        self
    }

    /// Sets how long the breaker holds everyone before the first probe. See [`probe_base`](Self::probe_base).
    pub const fn with_probe_base(mut self, probe_base: Duration) -> Self {
        self.probe_base = probe_base;
        self
    }

    /// Sets the cap on the time between probes. See [`probe_max`](Self::probe_max).
    pub const fn with_probe_max(mut self, probe_max: Duration) -> Self {
        self.probe_max = probe_max;
        self
    }

    /// Sets whether a response saying the token allowance runs low makes the gate pace tokens. See [`token_pacing`](Self::token_pacing).
    pub const fn with_token_pacing(mut self, token_pacing: bool) -> Self {
        self.token_pacing = token_pacing;
        self
    }

    /// Sets the order of the waiting queue when the limit binds. See [`priority`](Self::priority).
    pub const fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets (or, with `None`, removes) the cap on how fast each scope's sending rate may grow. See [`ramp_guard`](Self::ramp_guard).
    pub const fn with_ramp_guard(mut self, ramp_guard: Option<RampGuard>) -> Self {
        self.ramp_guard = ramp_guard;
        self
    }

    /// Gap between two requests released after the gate reopens (default 20 ms, 50 per
    /// second), so they do not reach the server as a herd, while no adaptive rate is
    /// learned yet (after a circuit-breaker spell; with [`RateControl::Off`]). Until the held
    /// backlog is released, newcomers queue behind it. After a breaker spell the release
    /// starts at this pace and doubles every 250 ms while successes come back.
    pub const fn release_spacing(&self) -> Duration {
        self.release_spacing
    }

    /// How the client-side sending rate adapts to throttling (default
    /// [`RateControl::CUBIC`]). Off until the first 429: a healthy client pays nothing.
    pub const fn rate_control(&self) -> RateControl {
        self.rate_control
    }

    /// The lowest adaptive rate, requests per second (default 0.5); with a fleet store, the
    /// whole fleet's floor (each process paces at least at its share of it).
    pub const fn min_rate(&self) -> f64 {
        self.min_rate
    }

    /// After a 429 *with* a hint, how long the adaptive rate holds at the limit it found
    /// before probing above it again (default 10 s): every failed probe then holds the whole
    /// client for the hint's wait, so probing is rare. Without a hint it probes at once.
    pub const fn hinted_plateau(&self) -> Duration {
        self.hinted_plateau
    }

    /// Adapting stops once no throttle came for this long and the learned rate is well above
    /// what the client sends (default 30 s): the lock-free path is back.
    pub const fn forget_after(&self) -> Duration {
        self.forget_after
    }

    /// The longest the gate stays closed on one server hint (default 120 s, the backoff's
    /// `max_server_wait`). A longer hint holds the gate this long.
    pub const fn max_hold(&self) -> Duration {
        self.max_hold
    }

    /// How long a 429 without any hint closes the gate at first (default 100 ms); doubled on
    /// each 429 in a row, up to `no_hint_max`, reset by any success.
    pub const fn no_hint_base(&self) -> Duration {
        self.no_hint_base
    }

    /// The cap on the no-hint closure (default 5 s).
    pub const fn no_hint_max(&self) -> Duration {
        self.no_hint_max
    }

    /// The share of failures (5xx without hint, broken connections, attempts cut by their
    /// deadline) among the outcomes of the last `sampling_duration` that trips the circuit
    /// breaker (default 0.8). Load shedding (a third of requests answered 503 while the rest
    /// succeed) stays well below it; an outage reaches it at once. Above 1: never trips.
    pub const fn failure_ratio(&self) -> f64 {
        self.failure_ratio
    }

    /// The fewest outcomes within `sampling_duration` before the ratio counts (default 10):
    /// after a healthy spell, an outage trips the breaker after this many failures.
    pub const fn minimum_throughput(&self) -> u32 {
        self.minimum_throughput
    }

    /// How far back the breaker's failure ratio looks (default 10 s).
    pub const fn sampling_duration(&self) -> Duration {
        self.sampling_duration
    }

    /// How long the breaker holds everyone before the first probe (default 500 ms); doubled
    /// after each failed probe up to `probe_max`. A probe that has not answered within it
    /// counts as failed, and the next request probes.
    pub const fn probe_base(&self) -> Duration {
        self.probe_base
    }

    /// The cap on the time between probes (default 2 s): recovery is noticed within it.
    pub const fn probe_max(&self) -> Duration {
        self.probe_max
    }

    /// Whether a response saying the token allowance runs low makes the scope's gate mirror
    /// the server's token bucket and charge each request its estimated tokens (default
    /// `true`). Off, the gate paces requests only, as before token pacing.
    pub const fn token_pacing(&self) -> bool {
        self.token_pacing
    }

    /// The order of the waiting queue when the limit binds (default
    /// [`Priority::default`]: weighted by workload, interactive first; see [`Priority`]).
    pub const fn priority(&self) -> Priority {
        self.priority
    }

    /// An optional cap on how fast each scope's sending rate may grow (default `None`; see
    /// [`RampGuard`]), for a provider whose limits punish a fast ramp.
    pub const fn ramp_guard(&self) -> Option<RampGuard> {
        self.ramp_guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn setters_round_trip_through_the_getters() {
        let ms = Duration::from_millis;
        let guard = RampGuard::new(3.0, Duration::from_secs(60));
        let c = GateConfig::default()
            .with_release_spacing(ms(1))
            .with_rate_control(RateControl::Off)
            .with_min_rate(2.5)
            .with_hinted_plateau(ms(2))
            .with_forget_after(ms(3))
            .with_max_hold(ms(4))
            .with_no_hint_base(ms(5))
            .with_no_hint_max(ms(6))
            .with_failure_ratio(0.5)
            .with_minimum_throughput(7)
            .with_sampling_duration(ms(8))
            .with_probe_base(ms(9))
            .with_probe_max(ms(10))
            .with_token_pacing(false)
            .with_priority(Priority::Fifo)
            .with_ramp_guard(Some(guard));
        assert_eq!(c.release_spacing(), ms(1));
        assert_eq!(c.rate_control(), RateControl::Off);
        assert_eq!(c.min_rate(), 2.5);
        assert_eq!(c.hinted_plateau(), ms(2));
        assert_eq!(c.forget_after(), ms(3));
        assert_eq!(c.max_hold(), ms(4));
        assert_eq!(c.no_hint_base(), ms(5));
        assert_eq!(c.no_hint_max(), ms(6));
        assert_eq!(c.failure_ratio(), 0.5);
        assert_eq!(c.minimum_throughput(), 7);
        assert_eq!(c.sampling_duration(), ms(8));
        assert_eq!(c.probe_base(), ms(9));
        assert_eq!(c.probe_max(), ms(10));
        assert!(!c.token_pacing());
        assert_eq!(c.priority(), Priority::Fifo);
        assert_eq!(c.ramp_guard(), Some(guard));
        assert_eq!(c.with_ramp_guard(None).ramp_guard(), None);
    }

    #[test]
    fn the_defaults_are_unchanged() {
        let ms = Duration::from_millis;
        let c = GateConfig::default();
        assert_eq!(c.release_spacing(), ms(20));
        assert_eq!(c.rate_control(), RateControl::CUBIC);
        assert_eq!(c.min_rate(), 0.5);
        assert_eq!(c.hinted_plateau(), ms(10_000));
        assert_eq!(c.forget_after(), ms(30_000));
        assert_eq!(c.max_hold(), ms(120_000));
        assert_eq!((c.no_hint_base(), c.no_hint_max()), (ms(100), ms(5_000)));
        assert_eq!((c.failure_ratio(), c.minimum_throughput()), (0.8, 10));
        assert_eq!(c.sampling_duration(), ms(10_000));
        assert_eq!((c.probe_base(), c.probe_max()), (ms(500), ms(2_000)));
        assert!(c.token_pacing());
        assert_eq!(c.priority(), Priority::default());
        assert_eq!(c.ramp_guard(), None);
    }

    #[test]
    fn odd_rates_and_ratios_are_clamped_in_the_setters() {
        for odd in [f64::NAN, 0.0, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
            let c = GateConfig::default().with_min_rate(odd);
            assert_eq!(c.min_rate(), 0.5, "min_rate {odd}");
        }
        let c = GateConfig::default().with_failure_ratio(f64::NAN);
        assert_eq!(c.failure_ratio(), 0.8);
        // At or below 0, every failure counts as an outage, as at 0.
        assert_eq!(
            GateConfig::default()
                .with_failure_ratio(-1.0)
                .failure_ratio(),
            0.0
        );
        // Above 1 is documented (never trips) and kept.
        assert_eq!(
            GateConfig::default()
                .with_failure_ratio(2.0)
                .failure_ratio(),
            2.0
        );
        // The breaker needs at least one outcome to judge.
        let c = GateConfig::default().with_minimum_throughput(0);
        assert_eq!(c.minimum_throughput(), 1);
    }
}
