//! The in-memory shared state: one per client, shared by every clone.
//!
//! It composes the gate's parts, each in its own file: the server's closures (hints and the
//! no-hint backoff, here), the [`Queue`] of waiting requests, the [`Breaker`], the
//! [`Ramp`] after a breaker spell, and the [`AdaptiveRate`].

use std::{collections::HashMap, time::Duration};

use crate::sync::{AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering};

use tokio::time::Instant;

use super::{
    adaptive::{AdaptiveRate, Curve, ADOPT_TOLERANCE},
    breaker::{Breaker, Verdict},
    bucket::RequestBucket,
    dimensions::TokenModel,
    estimate::CostLearner,
    queue::Queue,
    ramp::Ramp,
    ramp_guard::GuardState,
    Admission, Demand, GateConfig, Probe, Quota, RampGuard, RateLimitStore, Reservation, Scope,
    Signal, Ticket, TokenCharge, TokenLimits, Usage, Wake, WakeHandle,
};
use crate::{observe, time};

/// How long a due probe turn is kept for the newest waiter before an older one takes it.
const PROBE_GRACE: Duration = Duration::from_millis(5);

/// The most scopes (models) the store keeps state for at once; a request for another one
/// while they are all busy is held by the client-wide scope. Idle scopes are dropped at once.
pub const MAX_SCOPES: usize = 256;

/// The in-memory [`RateLimitStore`].
///
/// One gate per [`Scope`] (per model, by default), created when the server first pushes back
/// on that scope and dropped once it has nothing left to enforce or forget; one circuit
/// breaker for the whole upstream.
///
/// The healthy path is one atomic load per request and one per response: the mutex is taken
/// only while the server has said something (a 429, a failure) that is not yet forgotten.
#[derive(Debug)]
pub struct LocalStore {
    config: GateConfig,
    /// `false` while nothing restricts sending and there is nothing to forget: the fast path.
    restricted: AtomicBool,
    /// What every send writes, on a cache line of its own.
    sends: SendCount,
    /// Whether some scope has a token model: its requests' usage is read to settle them.
    metering: AtomicBool,
    state: Mutex<State>,
    /// The layers this store serves: woken when a fleet's news re-paces the queue.
    wakers: Mutex<Vec<WakeHandle>>,
}

/// The send counter, alone on its cache line (128 bytes: two lines, for the adjacent-line
/// prefetch): every request adds to it, from every core, while every request and answer
/// reads `restricted`. Sharing a line, each add would evict the flag from the other cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct SendCount {
    /// Requests sent so far: the adaptive rate's measurement (one relaxed add per request).
    sent: AtomicU64,
    /// The send count the adaptive rate's open sample started at (mirrored for the lock-free
    /// path: the send after it samples, so the end of an idle spell is noticed).
    sample_start: AtomicU64,
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    /// The release's pace after a breaker spell, until every queue has drained.
    ramp: Option<Ramp>,
    /// The sending rate measured while no scope adapts: a scope's adaptive rate starts from it,
    /// so its first cut knows what was being sent.
    sampler: AdaptiveRate,
    /// The scopes with something to enforce or forget.
    gates: HashMap<Scope, Gate>,
    /// The ramp guard every gate starts with, if configured.
    guard: Option<RampGuard>,
}

/// One scope's gate: the server's closures, its waiting queue, its adaptive rate and its
/// request quota.
#[derive(Debug)]
struct Gate {
    closed_until: Option<Instant>,
    queue: Queue,
    throttle_streak: u32,
    adaptive: AdaptiveRate,
    /// The server's request quota, mirrored while a response said it is spent.
    quota: Option<RequestBucket>,
    /// The server's token allowance, mirrored while a response said it runs low: requests
    /// are charged their estimated tokens.
    tokens: Option<RequestBucket>,
    /// The ramp guard's measurement and allowance, if configured.
    guard: Option<GuardState>,
    /// The token mirror counts prompt tokens only (Fireworks' `*-tokens-prompt`).
    tokens_prompt_only: bool,
    /// What answers' `usage` taught about this scope's costs.
    learner: CostLearner,
    /// The scope's token buckets per dimension, sized from the limits its responses state,
    /// once it was throttled: requests are charged per dimension and settled.
    dims: Option<TokenModel>,
}

impl Gate {
    /// Not yet: wait in line for `at`, or give up the place when `at` is past the deadline.
    fn wait_in_line(
        &mut self,
        place: Option<u64>,
        join: impl FnOnce(&mut Queue) -> u64,
        at: Instant,
        deadline: Option<Instant>,
        now: Instant,
        spacing: Duration,
    ) -> Admission {
        if deadline.is_some_and(|d| d < at) {
            if let Some(place) = place {
                self.queue.leave(place);
            }
            return Admission::TooLate { wait: at - now };
        }
        let place = match place {
            Some(place) => {
                self.queue.quote(spacing);
                place
            }
            None => join(&mut self.queue),
        };
        Admission::Wait(Reservation { at, place })
    }

    /// The breaker wants a probe. The newest request probes: if the probe fails, the one it
    /// cost an attempt (sent back through the retry layer to the end of the line) was at the
    /// end anyway. An older waiter takes the turn if the newest has not within a grace.
    fn probe_turn(
        &mut self,
        breaker: &mut Breaker,
        place: Option<u64>,
        join: impl FnOnce(&mut Queue) -> u64,
        since: Instant,
        now: Instant,
    ) -> Admission {
        let newest = place.is_none_or(|p| self.queue.is_last(p));
        let grace = time::after(since, PROBE_GRACE);
        if !newest && now < grace {
            let place = place.unwrap_or_else(|| join(&mut self.queue));
            return Admission::Wait(Reservation { at: grace, place });
        }
        if let Some(place) = place {
            self.queue.leave(place);
        }
        Admission::Probe(breaker.take_probe(now))
    }

