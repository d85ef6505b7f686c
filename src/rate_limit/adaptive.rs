//! The adaptive client-side sending rate: what the gate paces by once the server throttles.
//!
//! Fireworks does not promise a `Retry-After`, and its limits move. A gate that only closes on
//! a 429 and reopens later lets the whole backlog test the limit again; a client that learns a
//! *rate* sends just under the limit instead. This is that rate, as plain arithmetic on
//! instants (no clock, no I/O), so it is tested exactly and shared by a fleet
//! (`RedisStore` keeps the same curve in Redis).
//!
//! It is off until the first throttle, so a healthy client pays nothing, and it turns itself
//! off again once the server has been quiet for [`RateControl`]'s `forget_after` while the rate
//! was not holding anyone back.

use std::time::Duration;

use tokio::time::Instant;

/// How far apart two readings of one shared closure or cut may land and still be the same.
pub(crate) const ADOPT_TOLERANCE: Duration = Duration::from_millis(50);

/// How the client-side sending rate reacts to throttling (429s, hinted 503s).
///
/// Both curves cut the rate once per *wave* of throttles (the requests in flight together when
/// the server said stop), to `beta ×` the rate being sent at, and then grow it back until the
/// next throttle. Growth is capped at twice the rate actually sent, so a quiet client does not
/// bank a huge allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RateControl {
    /// No client-side rate: only the gate (closures on hints and backoffs, paced release).
    Off,
    /// CUBIC, as in the AWS SDKs' adaptive retry mode: after a cut from `W` the rate follows
    /// `scale × (t − K)³ + W` with `K = ∛(W × (1 − beta) / scale)`: back near `W` quickly,
    /// flat around it, then probing above it faster and faster. The default, by measurement
    /// (see the README's adaptive table): it reclaims a raised limit in seconds.
    Cubic {
        /// The cut: the new rate is `beta ×` the rate sent at (default 0.7).
        beta: f64,
        /// Growth, in requests per second per second³ (default 0.4).
        scale: f64,
    },
    /// Additive increase, multiplicative decrease: after a cut, the rate grows by `increase`
    /// requests per second, every second.
    Aimd {
        /// The cut: the new rate is `beta ×` the rate sent at (default 0.7).
        beta: f64,
        /// Growth, in requests per second per second (default 1).
        increase: f64,
    },
}

impl RateControl {
    /// CUBIC with AWS's constants (beta 0.7, scale 0.4).
    pub const CUBIC: RateControl = RateControl::Cubic {
        beta: 0.7,
        scale: 0.4,
    };

    /// AIMD with beta 0.7, growing 1 request per second, every second.
    pub const AIMD: RateControl = RateControl::Aimd {
        beta: 0.7,
        increase: 1.0,
    };

    fn beta(self) -> f64 {
        match self {
            RateControl::Off => 1.0,
            RateControl::Cubic { beta, .. } | RateControl::Aimd { beta, .. } => sane(beta, 0.7),
        }
    }

    /// The rate `since` after a cut from `w_max`, holding at `w_max` for `plateau` once back
    /// there before probing above it.
    fn curve(self, w_max: f64, since: Duration, plateau: Duration) -> f64 {
        let t = since.as_secs_f64();
        let plateau = plateau.as_secs_f64();
        // When the curve is back at `w_max`.
        let k = match self {
            RateControl::Off => return f64::INFINITY,
            RateControl::Cubic { scale, .. } => {
                (w_max * (1.0 - self.beta()) / sane(scale, 0.4)).cbrt()
            }
            RateControl::Aimd { increase, .. } => (1.0 - self.beta()) * w_max / sane(increase, 1.0),
        };
        let t = if t <= k {
            t
        } else if t <= k + plateau {
            k
        } else {
            t - plateau
        };
        match self {
            RateControl::Off => f64::INFINITY,
            RateControl::Cubic { scale, .. } => sane(scale, 0.4) * (t - k).powi(3) + w_max,
            RateControl::Aimd { increase, .. } => self.beta() * w_max + sane(increase, 1.0) * t,
        }
    }
}

impl Default for RateControl {
    fn default() -> Self {
        RateControl::CUBIC
    }
}

/// A finite positive `value`, or `fallback`.
fn sane(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        fallback
    }
}

/// How often the sent rate is sampled, and how much a sample weighs (AWS: 0.5 s, 0.8).
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
const SMOOTHING: f64 = 0.8;
/// Fewer sends than this in the sample are no measurement: use the fallback rate.
const MIN_SENDS_TO_MEASURE: u64 = 4;

