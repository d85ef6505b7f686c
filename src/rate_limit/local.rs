//! The in-memory shared state: one per client, shared by every clone.

use std::time::Duration;

use crate::sync::{AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering};

use tokio::time::Instant;

use super::{
    adaptive::{AdaptiveRate, Curve},
    bucket::RequestBucket,
    Admission, Probe, RateControl, RateLimitStore, Reservation, Signal, Ticket, Wake,
};
use crate::{observe, time};

/// The knobs of the in-memory state. Every wait has a cap.
///
/// Set some knobs and keep the rest: `GateConfig { max_hold, ..GateConfig::default() }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// Gap between two requests released after the gate reopens (default 20 ms, 50 per
    /// second), so they do not reach the server as a herd, while no adaptive rate is
    /// learned yet (after a circuit-breaker spell; with [`RateControl::Off`]). Until the held
    /// backlog is released, newcomers queue behind it at this pace too.
    pub release_spacing: Duration,
    /// How the client-side sending rate adapts to throttling (default
    /// [`RateControl::CUBIC`]). Off until the first 429: a healthy client pays nothing.
    pub rate_control: RateControl,
    /// The lowest adaptive rate, requests per second (default 0.5).
    pub min_rate: f64,
    /// After a 429 *with* a hint, how long the adaptive rate holds at the limit it found
    /// before probing above it again (default 10 s): every failed probe then holds the whole
    /// client for the hint's wait, so probing is rare. Without a hint it probes at once.
    pub hinted_plateau: Duration,
    /// Adapting stops once no throttle came for this long and the learned rate is well above
    /// what the client sends (default 30 s): the lock-free path is back.
    pub forget_after: Duration,
    /// The longest the gate stays closed on one server hint (default 120 s, the backoff's
    /// `max_server_wait`). A longer hint holds the gate this long. It also caps the refill
    /// interval a quota reading sets.
    pub max_hold: Duration,
    /// How long a 429 without any hint closes the gate at first (default 100 ms); doubled on
    /// each 429 in a row, up to `no_hint_max`, reset by any success.
    pub no_hint_base: Duration,
    /// The cap on the no-hint closure (default 5 s).
    pub no_hint_max: Duration,
    /// Failures in a row (5xx without hint, broken connections) that trip the circuit
    /// breaker (default 3).
    pub failure_threshold: u32,
    /// How long the breaker holds everyone before the first probe (default 500 ms); doubled
    /// after each failed probe up to `probe_max`.
    pub probe_base: Duration,
    /// The cap on the time between probes (default 2 s): recovery is noticed within it.
    pub probe_max: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            release_spacing: Duration::from_millis(20),
            rate_control: RateControl::default(),
            min_rate: 0.5,
            forget_after: Duration::from_secs(30),
            hinted_plateau: Duration::from_secs(10),
            max_hold: Duration::from_secs(120),
            no_hint_base: Duration::from_millis(100),
            no_hint_max: Duration::from_secs(5),
            failure_threshold: 3,
            probe_base: Duration::from_millis(500),
            probe_max: Duration::from_secs(2),
        }
    }
}

/// How far apart two readings of one shared closure or cut may land and still be the same.
pub(crate) const ADOPT_TOLERANCE: Duration = Duration::from_millis(50);

/// The in-memory [`RateLimitStore`].
///
/// The healthy path is one atomic load per request and one per response: the mutex is taken
/// only while the server has said something (a 429, a failure) that is not yet forgotten.
#[derive(Debug)]
pub struct LocalStore {
    config: GateConfig,
    /// `false` while nothing restricts sending and there is nothing to forget: the fast path.
    restricted: AtomicBool,
    /// Requests sent so far: the adaptive rate's measurement (one relaxed add per request).
    sent: AtomicU64,
    /// The send count the adaptive rate's open sample started at (mirrored for the lock-free
    /// path: the send after it samples, so the end of an idle spell is noticed).
    sample_start: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    closed_until: Option<Instant>,
    next_slot: Option<Instant>,
    /// The widest spacing any slot of the queue up to `next_slot` was given.
    queue_spacing: Duration,
    epoch: u64,
    throttle_streak: u32,
    failure_streak: u32,
    breaker: Breaker,
    probe_wait: Duration,
    probe_turns: u64,
    adaptive: AdaptiveRate,
    /// The server's request quota, mirrored while a response said it is spent.
    quota: Option<RequestBucket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed,
    Open {
        until: Instant,
    },
    /// `probe`: the turn in flight, if any.
    HalfOpen {
        probe: Option<u64>,
    },
}