    fn new(now: Instant, sampler: &AdaptiveRate, guard: Option<RampGuard>) -> Gate {
        Gate {
            closed_until: None,
            queue: Queue::default(),
            throttle_streak: 0,
            adaptive: sampler.clone(),
            quota: None,
            tokens: None,
            guard: guard.map(|g| GuardState::new(now, g)),
            tokens_prompt_only: false,
            learner: CostLearner::default(),
            dims: None,
        }
    }

    /// When it reopens, if it is closed at `now` by a server hint or a backoff, or holds the
    /// next request because the server's request quota is spent until then.
    fn closed_until(&self, now: Instant) -> Option<Instant> {
        let quota = self.quota.as_ref().map(|q| q.ready_at(now));
        self.closed_until.max(quota).filter(|&t| t > now)
    }

    /// When the next request (costing `tokens`) may go at the earliest, if not now, and the
    /// queue's spacing (`spacing` at least): the server's closure, and the mirrors of its
    /// request quota and token allowance while they do not cover a request.
    fn floor(
        &self,
        now: Instant,
        demand: &Demand<'_>,
        typical: u64,
        spacing: Duration,
    ) -> (Option<Instant>, Duration) {
        let mut closed = self.closed_until.filter(|&t| t > now);
        let mut spacing = spacing;
        let shortfalls = [
            self.quota.as_ref().and_then(|q| q.shortfall(now, 1)),
            // The token mirror: the queue moves at the typical request's cost; what this
            // request costs beyond it is added to its own slot (`after_own_cost`).
            self.tokens.as_ref().and_then(|t| {
                let (at, _) = t.shortfall(now, self.mirror_cost(demand).min(typical))?;
                Some((at, t.interval_for(typical)))
            }),
            self.guard.as_ref().and_then(|g| g.shortfall(now)),
        ];
        for (at, interval) in shortfalls.into_iter().flatten() {
            closed = closed.max(Some(at));
            spacing = spacing.max(interval);
        }
        let dims = self.dims.as_ref();
        closed = closed.max(dims.and_then(|d| d.shortfall(now, demand.charge())));
        (closed, spacing)
    }

    /// What `demand` costs the token mirror: its prompt estimate if the mirror counts prompt
    /// tokens only, else its whole estimate.
    fn mirror_cost(&self, demand: &Demand<'_>) -> u64 {
        if self.tokens_prompt_only {
            demand.charge().prompt
        } else {
            demand.tokens
        }
    }

    /// The cost that spaces the queue: the mean of the waiters' (what a place ahead costs on
    /// average), or `own` when nobody waits. So a large request behind small ones is quoted
    /// what they cost, not its own cost for every place ahead.
    fn typical_tokens(&self, own: u64) -> u64 {
        self.queue.mean_tokens().unwrap_or(own)
    }

    /// A slot `at` from the queue, for a request costing `own` tokens where the queue moves at
    /// `typical`: with `waiters_ahead`, later by what it costs beyond the typical request; and
    /// never before the token mirror covers it.
    fn after_own_cost(
        &self,
        now: Instant,
        (own, typical): (u64, u64),
        at: Instant,
        waiters_ahead: bool,
    ) -> Instant {
        let Some(tokens) = &self.tokens else {
            return at;
        };
        let excess = own.saturating_sub(typical);
        let at = if excess > 0 && waiters_ahead {
            time::after(at, tokens.interval_for(excess))
        } else {
            at
        };
        at.max(tokens.ready_for(now, own))
    }

    /// A request goes: charge the mirrors of the server's allowances.
    fn charge(&mut self, now: Instant, demand: &Demand<'_>) {
        if let Some(quota) = &mut self.quota {
            quota.take(now);
        }
        let cost = self.mirror_cost(demand);
        if let Some(bucket) = &mut self.tokens {
            bucket.take_n(now, cost);
        }

        if let Some(dims) = &mut self.dims {
            dims.charge(now, demand.charge());
        }
        if let Some(guard) = &mut self.guard {
            guard.take(now);
        }
    }

    /// Nothing to enforce or forget: the gate can go.
    fn is_idle(&self, now: Instant) -> bool {
        self.closed_until.is_none()
            && self.quota.is_none()
            && self.tokens.is_none()
            && self.dims.as_ref().is_none_or(|d| d.is_full(now))
            && self.queue.is_idle(now)
            && !self.adaptive.is_active()
            && self.throttle_streak == 0
            && self.guard.is_none_or(|g| g.is_idle(now))
    }
}

impl State {
    /// The gate of `scope`, created if need be.
    fn gate(&mut self, now: Instant, scope: &Scope) -> &mut Gate {
        gate_of(&mut self.gates, &self.sampler, self.guard, now, scope)
    }
}