/// The learned sending rate. Lives inside the store's lock; the send counter it samples is
/// kept by the store (one relaxed atomic add per request on the fast path).
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveRate {
    control: RateControl,
    min_rate: f64,
    fallback_rate: f64,
    forget_after: Duration,
    /// The rate being sent at when last cut (CUBIC's `W_max`).
    w_max: f64,
    /// When it was last cut; `None` while not adapting (never throttled, or forgotten since).
    cut_at: Option<Instant>,
    /// Throttles of requests sent before this are the wave already answered: the last cut
    /// here, or the moment a fleet's cut reached this process.
    wave_from: Option<Instant>,
    /// How long the curve holds at `w_max` before probing above it: after a throttle that
    /// carried a hint, a probe that fails holds the whole client for the hint, so it probes
    /// rarely (`GateConfig::hinted_plateau`); otherwise not at all.
    plateau: Duration,
    /// This process's part of a fleet's rate (1 alone).
    share: f64,
    /// The last cut's identity (0: none), and whether this process made it (then a fleet
    /// store publishes it, with its age; a cut adopted from the fleet is not published back).
    id: u64,
    own: bool,
    /// Smoothed sent rate, requests per second (0: not measured yet).
    measured: f64,
    sample_at: Instant,
    sample_sent: u64,
}

/// What a fleet shares: the curve (its `W_max`, how long ago it was cut, how long it holds at
/// `W_max` after a hint) and the cut's identity (a cut read again is the same cut, whatever
/// its reading's timing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Curve {
    pub(crate) w_max: f64,
    pub(crate) since_cut: Duration,
    pub(crate) plateau: Duration,
    pub(crate) id: u64,
}

impl AdaptiveRate {
    pub(crate) fn new(
        control: RateControl,
        min_rate: f64,
        fallback_rate: f64,
        forget_after: Duration,
        now: Instant,
    ) -> Self {
        AdaptiveRate {
            control,
            min_rate: sane(min_rate, 0.5),
            fallback_rate: sane(fallback_rate, 50.0),
            forget_after,
            w_max: 0.0,
            cut_at: None,
            wave_from: None,
            plateau: Duration::ZERO,
            share: 1.0,
            id: 0,
            own: false,
            measured: 0.0,
            sample_at: now,
            sample_sent: 0,
        }
    }

    /// Whether the gate paces by this rate.
    pub(crate) fn is_active(&self) -> bool {
        self.cut_at.is_some()
    }

    /// The send count the open sample started at (the store takes a sample on the send after
    /// it, to notice the end of an idle spell).
    pub(crate) fn sample_start(&self) -> u64 {
        self.sample_sent
    }

    /// Takes a sample of the send counter (`sent`: total sends so far) if one is due.
    pub(crate) fn sample(&mut self, now: Instant, sent: u64) {
        let elapsed = now.saturating_duration_since(self.sample_at);
        if elapsed < SAMPLE_EVERY {
            return;
        }
        let current = sent.saturating_sub(self.sample_sent) as f64 / elapsed.as_secs_f64();
        if elapsed > 2 * SAMPLE_EVERY && sent.saturating_sub(self.sample_sent) <= 1 {
            // The first send after an idle spell: the next sample starts here, so a burst is
            // measured as a burst and not averaged with the silence before it. The silence
            // itself is a measurement (a low rate, never "unmeasured"): the growth cap stays,
            // and a slow client is seen as slow.
            self.measured = SMOOTHING * current + (1.0 - SMOOTHING) * self.measured;
            self.sample_at = now;
            self.sample_sent = sent.saturating_sub(1);
            return;
        }
        self.measured = if self.measured == 0.0 {
            current
        } else {
            SMOOTHING * current + (1.0 - SMOOTHING) * self.measured
        };
        self.sample_at = now;
        self.sample_sent = sent;
    }