impl Default for LocalStore {
    fn default() -> Self {
        LocalStore::new(GateConfig::default())
    }
}

impl LocalStore {
    /// A fresh state with these knobs.
    pub fn new(config: GateConfig) -> Self {
        let fallback_rate = 1.0 / config.release_spacing.as_secs_f64().max(1e-3);
        LocalStore {
            config,
            restricted: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            sample_start: AtomicU64::new(0),
            state: Mutex::new(State {
                closed_until: None,
                next_slot: None,
                queue_spacing: config.release_spacing,
                epoch: 0,
                throttle_streak: 0,
                failure_streak: 0,
                breaker: Breaker::Closed,
                probe_wait: config.probe_base,
                probe_turns: 0,
                adaptive: AdaptiveRate::new(
                    config.rate_control,
                    config.min_rate,
                    fallback_rate,
                    config.forget_after,
                    Instant::now(),
                ),
                quota: None,
            }),
        }
    }

    /// The knobs.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// When the gate reopens, if it is closed at `now` by a server hint or a backoff, or
    /// holds the next request because the server's request quota is spent until then.
    pub fn closed_until(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        let quota = state.quota.as_ref().map(|q| q.ready_at(now));
        state.closed_until.max(quota).filter(|&t| t > now)
    }

    /// The adaptive sending rate the gate paces by at `now`, requests per second, or `None`
    /// while nothing is being adapted (no throttling seen, or forgotten since).
    pub fn paced_rate(&self, now: Instant) -> Option<f64> {
        let state = self.lock();
        state.adaptive.is_active().then(|| state.adaptive.rate(now))
    }