/// The gate of `scope` in `gates`, created from `sampler` if need be; the client-wide one when
/// every one of the [`MAX_SCOPES`] is busy.
fn gate_of<'a>(
    gates: &'a mut HashMap<Scope, Gate>,
    sampler: &AdaptiveRate,
    guard: Option<RampGuard>,
    now: Instant,
    scope: &Scope,
) -> &'a mut Gate {
    let key = if gates.contains_key(scope) || gates.len() < MAX_SCOPES {
        scope.clone()
    } else {
        Scope::global()
    };
    gates
        .entry(key)
        .or_insert_with(|| Gate::new(now, sampler, guard))
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
            // A ramp guard measures every scope's sending: no lock-free path.
            restricted: AtomicBool::new(config.ramp_guard.is_some()),
            sends: SendCount::default(),
            metering: AtomicBool::new(false),
            state: Mutex::new(State {
                breaker: Breaker::new(&config),
                ramp: None,
                sampler: AdaptiveRate::new(
                    config.rate_control,
                    config.min_rate,
                    fallback_rate,
                    config.forget_after,
                    Instant::now(),
                ),
                gates: HashMap::new(),
                guard: config.ramp_guard,
            }),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// The knobs.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// The latest time any scope's gate reopens (for one client calling one model: that
    /// model's gate); see [`closed_until_in`](Self::closed_until_in).
    pub fn closed_until(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        state
            .gates
            .values()
            .filter_map(|gate| gate.closed_until(now))
            .max()
    }

    /// When `scope`'s gate reopens, if it is closed at `now` by a server hint or a backoff, or
    /// holds the next request because the server's request quota is spent until then.
    pub fn closed_until_in(&self, scope: &Scope, now: Instant) -> Option<Instant> {
        self.lock().gates.get(scope)?.closed_until(now)
    }

    /// The slowest adaptive rate any scope is paced by (for one client calling one model:
    /// that model's); see [`paced_rate_in`](Self::paced_rate_in).
    pub fn paced_rate(&self, now: Instant) -> Option<f64> {
        let state = self.lock();
        state
            .gates
            .values()
            .filter(|gate| gate.adaptive.is_active())
            .map(|gate| gate.adaptive.rate(now))
            .reduce(f64::min)
    }

    /// The adaptive sending rate `scope` is paced by at `now`, requests per second, or `None`
    /// while nothing is being adapted there (no throttling seen, or forgotten since).
    pub fn paced_rate_in(&self, scope: &Scope, now: Instant) -> Option<f64> {
        let state = self.lock();
        let gate = state.gates.get(scope)?;
        gate.adaptive.is_active().then(|| gate.adaptive.rate(now))
    }

    /// The scopes with a gate (something to enforce or forget) at `now`.
    pub fn active_scopes(&self) -> Vec<Scope> {
        self.lock().gates.keys().cloned().collect()
    }

    /// Whether the circuit breaker is holding requests (open or half-open).
    pub fn breaker_engaged(&self) -> bool {
        self.lock().breaker.is_engaged()
    }

    /// Requests waiting in the gates' queues (for a place, or while the breaker holds them).
    pub fn queued(&self) -> usize {
        self.lock().gates.values().map(|g| g.queue.len()).sum()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is a few stores.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The gap between two releases of `gate` now: the ramp's after a breaker spell (never
    /// faster than an adaptive rate), else the adaptive rate's, else `release_spacing`.
    fn spacing(&self, ramp: Option<Ramp>, gate: &Gate, now: Instant) -> Duration {
        let adaptive = gate
            .adaptive
            .is_active()
            .then(|| gate.adaptive.spacing(now));
        match (ramp, adaptive) {
            (Some(ramp), adaptive) => ramp.spacing().max(adaptive.unwrap_or_default()),
            (None, Some(adaptive)) => adaptive,
            (None, None) => self.config.release_spacing,
        }
    }

    /// Drops what has run out, and the gates with nothing left; clears the fast-path flag when
    /// nothing is left to enforce or forget anywhere.
    fn settle(&self, state: &mut State, now: Instant) {
        let mut drained = true;
        let mut metering = false;
        state.gates.retain(|_, gate| {
            if gate.closed_until.is_some_and(|t| t <= now) {
                gate.closed_until = None;
            }
            gate.queue.settle(now);
            drained &= gate.queue.is_idle(now);
            if gate.adaptive.forget_if_quiet(now) {
                observe::rate_forgotten();
            }
            if gate.quota.is_some_and(|q| q.is_full(now)) {
                gate.quota = None;
            }
            if gate.tokens.is_some_and(|t| t.is_full(now)) {
                gate.tokens = None;
            }
            let keep = !gate.is_idle(now);
            metering |= keep && (gate.dims.is_some() || gate.tokens.is_some());
            keep
        });
        self.metering.store(metering, Ordering::Relaxed);
        if drained {
            state.ramp = None;
        }
        let idle = state.gates.is_empty()
            && state.ramp.is_none()
            && state.breaker.is_quiet(now)
            && state.guard.is_none();
        if idle {
            self.restricted.store(false, Ordering::Release);
        }
    }

    /// Cuts `gate`'s adaptive rate if this throttle starts a new wave; returns the rate it was
    /// cut from (the fleet's `W_max`) if it did.
    fn cut_rate(&self, gate: &mut Gate, now: Instant, sent_at: Option<Instant>) -> Option<f64> {
        let sent = self.sent();
        gate.adaptive.sample(now, sent);
        if !gate.adaptive.throttled(now, sent, sent_at) {
            return None;
        }
        let w_max = gate.adaptive.curve(now).map_or(0.0, |c| c.w_max);
        observe::rate_cut(w_max, gate.adaptive.rate(now));
        self.restricted.store(true, Ordering::Release);
        Some(w_max)
    }

    /// Closes `gate` until `until`; returns it if that is later than before. The queue keeps
    /// its order: its release starts at the reopening.
    fn close(&self, gate: &mut Gate, until: Instant) -> Option<Instant> {
        self.restricted.store(true, Ordering::Release);
        if gate.closed_until.is_some_and(|t| t >= until) {
            return None;
        }
        gate.closed_until = Some(until);
        Some(until)
    }
}

impl LocalStore {
    /// Counts a send; every 32nd one on the lock-free path samples the rate (so a first
    /// throttle knows what was being sent), and so does the first of a new sample (so a
    /// burst after an idle spell is measured from its start).
    fn count_send(&self, now: Option<Instant>) {
        let sent = self.sends.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if sent % 32 == 0 || sent == self.sends.sample_start.load(Ordering::Relaxed) + 1 {
            if let Ok(mut state) = self.state.try_lock() {
                self.sample(&mut state, now.unwrap_or_else(Instant::now), sent);
            }
        }
    }