    /// The rate sent at right now, and whether it was measured: the smoothed rate, or the open
    /// sample when it has more to say (a burst that started since). A sample that reaches
    /// back more than a second may hide a burst after an idle spell (the lock-free path reads
    /// no clock per request): then the rate is at least the fallback, which is a guess about
    /// this process, not a measurement.
    fn sent_rate(&self, now: Instant, sent: u64) -> (f64, bool) {
        let in_sample = sent.saturating_sub(self.sample_sent);
        let reach = now.saturating_duration_since(self.sample_at);
        let open = in_sample as f64 / reach.max(Duration::from_millis(100)).as_secs_f64();
        let fresh =
            reach <= 2 * SAMPLE_EVERY && (self.measured > 0.0 || in_sample >= MIN_SENDS_TO_MEASURE);
        if !fresh {
            let guess = open.max(self.measured);
            return if guess >= self.fallback_rate {
                (guess, true)
            } else {
                (self.fallback_rate, false)
            };
        }
        if in_sample >= MIN_SENDS_TO_MEASURE {
            (self.measured.max(open), true)
        } else {
            (self.measured, true)
        }
    }

    /// A throttle of a request sent at `sent_at` (`None`: sent while nothing was restricted,
    /// so before adapting began). Cuts the rate once per wave; returns whether it did.
    pub(crate) fn throttled(&mut self, now: Instant, sent: u64, sent_at: Option<Instant>) -> bool {
        if self.control == RateControl::Off {
            return false;
        }
        if self.is_active() {
            let same_wave = match (sent_at, self.wave_from) {
                (Some(at), Some(cut)) => at < cut,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if same_wave {
                return false;
            }
        }
        // Adapting, the rate the gate allowed is what the server refused (what was measured
        // can be far lower after a closure, and cutting from it would spiral down). The first
        // time, what was being sent.
        let (sending, measured) = if self.is_active() {
            (self.rate(now), true)
        } else {
            self.sent_rate(now, sent)
        };
        // `w_max` is the fleet's rate: this process's part of it, scaled up (a guess is not a
        // part of anything: it stands for the fleet as it is).
        let fleet = if measured {
            sending / self.share
        } else {
            sending
        };
        self.w_max = fleet.max(self.min_rate);
        self.cut_at = Some(now);
        self.wave_from = Some(now);
        self.plateau = Duration::ZERO;
        self.id = fastrand::u64(1..);
        self.own = true;
        true
    }

    /// The last cut came with a server hint: hold at the limit found for a while before
    /// probing above it again.
    pub(crate) fn hold_after_hint(&mut self, plateau: Duration) {
        self.plateau = plateau;
    }

    /// The rate to pace by now, requests per second, for this process.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let Some(cut_at) = self.cut_at else {
            return f64::INFINITY;
        };
        let fleet = self.control.curve(
            self.w_max,
            now.saturating_duration_since(cut_at),
            self.plateau,
        );
        let mine = fleet * self.share;
        // Growth beyond the last known limit, and beyond twice what is actually sent, is an
        // allowance nobody uses. (Below that limit the curve alone decides: a quiet spell, a
        // closure, must not drag the rate down.)
        let cap = if self.measured > 0.0 {
            (2.0 * self.measured).max(self.w_max * self.share)
        } else {
            f64::INFINITY
        };
        // `min_rate` is the fleet's floor: this process's part of it.
        let rate = mine.min(cap).max(self.min_rate * self.share);
        if rate.is_finite() {
            rate
        } else {
            f64::MAX
        }
    }

    /// The gap between two paced sends now.
    pub(crate) fn spacing(&self, now: Instant) -> Duration {
        // An infinite rate (not adapting) is no gap; one too slow for a `Duration` is the longest.
        Duration::try_from_secs_f64(1.0 / self.rate(now)).unwrap_or(Duration::MAX)
    }

    /// Turns adapting off once the server has been quiet for `forget_after` and the rate is
    /// well above what is sent (nobody is held back by it). Returns whether it did.
    pub(crate) fn forget_if_quiet(&mut self, now: Instant) -> bool {
        let quiet = self
            .cut_at
            .is_some_and(|cut| now.saturating_duration_since(cut) >= self.forget_after);
        let unneeded = self.measured > 0.0
            && self.control.curve(
                self.w_max,
                now.saturating_duration_since(self.cut_at.unwrap_or(now)),
                self.plateau,
            ) * self.share
                >= 2.0 * self.measured;
        if quiet && unneeded {
            self.cut_at = None;
            return true;
        }
        false
    }

    /// The curve: the rate at the last cut and how long ago that was (what a fleet shares).
    pub(crate) fn curve(&self, now: Instant) -> Option<Curve> {
        let cut_at = self.cut_at?;
        Some(Curve {
            w_max: self.w_max,
            since_cut: now.saturating_duration_since(cut_at),
            plateau: self.plateau,
            id: self.id,
        })
    }

    /// The curve if this process made its cut (what a fleet store publishes), and it is not
    /// forgotten.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn own_curve(&self, now: Instant) -> Option<Curve> {
        self.curve(now).filter(|_| self.own)
    }

    /// Adopts a fleet's curve and this process's share of it (`1 / live processes`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn adopt(&mut self, now: Instant, curve: Option<Curve>, share: f64) {
        self.share = if share.is_finite() && share > 0.0 {
            share.min(1.0)
        } else {
            1.0
        };
        let Some(curve) = curve else { return };
        let usable = curve.w_max.is_finite() && curve.w_max > 0.0;
        // A cut older than `forget_after` is one this process forgot (or would have).
        if self.control == RateControl::Off || !usable || curve.since_cut >= self.forget_after {
            return;
        }
        // The same cut read again (this process's own, back from the fleet): only its plateau
        // may have grown (another process's hint in the same wave).
        if self.cut_at.is_some() && curve.id != 0 && curve.id == self.id {
            self.plateau = self.plateau.max(curve.plateau);
            return;
        }
        let cut_at = now.checked_sub(curve.since_cut).unwrap_or(now);
        // A newer cut (by any process) wins.
        let newer = self
            .cut_at
            .is_none_or(|mine| cut_at > mine + ADOPT_TOLERANCE);
        if newer {
            self.w_max = curve.w_max;
            self.cut_at = Some(cut_at);
            // This process sent at its old rate until now: those throttles are the same wave.
            self.wave_from = Some(now);
            self.plateau = curve.plateau;
            self.id = curve.id;
            self.own = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(control: RateControl, now: Instant) -> AdaptiveRate {
        AdaptiveRate::new(control, 0.5, 50.0, Duration::from_secs(30), now)
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn off_until_the_first_throttle_then_cut_from_the_measured_rate() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        assert!(!a.is_active());
        assert!(a.rate(t0).is_infinite());
        assert_eq!(a.spacing(t0), Duration::ZERO);
        // 40 sends per second for 2 s.
        for i in 1..=4 {
            a.sample(t0 + secs(0.5 * i as f64), 20 * i);
        }
        assert!((a.measured - 40.0).abs() < 1e-9);
        assert!(a.throttled(t0 + secs(2.0), 80, None));
        let rate = a.rate(t0 + secs(2.0));
        assert!((rate - 28.0).abs() < 1e-9, "0.7 × 40, got {rate}");
    }

    #[test]
    fn cubic_is_back_at_w_max_after_k_seconds_then_probes_above() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        for i in 1..=4 {
            a.sample(t0 + secs(0.5 * i as f64), 25 * i);
        }
        let cut = t0 + secs(2.0);
        a.throttled(cut, 100, None);
        // W = 50: K = ∛(50 × 0.3 / 0.4) = ∛37.5 ≈ 3.347 s.
        let k = 37.5f64.cbrt();
        assert!((a.rate(cut + secs(k)) - 50.0).abs() < 1e-6);
        assert!(a.rate(cut + secs(k / 2.0)) < 50.0);
        // Growth is capped at twice the measured rate (50/s here): probing, not bursting.
        assert!((a.rate(cut + secs(k + 10.0)) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn one_cut_per_wave() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.sample(t0 + secs(1.0), 40);
        let t1 = t0 + secs(1.0);
        assert!(a.throttled(t1, 40, None));
        let after_first = a.rate(t1);
        // Requests sent before the cut (or on the unrestricted path) are the same wave.
        assert!(!a.throttled(t1 + secs(0.05), 45, Some(t1 - secs(0.01))));
        assert!(!a.throttled(t1 + secs(0.05), 45, None));
        assert_eq!(a.rate(t1), after_first);
        // One sent after the cut that is throttled again starts a new wave.
        assert!(a.throttled(t1 + secs(0.2), 50, Some(t1 + secs(0.1))));
        assert!(a.rate(t1 + secs(0.2)) < after_first);
    }

    #[test]
    fn without_a_measurement_the_fallback_rate_is_cut() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.throttled(t0, 0, None);
        assert!((a.rate(t0) - 35.0).abs() < 1e-9);
    }

    #[test]
    fn a_burst_after_an_idle_spell_is_not_diluted_by_it() {
        // Created, idle two minutes, then 11 sends at 80/s and a 429: the open sample reaches
        // back over the idle spell, so it says nothing about the burst; the fallback stands.
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        let t1 = t0 + secs(120.0 + 11.0 / 80.0);
        assert!(a.throttled(t1, 11, None));
        assert!(
            (a.rate(t1) - 35.0).abs() < 1e-9,
            "0.7 × the fallback, got {}",
            a.rate(t1)
        );
        // As a fleet's member, the fallback is not scaled up by the share: it is a guess.
        let mut member = adaptive(RateControl::CUBIC, t0);
        member.adopt(t0, None, 0.25);
        member.throttled(t1, 11, None);
        assert!((member.curve(t1).unwrap().w_max - 50.0).abs() < 1e-9);
        // A measured burst is used as measured.
        let mut busy = adaptive(RateControl::CUBIC, t0);
        busy.sample(t0 + secs(120.0), 0);
        busy.throttled(t0 + secs(121.0), 80, None);
        assert!((busy.rate(t0 + secs(121.0)) - 56.0).abs() < 1e-9);
    }

    #[test]
    fn after_a_hinted_throttle_the_rate_holds_at_the_limit_before_probing() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.sample(t0 + secs(1.0), 50);
        let cut = t0 + secs(1.0);
        a.throttled(cut, 50, None);
        a.hold_after_hint(Duration::from_secs(10));
        let k = 37.5f64.cbrt();
        // Back at the limit after K, and held there for the plateau...
        for t in [k, k + 5.0, k + 9.9] {
            assert!((a.rate(cut + secs(t)) - 50.0).abs() < 1e-6, "at {t}");
        }
        // ...then probing as CUBIC does.
        assert!(a.rate(cut + secs(k + 12.0)) > 50.0);
        // A cut without a hint probes at once.
        assert!(a.throttled(cut + secs(30.0), 60, Some(cut + secs(29.0))));
        assert_eq!(a.plateau, Duration::ZERO);
    }

    #[test]
    fn the_growth_cap_survives_an_idle_gap() {
        // 25/s for 2 s, a cut, then a 3 s gap and one request: the cap (twice what is sent,
        // or the last known limit) must not vanish because the gap reset the measurement.
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        for i in 1..=4 {
            a.sample(t0 + secs(0.5 * i as f64), 12 * i + i / 2);
        }
        let cut = t0 + secs(2.0);
        assert!(a.throttled(cut, 50, None));
        let capped = a.rate(cut + secs(20.0));
        assert!(capped <= 60.0, "capped before the gap: {capped}");
        let after_gap = cut + secs(3.0);
        a.sample(after_gap, 51);
        let rate = a.rate(after_gap + secs(17.0));
        assert!(
            rate <= capped + 1e-9,
            "the cap vanished after an idle gap: {rate}"
        );
    }

    #[test]
    fn a_client_sending_under_one_request_a_second_is_forgotten() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.sample(t0 + secs(1.0), 40);
        a.throttled(t0 + secs(1.0), 40, None);
        // One request every 2 s from then on, sampled as the gate does (before it is
        // counted): every sample follows an idle gap.
        let mut forgot = false;
        for i in 1..=40u32 {
            let now = t0 + secs(1.0 + 2.0 * f64::from(i));
            a.sample(now, 39 + u64::from(i));
            forgot |= a.forget_if_quiet(now);
        }
        assert!(
            forgot,
            "a quiet, slow client is forgotten after forget_after: {a:?}"
        );
    }

    #[test]
    fn min_rate_is_the_fleets_floor() {
        // 40 processes: each paces at its share of the floor, not at the whole floor.
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.adopt(
            t0,
            Some(Curve {
                w_max: 0.5,
                since_cut: Duration::ZERO,
                plateau: Duration::ZERO,
                id: 7,
            }),
            1.0 / 40.0,
        );
        let rate = a.rate(t0);
        assert!(
            (rate - 0.5 / 40.0).abs() < 1e-9,
            "the fleet's floor is min_rate: {rate}"
        );
    }

    #[test]
    fn aimd_grows_linearly() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::AIMD, t0);
        a.sample(t0 + secs(1.0), 100);
        a.throttled(t0 + secs(1.0), 100, None);
        let t1 = t0 + secs(1.0);
        assert!((a.rate(t1) - 70.0).abs() < 1e-9);
        assert!((a.rate(t1 + secs(10.0)) - 80.0).abs() < 1e-9);
    }

    #[test]
    fn off_never_adapts() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::Off, t0);
        assert!(!a.throttled(t0, 100, None));
        assert!(!a.is_active());
    }

    #[test]
    fn forgets_after_a_quiet_spell_when_nobody_is_held_back() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.sample(t0 + secs(1.0), 40);
        a.throttled(t0 + secs(1.0), 40, None);
        assert!(!a.forget_if_quiet(t0 + secs(10.0)), "not quiet long enough");
        // Demand fell to 5/s; 31 s after the cut the curve is far above it.
        a.sample(t0 + secs(31.0), 40 + 150);
        assert!(a.forget_if_quiet(t0 + secs(32.0)));
        assert!(!a.is_active());
    }

    #[test]
    fn a_fleet_share_scales_the_rate_and_a_newer_cut_is_adopted() {
        let t0 = Instant::now();
        let mut a = adaptive(RateControl::CUBIC, t0);
        a.adopt(
            t0,
            Some(Curve {
                w_max: 100.0,
                since_cut: Duration::ZERO,
                plateau: Duration::ZERO,
                id: 7,
            }),
            0.25,
        );
        assert!(a.is_active());
        assert!((a.rate(t0) - 17.5).abs() < 1e-9, "0.7 × 100 / 4");
        // This process's own throttle is recorded as the fleet's rate at the cut.
        a.sample(t0 + secs(0.5), 8);
        let t1 = t0 + secs(0.5);
        assert!(a.throttled(t1, 8, Some(t1)));
        let w = a.curve(t1).map(|c| c.w_max).unwrap_or_default();
        assert!(w <= 100.0 && w > 0.0, "{w}");
    }

    /// One step of an arbitrary history.
    #[derive(Debug, Clone)]
    enum Step {
        Wait(u64),
        Send(u64),
        Throttle {
            sent_ago_ms: Option<u64>,
        },
        Adopt {
            w_max: f64,
            since_ms: u64,
            members: u32,
        },
        Hint(u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..5_000_000).prop_map(Step::Wait),
            (0u64..10_000).prop_map(Step::Send),
            proptest::option::of(0u64..10_000).prop_map(|a| Step::Throttle { sent_ago_ms: a }),
            (
                prop_oneof![
                    any::<f64>(),
                    Just(f64::NAN),
                    Just(f64::INFINITY),
                    Just(0.0),
                    0.001f64..1e6
                ],
                0u64..u64::MAX / 4,
                0u32..1000
            )
                .prop_map(|(w_max, since_ms, members)| Step::Adopt {
                    w_max,
                    since_ms,
                    members
                }),
            (0u64..1_000_000).prop_map(Step::Hint),
        ]
    }

    proptest::proptest! {
        /// Whatever the history (sends, throttles, fleet curves with garbage in them, hours of
        /// idling), the rate stays a usable pace: positive, at least `min_rate` when
        /// adapting, and its spacing never panics.
        #[test]
        fn any_history_leaves_a_usable_rate(
            control in proptest::sample::select(vec![RateControl::CUBIC, RateControl::AIMD, RateControl::Off]),
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut sent = 0u64;
            let mut a = AdaptiveRate::new(control, 0.5, 50.0, Duration::from_secs(30), t0);
            for step in steps {
                match step {
                    Step::Wait(us) => now += Duration::from_micros(us),
                    Step::Send(n) => {
                        sent += n;
                        a.sample(now, sent);
                    }
                    Step::Throttle { sent_ago_ms } => {
                        let sent_at = sent_ago_ms.map(|ms| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now));
                        a.throttled(now, sent, sent_at);
                    }
                    Step::Adopt { w_max, since_ms, members } => a.adopt(
                        now,
                        Some(Curve { w_max, since_cut: Duration::from_millis(since_ms), plateau: Duration::ZERO, id: since_ms }),
                        1.0 / f64::from(members),
                    ),
                    Step::Hint(ms) => a.hold_after_hint(Duration::from_millis(ms)),
                }
                a.forget_if_quiet(now);
                let rate = a.rate(now);
                proptest::prop_assert!(rate > 0.0, "{rate}");
                if a.is_active() {
                    proptest::prop_assert!(rate.is_finite() && rate >= 0.5 * a.share, "{rate} {a:?}");
                }
                let _ = a.spacing(now);
            }
        }
    }

    #[test]
    fn garbage_knobs_fall_back_to_defaults() {
        let t0 = Instant::now();
        let control = RateControl::Cubic {
            beta: f64::NAN,
            scale: -1.0,
        };
        let mut a = AdaptiveRate::new(control, f64::INFINITY, 0.0, Duration::ZERO, t0);
        a.throttled(t0, 0, None);
        let rate = a.rate(t0);
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        assert!(a.spacing(t0) > Duration::ZERO);
    }
}