    /// Whether the circuit breaker is holding requests (open or half-open).
    pub fn breaker_engaged(&self) -> bool {
        self.lock().breaker != Breaker::Closed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is a few stores.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next paced slot at or after `start`, or `TooLate` (nothing reserved) when it would
    /// come after the deadline.
    fn slot_after(
        &self,
        state: &mut State,
        now: Instant,
        start: Instant,
        deadline: Option<Instant>,
    ) -> Admission {
        let mut at = state.next_slot.map_or(start, |s| s.max(start));
        if let Some(quota) = &state.quota {
            at = at.max(quota.ready_at(now));
        }
        if deadline.is_some_and(|d| d < at) {
            return Admission::TooLate { wait: at - now };
        }
        let spacing = if state.adaptive.is_active() {
            state.adaptive.spacing(now)
        } else {
            self.config.release_spacing
        };
        let queued = state.next_slot.is_some_and(|s| s > now);
        state.queue_spacing = if queued {
            state.queue_spacing.max(spacing)
        } else {
            spacing
        };
        state.next_slot = Some(time::after(at, spacing));
        if let Some(quota) = &mut state.quota {
            if at <= now {
                quota.take(now);
            } else {
                quota.reserve(now, state.epoch);
            }
        }
        // A queue exists: newcomers must see it, not the lock-free fast path.
        self.restricted.store(true, Ordering::Release);
        if at <= now {
            return Admission::Go;
        }
        Admission::Wait(Reservation {
            at,
            epoch: state.epoch,
        })
    }

    /// When the adaptive rate has grown well past the pace the waiting queue was given, voids
    /// the queue's slots (the caller wakes the waiters) so it drains at the new rate: slots
    /// handed out while the rate was low must not keep it low.
    fn respace_if_faster(&self, state: &mut State, now: Instant) -> bool {
        let queued = state.next_slot.is_some_and(|s| s > now);
        if !queued || !state.adaptive.is_active() {
            return false;
        }
        let spacing = state.adaptive.spacing(now);
        // 15 % faster: the queue's pace would hold the sending rate back noticeably.
        if spacing.as_secs_f64() < 0.87 * state.queue_spacing.as_secs_f64() {
            state.epoch += 1;
            state.next_slot = None;
            return true;
        }
        false
    }

    /// Clears the fast-path flag when nothing is left to enforce or forget.
    fn settle(&self, state: &mut State, now: Instant) {
        if state.closed_until.is_some_and(|t| t <= now) {
            state.closed_until = None;
        }
        if state.next_slot.is_some_and(|t| t <= now) {
            state.next_slot = None;
        }
        if state.adaptive.forget_if_quiet(now) {
            observe::rate_forgotten();
        }
        if state.quota.is_some_and(|q| q.is_full(now)) {
            state.quota = None;
        }
        let idle = state.closed_until.is_none()
            && state.quota.is_none()
            && state.next_slot.is_none()
            && !state.adaptive.is_active()
            && state.breaker == Breaker::Closed
            && state.throttle_streak == 0
            && state.failure_streak == 0;
        if idle {
            self.restricted.store(false, Ordering::Release);
        }
    }

    /// Cuts the adaptive rate if this throttle starts a new wave; returns the rate it was cut
    /// from (the fleet's `W_max`) if it did.
    fn cut_rate(&self, state: &mut State, now: Instant, sent_at: Option<Instant>) -> Option<f64> {
        let sent = self.sent();
        self.sample(state, now, sent);
        if !state.adaptive.throttled(now, sent, sent_at) {
            return None;
        }
        let w_max = state.adaptive.curve(now).map_or(0.0, |c| c.w_max);
        observe::rate_cut(w_max, state.adaptive.rate(now));
        // From now on every request takes a paced slot; slots given so far are void, so the
        // queue restarts at the new rate instead of leaving at the old one.
        state.next_slot = None;
        state.epoch += 1;
        self.restricted.store(true, Ordering::Release);
        Some(w_max)
    }

    /// Closes the gate until `until`; returns it if that is later than before.
    fn close(&self, state: &mut State, until: Instant) -> Option<Instant> {
        self.restricted.store(true, Ordering::Release);
        if state.closed_until.is_some_and(|t| t >= until) {
            return None;
        }
        state.closed_until = Some(until);
        state.epoch += 1;
        // Every slot given so far is void: the queue starts again at the reopening, not
        // behind slots nobody will use.
        state.next_slot = None;
        Some(until)
    }
}

impl LocalStore {
    /// Counts a send; every 32nd one on the lock-free path samples the rate (so a first
    /// throttle knows what was being sent), and so does the first of a new sample (so a
    /// burst after an idle spell is measured from its start).
    fn count_send(&self, now: Option<Instant>) {
        let sent = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if sent % 32 == 0 || sent == self.sample_start.load(Ordering::Relaxed) + 1 {
            if let Ok(mut state) = self.state.try_lock() {
                self.sample(&mut state, now.unwrap_or_else(Instant::now), sent);
            }
        }
    }