    /// Samples the sending rate: the client-wide measurement, and every gate's.
    fn sample(&self, state: &mut State, now: Instant, sent: u64) {
        state.sampler.sample(now, sent);
        for gate in state.gates.values_mut() {
            gate.adaptive.sample(now, sent);
        }
        self.sends
            .sample_start
            .store(state.sampler.sample_start(), Ordering::Relaxed);
    }

    fn sent(&self) -> u64 {
        self.sends.sent.load(Ordering::Relaxed)
    }

    fn decide(&self, now: Instant, demand: &Demand<'_>, ticket: Ticket) -> Admission {
        let mut state = self.lock();
        let sent = self.sent();
        self.sample(&mut state, now, sent);
        let admission = self.admission(&mut state, now, demand, ticket);
        if matches!(admission, Admission::Wait(_)) {
            // Someone waits: newcomers must see the queue, not the lock-free fast path.
            self.restricted.store(true, Ordering::Release);
        }
        self.settle(&mut state, now);
        admission
    }

    fn admission(
        &self,
        state: &mut State,
        now: Instant,
        demand: &Demand<'_>,
        ticket: Ticket,
    ) -> Admission {
        let scope = demand.scope;
        let ramp = state.ramp;
        let engaged = state.breaker.is_engaged();
        // Probes and holds are the breaker's; a scope with nothing of its own and no place
        // asks only the breaker (no gate is created for it).
        let has_gate = state.gates.contains_key(scope);
        if !has_gate && ticket == Ticket::New && !engaged && state.guard.is_none() {
            return Admission::Go;
        }
        // A place that is no longer live (never, from this store's own futures) asks anew.
        let place = match ticket {
            Ticket::Reserved(r) => {
                let gate = state.gate(now, scope);
                gate.queue.rank(r.place).map(|_| r.place)
            }
            Ticket::New => None,
        };
        self.admission_in_gate(state, now, demand, place, ramp)
    }

    fn admission_in_gate(
        &self,
        state: &mut State,
        now: Instant,
        demand: &Demand<'_>,
        place: Option<u64>,
        ramp: Option<Ramp>,
    ) -> Admission {
        let (scope, deadline) = (demand.scope, demand.deadline);
        let lane = self.config.priority.lane(demand.workload);
        let State {
            breaker,
            gates,
            sampler,
            guard,
            ..
        } = state;
        let gate = gate_of(gates, sampler, *guard, now, scope);
        if let Some(guard) = &mut gate.guard {
            guard.roll(now);
        }
        // The server's hint, and its spent request quota or low token allowance (the next
        // request when the mirror covers it, the queue spaced at the refill rate), are a floor
        // for every request, probes included.
        let cost = gate.mirror_cost(demand);
        let typical = gate.typical_tokens(cost);
        let (closed, spacing) = gate.floor(now, demand, typical, self.spacing(ramp, gate, now));
        let verdict = match closed {
            Some(until) if breaker.is_engaged() => Verdict::Hold { until },
            Some(_) => Verdict::Pass,
            None => breaker.admit(now),
        };
        match verdict {
            Verdict::ProbeDue { since } => {
                let join = |queue: &mut Queue| queue.join(lane, spacing, cost);
                return gate.probe_turn(breaker, place, join, since, now);
            }
            // Held by the breaker: wait in line (no deadline check: a wake-up may come at any
            // time; the request gives up at its deadline).
            Verdict::Hold { until } => {
                let place = place.unwrap_or_else(|| gate.queue.join(lane, spacing, cost));
                return Admission::Wait(Reservation { at: until, place });
            }
            Verdict::Pass => {}
        }
        let open_at = closed.unwrap_or(now);
        if place.is_none()
            && closed.is_none()
            && gate.queue.is_idle(now)
            && !gate.adaptive.is_active()
            && gate.after_own_cost(now, (cost, typical), now, false) <= now
        {
            // Nothing restricts sending (a failure or two under watch, a throttle streak).
            gate.charge(now, demand);
            return Admission::Go;
        }
        let rank = match place {
            Some(place) => gate.queue.rank(place).unwrap_or(gate.queue.len()),
            None => gate.queue.rank_of_newcomer(lane),
        };
        let at = gate.queue.slot(rank, open_at, now, spacing);
        let at = gate.after_own_cost(now, (cost, typical), at, rank > 0);
        if at <= now {
            gate.queue.release(place, now, spacing);
            gate.charge(now, demand);
            return Admission::Go;
        }
        let join = |queue: &mut Queue| queue.join(lane, spacing, cost);
        gate.wait_in_line(place, join, at, deadline, now, spacing)
    }

    /// Adopts what a fleet store read: this process's `share` of the fleet's rate (for every
    /// scope), and for each scope in `news` its closure (`closed_for` more, if longer than
    /// here) and the fleet's adaptive curve.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn adopt(&self, now: Instant, share: f64, news: &[FleetNews]) {
        let mut state = self.lock();
        // Gates created from now on start from this share (a fleet's cut is scaled by it), and
        // every gate paces at it.
        state.sampler.adopt(now, None, share);
        for gate in state.gates.values_mut() {
            gate.adaptive.adopt(now, None, share);
        }
        for news in news {
            // A scope past the bound is not folded into the client-wide one: that would hold
            // every model for one model's news.
            if !state.gates.contains_key(&news.scope) && state.gates.len() >= MAX_SCOPES {
                continue;
            }
            let gate = state.gate(now, &news.scope);
            if let Some(wait) = news.closed_for.filter(|w| !w.is_zero()) {
                let until = time::after(now, wait.min(self.config.max_hold));
                // The same closure read again lands a few milliseconds off: only a later one
                // closes.
                let known = gate
                    .closed_until
                    .is_some_and(|t| t > now && until <= time::after(t, ADOPT_TOLERANCE));
                if !known {
                    self.close(gate, until);
                }
            }
            let was_active = gate.adaptive.is_active();
            gate.adaptive.adopt(now, news.curve, share);
            if gate.adaptive.is_active() {
                self.restricted.store(true, Ordering::Release);
            }
            if !was_active && gate.adaptive.is_active() {
                let w_max = news.curve.map_or(0.0, |c| c.w_max);
                observe::rate_cut(w_max, gate.adaptive.rate(now));
            }
        }
        // A faster shared rate reaches the waiters at once, as a local one does.
        let ramp = state.ramp;
        let mut repaced = false;
        for gate in state.gates.values_mut() {
            repaced |= gate.queue.repace(self.spacing(ramp, gate, now));
        }
        self.settle(&mut state, now);
        drop(state);
        if repaced {
            let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
            wakers.iter().for_each(WakeHandle::wake_all);
        }
    }
}

/// What a fleet store read about one scope.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FleetNews {
    pub(crate) scope: Scope,
    /// The scope is closed fleet-wide for this much longer.
    pub(crate) closed_for: Option<Duration>,
    /// The fleet's adaptive curve for the scope.
    pub(crate) curve: Option<Curve>,
}

impl LocalStore {
    /// Every scope's adaptive curve that this process cut (what a fleet store publishes at
    /// every sync, with its age and identity: a retried sync is the same cut).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn own_curves(&self, now: Instant) -> Vec<(Scope, Curve)> {
        self.lock()
            .gates
            .iter()
            .filter_map(|(scope, gate)| Some((scope.clone(), gate.adaptive.own_curve(now)?)))
            .collect()
    }
}

impl RateLimitStore for LocalStore {
    fn admit(&self, now: Instant, ticket: Ticket, deadline: Option<Instant>) -> Admission {
        let global = Scope::global();
        self.admit_in(now, &Demand::new(&global).deadline(deadline), ticket)
    }

    fn admit_in(&self, now: Instant, demand: &Demand<'_>, ticket: Ticket) -> Admission {
        if ticket == Ticket::New && !self.restricted.load(Ordering::Acquire) {
            self.count_send(Some(now));
            return Admission::Go;
        }
        let admission = self.decide(now, demand, ticket);
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
        self.learn(now, &Scope::global(), signal, probe, sent_at).0
    }

    fn record_in(
        &self,
        now: Instant,
        scope: &Scope,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Wake {
        self.learn(now, scope, signal, probe, sent_at).0
    }

    fn is_unrestricted(&self) -> bool {
        !self.restricted.load(Ordering::Acquire)
    }

    fn learn_limits_in(&self, now: Instant, scope: &Scope, limits: TokenLimits) {
        if !self.config.token_pacing || self.is_unrestricted() {
            return;
        }
        let mut state = self.lock();
        let Some(gate) = state.gates.get_mut(scope) else {
            return;
        };
        let max = self.config.max_hold;
        match &mut gate.dims {
            Some(dims) => dims.learn(now, limits, max),
            // Only a throttled scope (a 429, the over-limit flag) pays for token accounting.
            None if gate.throttle_streak > 0
                || gate.adaptive.is_active()
                || gate.closed_until.is_some_and(|t| t > now) =>
            {
                gate.dims = TokenModel::new(now, limits, max);
                if gate.dims.is_some() {
                    self.metering.store(true, Ordering::Relaxed);
                }
            }
            None => {}
        }
    }

    fn meters_in(&self, scope: &Scope) -> bool {
        self.metering.load(Ordering::Relaxed)
            && self
                .lock()
                .gates
                .get(scope)
                .is_some_and(|gate| gate.dims.is_some() || gate.tokens.is_some())
    }

    fn estimate_in(&self, scope: &Scope, charge: TokenCharge) -> TokenCharge {
        self.lock()
            .gates
            .get(scope)
            .map_or(charge, |gate| gate.learner.adjust(charge))
    }

    fn settle_in(
        &self,
        now: Instant,
        scope: &Scope,
        sent_at: Instant,
        charged: TokenCharge,
        usage: Usage,
    ) -> Wake {
        let mut state = self.lock();
        if let Some(gate) = state.gates.get_mut(scope) {
            let estimate = gate.learner.unscale(charged);
            gate.learner.learn(estimate, usage);
        }
        let refunded = state
            .gates
            .get_mut(scope)
            .and_then(|gate| gate.dims.as_mut())
            .is_some_and(|dims| dims.settle(now, sent_at, charged, usage));
        let waiting = state
            .gates
            .get(scope)
            .is_some_and(|g| !g.queue.is_idle(now));
        self.settle(&mut state, now);
        // Tokens came back: the waiters' slots may be sooner.
        if refunded && waiting {
            return Wake::All;
        }
        Wake::No
    }

    fn attach(&self, wake: WakeHandle) {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wake);
    }

    fn release_probe(&self, probe: Probe) -> Wake {
        if self.lock().breaker.release(Some(probe)) {
            return Wake::All;
        }
        Wake::No
    }

    fn leave(&self, now: Instant, slot: Reservation) -> Wake {
        self.leave_in(now, &Scope::global(), slot)
    }