    fn sample(&self, state: &mut State, now: Instant, sent: u64) {
        state.adaptive.sample(now, sent);
        self.sample_start
            .store(state.adaptive.sample_start(), Ordering::Relaxed);
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn decide(&self, now: Instant, ticket: Ticket, deadline: Option<Instant>) -> Admission {
        let mut state = self.lock();
        let sent = self.sent();
        self.sample(&mut state, now, sent);
        let epoch = state.epoch;
        if let Some(quota) = &mut state.quota {
            quota.sync(epoch);
        }
        match state.breaker {
            Breaker::Open { until } if now < until => return Admission::Held { recheck: until },
            Breaker::Open { .. } | Breaker::HalfOpen { probe: None } => {
                state.probe_turns += 1;
                state.breaker = Breaker::HalfOpen {
                    probe: Some(state.probe_turns),
                };
                return Admission::Probe(Probe(state.probe_turns));
            }
            Breaker::HalfOpen { probe: Some(_) } => {
                return Admission::Held {
                    recheck: time::after(now, self.config.probe_max),
                }
            }
            Breaker::Closed => {}
        }
        if let Some(until) = state.closed_until.filter(|&t| t > now) {
            return self.slot_after(&mut state, now, until, deadline);
        }
        let admission = match ticket {
            // While held requests are being released, a newcomer queues behind them: first
            // in, first out, and the server sees one paced stream instead of the released
            // backlog plus every new arrival at once.
            Ticket::New if state.next_slot.is_some_and(|s| s > now) => {
                self.slot_after(&mut state, now, now, deadline)
            }
            // Adapting: every request takes a slot at the learned rate.
            Ticket::New if state.adaptive.is_active() => {
                self.slot_after(&mut state, now, now, deadline)
            }
            // The server's quota is spent: one request per refill interval.
            Ticket::New if state.quota.is_some_and(|q| q.ready_at(now) > now) => {
                self.slot_after(&mut state, now, now, deadline)
            }
            Ticket::New => {
                if let Some(quota) = &mut state.quota {
                    quota.take(now);
                }
                Admission::Go
            }
            Ticket::Reserved(r) if r.epoch == state.epoch => {
                if let Some(quota) = &mut state.quota {
                    quota.used(now, r.epoch);
                }
                Admission::Go
            }
            // Waited, and the gate closed again meanwhile (or the breaker held it): take a
            // paced slot so the waiting crowd does not leave as a herd.
            Ticket::Reserved(_) | Ticket::Held => self.slot_after(&mut state, now, now, deadline),
        };
        self.settle(&mut state, now);
        admission
    }

    /// Adopts what a fleet store read: the gate closed for `closed_for` more (if longer than
    /// here), the fleet's adaptive curve, and this process's share of its rate.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn adopt(
        &self,
        now: Instant,
        closed_for: Option<Duration>,
        curve: Option<Curve>,
        share: f64,
    ) {
        let mut state = self.lock();
        if let Some(wait) = closed_for.filter(|w| !w.is_zero()) {
            let until = time::after(now, wait.min(self.config.max_hold));
            // The same closure read again lands a few milliseconds off: only a later one
            // closes (and voids the slots given meanwhile).
            let known = state
                .closed_until
                .is_some_and(|t| t > now && until <= time::after(t, ADOPT_TOLERANCE));
            if !known {
                self.close(&mut state, until);
            }
        }
        let was_active = state.adaptive.is_active();
        state.adaptive.adopt(now, curve, share);
        if state.adaptive.is_active() {
            self.restricted.store(true, Ordering::Release);
        }
        if !was_active && state.adaptive.is_active() {
            observe::rate_cut(curve.map_or(0.0, |c| c.w_max), state.adaptive.rate(now));
        }
        self.settle(&mut state, now);
    }
}

impl RateLimitStore for LocalStore {
    fn admit(&self, now: Instant, ticket: Ticket, deadline: Option<Instant>) -> Admission {
        if ticket == Ticket::New && !self.restricted.load(Ordering::Acquire) {
            self.count_send(Some(now));
            return Admission::Go;
        }
        let admission = self.decide(now, ticket, deadline);
        if matches!(admission, Admission::Go | Admission::Probe(_)) {
            self.count_send(Some(now));
        }
        admission
    }

    fn admit_unrestricted(&self) -> bool {
        if self.restricted.load(Ordering::Acquire) {
            return false;
        }
        self.count_send(None);
        true
    }

    fn record(&self, now: Instant, signal: Signal, probe: Option<Probe>) -> Wake {
        self.record_sent(now, signal, probe, None)
    }

    fn record_sent(
        &self,
        now: Instant,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Wake {
        self.learn(now, signal, probe, sent_at).0
    }

    fn is_unrestricted(&self) -> bool {
        !self.restricted.load(Ordering::Acquire)
    }

    fn release_probe(&self, probe: Probe) -> Wake {
        let mut state = self.lock();
        if state.breaker
            == (Breaker::HalfOpen {
                probe: Some(probe.0),
            })
        {
            state.breaker = Breaker::HalfOpen { probe: None };
            return Wake::All;
        }
        Wake::No
    }
}

/// What one outcome taught the state that a fleet must hear of.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Learned {
    /// The gate closed (or its closure was extended) until then.
    pub(crate) closed_until: Option<Instant>,
    /// The adaptive rate was cut; the fleet's rate at the cut.
    pub(crate) cut: Option<f64>,
}

impl Learned {
    /// Whether there is anything to tell.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_empty(&self) -> bool {
        self.closed_until.is_none() && self.cut.is_none()
    }

    /// Adds `later` to what is still to be told: the latest closure, the latest cut.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn merge(&mut self, later: Learned) {
        self.closed_until = self.closed_until.max(later.closed_until);
        self.cut = later.cut.or(self.cut);
    }
}

impl LocalStore {
    /// [`record_sent`](RateLimitStore::record_sent), also saying what changed that a fleet
    /// store publishes.
    pub(crate) fn learn(
        &self,
        now: Instant,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> (Wake, Learned) {
        let mut learned = Learned::default();
        let quiet = matches!(signal, Signal::Healthy | Signal::Neutral);
        if quiet && probe.is_none() && !self.restricted.load(Ordering::Acquire) {
            return (Wake::No, learned);
        }
        let mut state = self.lock();
        let mut wake = Wake::No;
        let cfg = &self.config;
        // Only the turn in flight speaks as the probe; a stale one is an ordinary request.
        let current_probe =
            probe.is_some_and(|p| state.breaker == Breaker::HalfOpen { probe: Some(p.0) });
        match signal {
            Signal::Healthy | Signal::Exhausted { .. } | Signal::Throttled { .. } => {
                // The server answered: it is up. Close the breaker, forget failures.
                state.failure_streak = 0;
                if state.breaker != Breaker::Closed {
                    state.breaker = Breaker::Closed;
                    state.probe_wait = cfg.probe_base;
                    wake = Wake::All;
                }
            }
            Signal::Failing => {
                state.failure_streak = state.failure_streak.saturating_add(1);
                self.restricted.store(true, Ordering::Release);
                let trip = match state.breaker {
                    Breaker::HalfOpen { .. } if current_probe => true,
                    Breaker::Closed => state.failure_streak >= cfg.failure_threshold,
                    _ => false,
                };
                if trip {
                    if state.breaker == Breaker::Closed {
                        state.probe_wait = cfg.probe_base;
                    }
                    state.breaker = Breaker::Open {
                        until: time::after(now, state.probe_wait),
                    };
                    state.probe_wait = (state.probe_wait * 2).min(cfg.probe_max);
                    observe::breaker_tripped(state.failure_streak);
                }
            }
            Signal::Neutral => {
                if current_probe {
                    state.breaker = Breaker::HalfOpen { probe: None };
                    wake = Wake::All;
                }
            }
        }
        if let Signal::Throttled { hint } = signal {
            let queued = state.next_slot.is_some_and(|s| s > now);
            learned.cut = self.cut_rate(&mut state, now, sent_at);
            if learned.cut.is_some() && queued {
                // The voided slots' holders re-queue at the new rate.
                wake = Wake::All;
            }
            if hint.is_some() {
                state.adaptive.hold_after_hint(cfg.hinted_plateau);
            }
        }
        match signal {
            Signal::Healthy => state.throttle_streak = 0,
            // The quota is a continuously refilling bucket: mirror it and pace by it, rather
            // than close the gate until it is full again.
            Signal::Exhausted(quota) => {
                let epoch = state.epoch;
                match &mut state.quota {
                    Some(bucket) => {
                        bucket.sync(epoch);
                        bucket.learn(now, quota, cfg.max_hold);
                    }
                    None => {
                        state.quota = RequestBucket::new(now, quota, cfg.max_hold, epoch);
                        if let Some(bucket) = &state.quota {
                            observe::gate_closed(bucket.interval(), true);
                            self.restricted.store(true, Ordering::Release);
                        }
                    }
                }
            }
            // A 429 with no hint while the gate is already closed is the same wave (requests
            // that were in flight together): it neither doubles nor extends the closure. The
            // backoff doubles only for 429s that come after the gate reopened.
            Signal::Throttled { hint: None } if state.closed_until.is_some_and(|t| t > now) => {}
            Signal::Throttled { hint } => {
                let wait = match hint {
                    Some(hint) => hint.min(cfg.max_hold),
                    None => {
                        let doubling = state.throttle_streak.min(16);
                        (cfg.no_hint_base * 2u32.pow(doubling)).min(cfg.no_hint_max)
                    }
                };
                state.throttle_streak = state.throttle_streak.saturating_add(1);
                observe::gate_closed(wait, hint.is_some());
                learned.closed_until = self.close(&mut state, time::after(now, wait));
            }
            Signal::Failing | Signal::Neutral => {}
        }
        if self.respace_if_faster(&mut state, now) {
            wake = Wake::All;
        }
        self.settle(&mut state, now);
        (wake, learned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A 429 hinting `n` milliseconds.
    fn hinted(n: u64) -> Signal {
        Signal::Throttled { hint: Some(ms(n)) }
    }

    #[test]
    fn healthy_path_stays_unlocked_and_open() {
        let s = LocalStore::default();
        let now = Instant::now();
        assert_eq!(s.admit(now, Ticket::New, None), Admission::Go);
        assert_eq!(s.record(now, Signal::Healthy, None), Wake::No);
        assert!(!s.restricted.load(Ordering::Relaxed));
    }

    /// The gate alone, without the adaptive rate.
    fn gate_only() -> LocalStore {
        LocalStore::new(GateConfig {
            rate_control: RateControl::Off,
            ..GateConfig::default()
        })
    }

    #[test]
    fn a_throttle_paces_every_request_at_the_learned_rate_until_forgotten() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        // 40 requests a second for a second, on the lock-free path.
        for i in 0..40 {
            assert_eq!(s.admit(t0 + ms(25 * i), Ticket::New, None), Admission::Go);
        }
        let t1 = t0 + ms(1000);
        s.record_sent(t1, Signal::Throttled { hint: None }, None, None);
        let rate = s.paced_rate(t1).expect("adapting");
        assert!((rate - 28.0).abs() < 1.5, "about 0.7 × 40/s, got {rate}");
        // The no-hint closure (100 ms) holds everyone, then each request gets its own slot,
        // 1/rate apart.
        let slots: Vec<Instant> = (0..3)
            .map(|_| match s.admit(t1 + ms(1), Ticket::New, None) {
                Admission::Wait(r) => r.at,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(slots[0], t1 + ms(100));
        let gap = (slots[2] - slots[1]).as_secs_f64();
        assert!((gap - 1.0 / rate).abs() < 0.002, "gap {gap}");
        // Later, while adapting, a newcomer still gets a slot rather than going at once.
        let t2 = t1 + ms(2000);
        assert_eq!(s.admit(t2, Ticket::New, None), Admission::Go);
        assert!(matches!(s.admit(t2, Ticket::New, None), Admission::Wait(_)));
        assert!(!s.is_unrestricted());
        // 40 s of quiet at a low demand: forgotten, the lock-free path is back.
        let t3 = t1 + Duration::from_secs(40);
        for i in 0..4 {
            s.admit(t3 + ms(600 * i), Ticket::New, None);
        }
        assert_eq!(s.paced_rate(t3 + ms(2000)), None);
        s.record(t3 + ms(3000), Signal::Healthy, None);
        assert!(s.is_unrestricted());
    }

    #[test]
    fn a_burst_after_an_idle_spell_is_measured_from_its_start() {
        let s = LocalStore::default();
        let t0 = Instant::now() + Duration::from_secs(120);
        // Idle for two minutes, then 11 sends at 80/s on the lock-free path, then a 429.
        for i in 0..11 {
            assert_eq!(
                s.admit(t0 + Duration::from_micros(12_500 * i), Ticket::New, None),
                Admission::Go
            );
        }
        let t1 = t0 + ms(140);
        s.record_sent(t1, Signal::Throttled { hint: None }, None, None);
        let rate = s.paced_rate(t1).unwrap_or_default();
        assert!(
            (50.0..=62.0).contains(&rate),
            "about 0.7 × 80/s, got {rate}"
        );
    }

    #[test]
    fn throttles_of_one_wave_cut_the_rate_once() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        for i in 0..50 {
            s.admit(t0 + ms(20 * i), Ticket::New, None);
        }
        let t1 = t0 + ms(1000);
        s.record_sent(t1, Signal::Throttled { hint: None }, None, None);
        let first = s.paced_rate(t1).unwrap_or_default();
        // Nine more from requests sent before the cut: the same wave.
        for i in 0..9 {
            s.record_sent(
                t1 + ms(i),
                Signal::Throttled { hint: None },
                None,
                Some(t1 - ms(5)),
            );
        }
        assert_eq!(s.paced_rate(t1).unwrap_or_default(), first);
        // One sent after the cut: a new wave, cut again.
        s.record_sent(
            t1 + ms(300),
            Signal::Throttled { hint: None },
            None,
            Some(t1 + ms(200)),
        );
        assert!(s.paced_rate(t1 + ms(300)).unwrap_or_default() < first);
    }

    #[test]
    fn with_rate_control_off_a_throttle_only_closes_the_gate() {
        let s = gate_only();
        let t0 = Instant::now();
        s.record(t0, Signal::Throttled { hint: None }, None);
        assert_eq!(s.paced_rate(t0), None);
        assert_eq!(s.admit(t0 + ms(100), Ticket::New, None), Admission::Go);
    }

    #[test]
    fn a_hint_closes_the_gate_and_waiters_get_paced_slots() {
        let s = gate_only();
        let t0 = Instant::now();
        s.record(t0, hinted(2000), None);
        let slots: Vec<_> = (0..3)
            .map(|_| match s.admit(t0 + ms(10), Ticket::New, None) {
                Admission::Wait(r) => r,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(slots[0].at, t0 + ms(2000));
        assert_eq!(slots[1].at, t0 + ms(2020));
        assert_eq!(slots[2].at, t0 + ms(2040));
        // At their slots, the reserved requests go; a newcomer meanwhile queues behind them...
        assert_eq!(
            s.admit(t0 + ms(2000), Ticket::Reserved(slots[0]), None),
            Admission::Go
        );
        assert_eq!(
            s.admit(t0 + ms(2010), Ticket::New, None),
            Admission::Wait(Reservation {
                at: t0 + ms(2060),
                epoch: 1
            })
        );
        assert_eq!(
            s.admit(t0 + ms(2040), Ticket::Reserved(slots[2]), None),
            Admission::Go
        );
        // ...and once the backlog is out, newcomers go at once.
        assert_eq!(s.admit(t0 + ms(2100), Ticket::New, None), Admission::Go);
    }

    #[test]
    fn a_huge_hint_holds_at_most_max_hold() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        s.record(
            t0,
            Signal::Throttled {
                hint: Some(Duration::from_secs(86_400)),
            },
            None,
        );
        assert_eq!(s.closed_until(t0), Some(t0 + Duration::from_secs(120)));
    }

    #[test]
    fn no_hint_backoff_doubles_per_wave_and_resets_on_success() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        s.record(t0, Signal::Throttled { hint: None }, None);
        assert_eq!(s.closed_until(t0), Some(t0 + ms(100)));
        // The rest of the same wave (in flight together) changes nothing.
        for _ in 0..8 {
            s.record(t0 + ms(5), Signal::Throttled { hint: None }, None);
        }
        assert_eq!(s.closed_until(t0), Some(t0 + ms(100)));
        // A 429 after reopening doubles.
        let t1 = t0 + ms(100);
        s.record(t1, Signal::Throttled { hint: None }, None);
        assert_eq!(s.closed_until(t1), Some(t1 + ms(200)));
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_secs(6);
            s.record(t, Signal::Throttled { hint: None }, None);
        }
        assert_eq!(s.closed_until(t), Some(t + Duration::from_secs(5)));
        let later = t + Duration::from_secs(6);
        s.record(later, Signal::Healthy, None);
        s.record(later, Signal::Throttled { hint: None }, None);
        assert_eq!(s.closed_until(later), Some(later + ms(100)));
    }

    #[test]
    fn a_reclosed_gate_voids_old_slots() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        s.record(t0, hinted(100), None);
        let Admission::Wait(slot) = s.admit(t0, Ticket::New, None) else {
            panic!()
        };
        s.record(t0 + ms(50), hinted(500), None);
        match s.admit(slot.at, Ticket::Reserved(slot), None) {
            Admission::Wait(r) => assert!(r.at >= t0 + ms(550)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn breaker_trips_probes_one_at_a_time_and_recovers() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            s.record(t0, Signal::Failing, None);
        }
        assert!(s.breaker_engaged());
        assert_eq!(
            s.admit(t0, Ticket::New, None),
            Admission::Held {
                recheck: t0 + ms(500)
            }
        );
        let t1 = t0 + ms(500);
        let Admission::Probe(p1) = s.admit(t1, Ticket::Held, None) else {
            panic!("a probe")
        };
        assert!(matches!(
            s.admit(t1, Ticket::New, None),
            Admission::Held { .. }
        ));
        // The probe fails: hold longer (doubling), then probe again.
        s.record(t1, Signal::Failing, Some(p1));
        assert_eq!(
            s.admit(t1, Ticket::Held, None),
            Admission::Held {
                recheck: t1 + ms(1000)
            }
        );
        let t2 = t1 + ms(1000);
        let Admission::Probe(p2) = s.admit(t2, Ticket::New, None) else {
            panic!("a probe")
        };
        assert_ne!(p1, p2, "each turn has its own token");
        // The probe succeeds: everyone is woken and released with paced slots.
        assert_eq!(s.record(t2, Signal::Healthy, Some(p2)), Wake::All);
        assert_eq!(s.admit(t2, Ticket::Held, None), Admission::Go);
        assert_eq!(
            s.admit(t2, Ticket::Held, None),
            Admission::Wait(Reservation {
                at: t2 + ms(20),
                epoch: 0
            })
        );
        assert_eq!(
            s.admit(t2, Ticket::New, None),
            Admission::Wait(Reservation {
                at: t2 + ms(40),
                epoch: 0
            }),
            "newcomers queue behind the released backlog"
        );
        assert_eq!(
            s.admit(t2 + ms(60), Ticket::New, None),
            Admission::Go,
            "then go freely"
        );
    }

    #[test]
    fn an_abandoned_probe_lets_another_probe() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            s.record(t0, Signal::Failing, None);
        }
        let t1 = t0 + ms(500);
        let Admission::Probe(first) = s.admit(t1, Ticket::New, None) else {
            panic!("a probe")
        };
        assert_eq!(s.release_probe(first), Wake::All);
        let Admission::Probe(second) = s.admit(t1, Ticket::Held, None) else {
            panic!("a probe")
        };
        assert_eq!(
            s.release_probe(first),
            Wake::No,
            "a stale probe frees nothing"
        );
        assert!(matches!(
            s.admit(t1, Ticket::Held, None),
            Admission::Held { .. }
        ));
        assert_eq!(s.release_probe(second), Wake::All);
        assert_eq!(s.release_probe(second), Wake::No, "no double release");
    }