    fn leave_in(&self, now: Instant, scope: &Scope, slot: Reservation) -> Wake {
        let mut state = self.lock();
        let behind = state
            .gates
            .get_mut(scope)
            .and_then(|gate| gate.queue.leave(slot.place))
            == Some(true);
        self.settle(&mut state, now);
        // Everyone behind moved up a place; while the breaker holds them, places do not count.
        if behind && !state.breaker.is_engaged() {
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
    /// [`record_in`](RateLimitStore::record_in), also saying what changed that a fleet store
    /// publishes.
    pub(crate) fn learn(
        &self,
        now: Instant,
        scope: &Scope,
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
        // The upstream's part: the breaker and the ramp after it.
        match signal {
            Signal::Healthy
            | Signal::Exhausted { .. }
            | Signal::TokensLow(_)
            | Signal::OverLimit
            | Signal::Throttled { .. } => {
                // The server answered: it is up. Any answer closes the breaker (the probe's,
                // or one sent before the trip), and the held backlog is released ramping up.
                if state.breaker.success(now) {
                    state.ramp = Some(Ramp::new(now, cfg.release_spacing));
                    for gate in state.gates.values_mut() {
                        gate.queue.restart();
                    }
                    wake = Wake::All;
                } else if signal == Signal::Healthy {
                    if let Some(ramp) = state.ramp.as_mut() {
                        ramp.success(now);
                    }
                }
            }
            Signal::Failing => {
                self.restricted.store(true, Ordering::Release);
                if let Some(failures) = state.breaker.failure(now, probe) {
                    state.ramp = None;
                    observe::breaker_tripped(failures);
                }
                if let Some(ramp) = state.ramp.as_mut() {
                    ramp.failure();
                }
            }
            Signal::Neutral => {
                if state.breaker.release(probe) {
                    wake = Wake::All;
                }
            }
        }
        // The scope's part: a quiet outcome for a scope with no gate has nothing to teach it.
        if !quiet || state.gates.contains_key(scope) {
            let gate = state.gate(now, scope);
            self.learn_in_gate(gate, now, signal, sent_at, &mut learned);
        }
        // A faster pace (the ramp doubled, the adaptive rate grew) reaches every waiter.
        let ramp = state.ramp;
        for gate in state.gates.values_mut() {
            let spacing = self.spacing(ramp, gate, now);
            if gate.queue.repace(spacing) {
                wake = Wake::All;
            }
        }
        self.settle(&mut state, now);
        (wake, learned)
    }

    fn learn_in_gate(
        &self,
        gate: &mut Gate,
        now: Instant,
        signal: Signal,
        sent_at: Option<Instant>,
        learned: &mut Learned,
    ) {
        let cfg = &self.config;
        // Paced at a learned rate already: the server's hint concerns the request it answered
        // (its retry waits it out), not everyone.
        let pacing = gate.adaptive.is_active();
        // Above the guaranteed limit, before any 429: trim the rate (once per wave, as a
        // throttle does) and hold it there, without closing the gate.
        if signal == Signal::OverLimit {
            learned.cut = self.cut_rate(gate, now, sent_at);
            if learned.cut.is_some() {
                gate.adaptive.hold_after_hint(cfg.hinted_plateau);
            }
        }
        if let Signal::Throttled { hint } = signal {
            learned.cut = self.cut_rate(gate, now, sent_at);
            if hint.is_some() {
                gate.adaptive.hold_after_hint(cfg.hinted_plateau);
            }
        }
        match signal {
            Signal::Healthy => gate.throttle_streak = 0,
            // The quota is a continuously refilling bucket: mirror it and pace by it, rather
            // than closing until it is full again.
            Signal::TokensLow(_) if !cfg.token_pacing => {}
            Signal::TokensLow(quota) => self.learn_tokens(gate, now, quota),
            Signal::Exhausted(quota) => self.learn_quota(gate, now, quota),
            // A 429 with no hint while the gate is already closed is the same wave (requests
            // that were in flight together): it neither doubles nor extends the closure. The
            // backoff doubles only for 429s that come after the gate reopened.
            Signal::Throttled { hint: None } if gate.closed_until.is_some_and(|t| t > now) => {}
            // Hints without idling: once a rate is learned and the gate is open, a hinted 429
            // whose hint is no longer than the longest no-hint closure (`no_hint_max`) cuts
            // the rate (once per wave) and the gate keeps releasing at the cut rate, instead of
            // holding every request of the scope for the hint; the request that got it waits
            // the hint out in its retry. A longer hint (a spent quota window) still closes,
            // and so does a later hint of a wave while the gate is closed.
            Signal::Throttled { hint: Some(hint) }
                if pacing
                    && hint <= cfg.no_hint_max
                    && gate.closed_until.is_none_or(|t| t <= now) =>
            {
                gate.throttle_streak = gate.throttle_streak.saturating_add(1);
            }
            Signal::Throttled { hint } => {
                let wait = match hint {
                    Some(hint) => hint.min(cfg.max_hold),
                    None => {
                        let doubling = gate.throttle_streak.min(16);
                        cfg.no_hint_base
                            .saturating_mul(2u32.pow(doubling))
                            .min(cfg.no_hint_max)
                    }
                };
                gate.throttle_streak = gate.throttle_streak.saturating_add(1);
                observe::gate_closed(wait, hint.is_some());
                learned.closed_until = self.close(gate, time::after(now, wait));
            }
            Signal::OverLimit | Signal::Failing | Signal::Neutral => {}
        }
    }

    /// A token quota running low: mirror it (a continuously refilling bucket) and pace by it.
    fn learn_tokens(&self, gate: &mut Gate, now: Instant, quota: Quota) {
        let cfg = &self.config;
        gate.tokens_prompt_only = quota.prompt_only;
        match &mut gate.tokens {
            Some(bucket) => bucket.learn(now, quota, cfg.max_hold),
            None => {
                gate.tokens = RequestBucket::new(now, quota, cfg.max_hold);
                if gate.tokens.is_some() {
                    self.restricted.store(true, Ordering::Release);
                    // Its answers' `usage` teaches the scope's cost estimates.
                    self.metering.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// A spent request quota: mirror it and pace by it.
    fn learn_quota(&self, gate: &mut Gate, now: Instant, quota: Quota) {
        let cfg = &self.config;
        match &mut gate.quota {
            Some(bucket) => bucket.learn(now, quota, cfg.max_hold),
            None => {
                gate.quota = RequestBucket::new(now, quota, cfg.max_hold);
                if let Some(bucket) = &gate.quota {
                    observe::gate_closed(bucket.interval(), true);
                    self.restricted.store(true, Ordering::Release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::RateControl;

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
        LocalStore::new(GateConfig::default().with_rate_control(RateControl::Off))
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
        let slots: Vec<Reservation> = (0..3)
            .map(|_| match s.admit(t1 + ms(1), Ticket::New, None) {
                Admission::Wait(r) => r,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(slots[0].at, t1 + ms(100));
        let gap = (slots[2].at - slots[1].at).as_secs_f64();
        assert!((gap - 1.0 / rate).abs() < 0.002, "gap {gap}");
        for slot in &slots {
            assert_eq!(
                s.admit(slot.at, Ticket::Reserved(*slot), None),
                Admission::Go
            );
        }
        // Later, while adapting, a newcomer still gets a slot rather than going at once.
        let t2 = t1 + ms(2000);
        assert_eq!(s.admit(t2, Ticket::New, None), Admission::Go);
        let Admission::Wait(next) = s.admit(t2, Ticket::New, None) else {
            panic!("a paced slot")
        };
        assert_eq!(
            s.admit(next.at, Ticket::Reserved(next), None),
            Admission::Go
        );
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
        let Admission::Wait(newcomer) = s.admit(t0 + ms(2010), Ticket::New, None) else {
            panic!("the newcomer queues")
        };
        assert_eq!(newcomer.at, t0 + ms(2060));
        for (i, slot) in slots.iter().enumerate().skip(1) {
            assert_eq!(
                s.admit(t0 + ms(2000 + 20 * i as u64), Ticket::Reserved(*slot), None),
                Admission::Go
            );
        }
        assert_eq!(
            s.admit(newcomer.at, Ticket::Reserved(newcomer), None),
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

    /// Records failures until the breaker trips.
    fn trip(s: &LocalStore, now: Instant) {
        for _ in 0..s.config().minimum_throughput {
            s.record(now, Signal::Failing, None);
        }
        assert!(s.breaker_engaged());
    }

    fn wait(a: Admission) -> Reservation {
        match a {
            Admission::Wait(r) => r,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn breaker_trips_probes_one_at_a_time_and_recovers() {
        let s = gate_only();
        let t0 = Instant::now();
        trip(&s, t0);
        let held = wait(s.admit(t0, Ticket::New, None));
        assert_eq!(held.at, t0 + ms(500));
        let t1 = t0 + ms(500);
        let Admission::Probe(p1) = s.admit(t1, Ticket::Reserved(held), None) else {
            panic!("a probe")
        };
        let a = wait(s.admit(t1, Ticket::New, None));
        assert_eq!(a.at, t1 + ms(500), "held while the probe is in flight");
        // The probe fails: hold longer (doubling), then probe again.
        s.record(t1, Signal::Failing, Some(p1));
        assert_eq!(
            wait(s.admit(t1, Ticket::Reserved(a), None)).at,
            t1 + ms(1000)
        );
        let b = wait(s.admit(t1 + ms(1), Ticket::New, None));
        let t2 = t1 + ms(1000);
        // The newest waiter probes (a failed probe costs the one at the end of the line); the
        // older one is kept out of the turn for a moment.
        assert_eq!(
            wait(s.admit(t2, Ticket::Reserved(a), None)).at,
            t2 + PROBE_GRACE
        );
        let Admission::Probe(p2) = s.admit(t2, Ticket::Reserved(b), None) else {
            panic!("a probe")
        };
        assert_ne!(p1, p2, "each turn has its own token");
        // The probe succeeds: everyone is woken and released paced, in order.
        assert_eq!(s.record(t2, Signal::Healthy, Some(p2)), Wake::All);
        let c = wait(s.admit(t2, Ticket::New, None));
        assert_eq!(s.admit(t2, Ticket::Reserved(a), None), Admission::Go);
        assert_eq!(
            wait(s.admit(t2, Ticket::Reserved(c), None)).at,
            t2 + ms(20),
            "newcomers queue behind the released backlog"
        );
        assert_eq!(
            s.admit(t2 + ms(20), Ticket::Reserved(c), None),
            Admission::Go
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
        trip(&s, t0);
        let t1 = t0 + ms(500);
        let Admission::Probe(first) = s.admit(t1, Ticket::New, None) else {
            panic!("a probe")
        };
        assert_eq!(s.release_probe(first), Wake::All);
        let Admission::Probe(second) = s.admit(t1, Ticket::New, None) else {
            panic!("a probe")
        };
        assert_eq!(
            s.release_probe(first),
            Wake::No,
            "a stale probe frees nothing"
        );
        assert!(matches!(s.admit(t1, Ticket::New, None), Admission::Wait(_)));
        assert_eq!(s.release_probe(second), Wake::All);
        assert_eq!(s.release_probe(second), Wake::No, "no double release");
    }

    #[test]
    fn a_slow_probe_does_not_block_the_next_one() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        trip(&s, t0);
        let t1 = t0 + ms(500);
        let Admission::Probe(slow) = s.admit(t1, Ticket::New, None) else {
            panic!("a probe")
        };
        let held = wait(s.admit(t1, Ticket::New, None));
        assert_eq!(
            held.at,
            t1 + ms(500),
            "rechecked after the probe's interval"
        );
        let Admission::Probe(next) = s.admit(held.at, Ticket::Reserved(held), None) else {
            panic!("the next probe")
        };
        assert_ne!(slow, next);
        assert_eq!(s.record(held.at, Signal::Healthy, Some(next)), Wake::All);
        assert!(!s.breaker_engaged());
    }

    #[test]
    fn no_probe_goes_before_a_hinted_time() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        s.record(t0, hinted(30_000), None);
        trip(&s, t0 + ms(10));
        let held = wait(s.admit(t0 + ms(20), Ticket::New, None));
        assert_eq!(held.at, t0 + ms(30_000));
        let Admission::Probe(_) = s.admit(held.at, Ticket::Reserved(held), None) else {
            panic!("the probe goes at the hinted time")
        };
    }

    #[test]
    fn a_slot_holder_asking_early_waits_for_its_slot() {
        let s = gate_only();
        let t0 = Instant::now();
        s.record(t0, hinted(100), None);
        let slots: Vec<Reservation> = (0..3)
            .map(|_| wait(s.admit(t0, Ticket::New, None)))
            .collect();
        // Woken early (a wake-up for someone else), each is told its time again.
        for slot in &slots {
            assert_eq!(
                wait(s.admit(t0 + ms(50), Ticket::Reserved(*slot), None)),
                *slot
            );
        }
        assert_eq!(
            s.admit(t0 + ms(100), Ticket::Reserved(slots[0]), None),
            Admission::Go
        );
        assert_eq!(
            wait(s.admit(t0 + ms(100), Ticket::Reserved(slots[1]), None)).at,
            t0 + ms(120)
        );
    }

    #[test]
    fn the_queue_keeps_its_order_across_a_reclosure_and_closes_up_when_waiters_leave() {
        // Without an adaptive rate, every hinted 429 closes the gate.
        let s = gate_only();
        let t0 = Instant::now();
        s.record(t0, hinted(1000), None);
        let waiters: Vec<Reservation> = (0..100)
            .map(|_| wait(s.admit(t0, Ticket::New, None)))
            .collect();
        // A second closure ends at +2.01 s: the queue waits for it, in order.
        s.record(t0 + ms(1010), hinted(1000), None);
        let first = wait(s.admit(t0 + ms(1010), Ticket::Reserved(waiters[0]), None));
        assert_eq!(first.at, t0 + ms(2010));
        let newcomer = wait(s.admit(t0 + ms(1010), Ticket::New, None));
        assert!(newcomer.at > first.at, "behind the 100 waiters");
        // They go away: the newcomer moves up to the reopening.
        for w in &waiters {
            s.leave(t0 + ms(1020), *w);
        }
        assert_eq!(
            wait(s.admit(t0 + ms(1020), Ticket::Reserved(newcomer), None)).at,
            t0 + ms(2010)
        );
        assert_eq!(s.queued(), 1);
    }

    /// Hints without idling: once a rate is learned, a later hinted 429 cuts the rate and the
    /// gate keeps releasing at it, instead of holding everyone for the hint.
    #[test]
    fn once_paced_a_hint_cuts_the_rate_and_holds_no_one() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        for i in 0..50 {
            s.admit(t0 + ms(20 * i), Ticket::New, None);
        }
        let t1 = t0 + ms(1000);
        s.record(t1, hinted(1000), None);
        assert_eq!(
            s.closed_until(t1),
            Some(t1 + ms(1000)),
            "the first hint closes"
        );
        let rate = s.paced_rate(t1).expect("a rate is learned");
        // After the reopening, another wave's hinted 429: cut, not closed.
        let t2 = t1 + ms(12_000);
        s.record_sent(t2, hinted(1000), None, Some(t2));
        assert_eq!(s.closed_until(t2), None, "nobody is held for the hint");
        let cut = s.paced_rate(t2).expect("still paced");
        assert!(cut < rate * 1.5, "cut: {cut} (was {rate})");
        match s.admit(t2, Ticket::New, None) {
            Admission::Go => {}
            Admission::Wait(r) => assert!(r.at < t2 + ms(500), "paced, not held: {r:?}"),
            other => panic!("{other:?}"),
        }
        // A hint longer than any no-hint closure still closes the gate.
        let t3 = t2 + ms(12_000);
        s.record_sent(t3, hinted(30_000), None, Some(t3));
        assert_eq!(s.closed_until(t3), Some(t3 + ms(30_000)));
    }

    /// A faster rate adopted from the fleet (in the background, outside any request) reaches
    /// the waiters at once: the layer's wake handle fires.
    #[test]
    fn adopting_a_faster_fleet_rate_wakes_the_waiters() {
        use futures::FutureExt;
        let s = LocalStore::default();
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        s.attach(WakeHandle(notify.clone()));
        let t0 = Instant::now();
        // 5 sends a second, then a 429: paced at about 3.5/s, two waiters quoted that pace.
        for i in 0..5 {
            s.admit(t0 + ms(200 * i), Ticket::New, None);
        }
        let t1 = t0 + ms(1000);
        s.record(t1, Signal::Throttled { hint: None }, None);
        let t2 = t1 + ms(300);
        let waiting = (0..3)
            .filter(|_| matches!(s.admit(t2, Ticket::New, None), Admission::Wait(_)))
            .count();
        assert!(waiting >= 2, "{waiting} waiting");
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        // The fleet's newer cut is at 200/s.
        let fleet = Curve {
            w_max: 200.0,
            since_cut: ms(1),
            plateau: Duration::ZERO,
            id: 7,
        };
        s.adopt(
            t2,
            1.0,
            &[FleetNews {
                scope: Scope::global(),
                closed_for: None,
                curve: Some(fleet),
            }],
        );
        assert!(notified.now_or_never().is_some(), "the waiters were woken");
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

    #[test]
    fn a_spent_quota_paces_its_queue_one_refill_interval_apart() {
        let s = LocalStore::default();
        let t0 = Instant::now();
        // 30 a minute, none left: one request back every 2 s.
        let quota = crate::rate_limit::Quota::new(Some(30), 0, Some(Duration::from_secs(60)));
        s.record(t0, Signal::Exhausted(quota), None);
        let slots: Vec<Instant> = (0..3)
            .map(|_| match s.admit(t0, Ticket::New, None) {
                Admission::Wait(r) => r.at,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(slots[0], t0 + Duration::from_secs(2));
        assert_eq!(slots[1] - slots[0], Duration::from_secs(2));
        assert_eq!(slots[2] - slots[1], Duration::from_secs(2));
    }
}