    #[test]
    fn a_reclosure_restarts_the_queue_at_the_new_reopening() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        s.record(t0, hinted(1000), None);
        for _ in 0..100 {
            s.admit(t0, Ticket::New, None);
        }
        // A second closure ends at +2.01 s; the first queue reached +2.98 s.
        s.record(t0 + ms(1010), hinted(1000), None);
        match s.admit(t0 + ms(1010), Ticket::New, None) {
            Admission::Wait(r) => assert_eq!(r.at, t0 + ms(2010), "no idle gap behind stale slots"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_slot_past_the_deadline_is_refused_without_being_taken() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        s.record(t0, hinted(1000), None);
        assert_eq!(
            s.admit(t0, Ticket::New, Some(t0 + ms(500))),
            Admission::TooLate { wait: ms(1000) }
        );
        let Admission::Wait(slot) = s.admit(t0, Ticket::New, None) else {
            panic!()
        };
        assert_eq!(slot.at, t0 + ms(1000), "the refused request took no slot");
    }

    #[test]
    fn a_spent_quota_of_unknown_size_holds_the_next_request_until_reset() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        let quota = crate::rate_limit::Quota::new(None, 0, Some(ms(750)));
        s.record(t0, Signal::Exhausted(quota), None);
        assert_eq!(s.closed_until(t0), Some(t0 + ms(750)));
        assert!(
            matches!(s.admit(t0, Ticket::New, None), Admission::Wait(r) if r.at == t0 + ms(750))
        );
    }
}
