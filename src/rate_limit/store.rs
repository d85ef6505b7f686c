//! The trait behind the shared state, so another store (Redis, for a fleet of processes on one
//! API key) can replace the in-memory one.

use std::fmt::Debug;

use tokio::time::Instant;

use super::{Scope, Signal, TokenCharge, TokenLimits, Usage};
use crate::Workload;

/// What a request asks of the gate: its scope, its estimated cost, its workload (its
/// priority in the queue) and its deadline.
///
/// ```
/// use tower_reliability::{rate_limit::{Demand, Scope}, Workload};
///
/// let scope = Scope::named("accounts/fireworks/models/llama-v3p1-8b-instruct");
/// let demand = Demand::new(&scope).tokens(1200).workload(Workload::BatchSubmit);
/// assert_eq!(demand.tokens, 1200);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Demand<'a> {
    /// The request's scope (its model, by default).
    pub scope: &'a Scope,
    /// Its estimated tokens (prompt and output cap); 0 when unknown.
    pub tokens: u64,
    /// Its charge per dimension (prompt estimate, output reservation), when known apart;
    /// `None`: all of `tokens` counts as prompt.
    pub per_dimension: Option<TokenCharge>,
    /// Its workload, which orders the waiting queue (see [`Priority`](super::Priority)).
    pub workload: Workload,
    /// When it must be done: a slot after it is refused with [`Admission::TooLate`].
    pub deadline: Option<Instant>,
}

impl<'a> Demand<'a> {
    /// A request of `scope`, of unknown cost, interactive, without a deadline.
    pub fn new(scope: &'a Scope) -> Self {
        Demand {
            scope,
            tokens: 0,
            per_dimension: None,
            workload: Workload::Interactive,
            deadline: None,
        }
    }

    /// With this estimated cost in tokens.
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.tokens = tokens;
        self
    }

    /// With this charge per dimension: its prompt estimate and its output reservation
    /// (`max_tokens`, or a typical completion when the request sets none).
    pub fn per_dimension(mut self, charge: TokenCharge) -> Self {
        self.per_dimension = Some(charge);
        self
    }

    /// What it is charged per dimension: [`per_dimension`](Self::per_dimension), else all of
    /// `tokens` as prompt.
    pub fn charge(&self) -> TokenCharge {
        self.per_dimension
            .unwrap_or_else(|| TokenCharge::new(self.tokens, 0))
    }

    /// With this workload.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workload = workload;
        self
    }

    /// With this deadline.
    pub fn deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }
}

/// Who is asking to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    /// A request arriving for the first time.
    New,
    /// A request that waited in the queue, asking again with its place.
    Reserved(Reservation),
}

/// A place in the gate's waiting queue, and when to ask again.
///
/// A place is kept in order until the request is sent or gives it back: the queue is first
/// come, first served, and a waiter's time follows from the live places ahead of it (callers
/// that went away give theirs back), the pace, and when the gate opens.
///
/// Like [`Probe`], a reservation is handed out by the crate's queue only (it cannot be made
/// outside the crate): a store that wraps [`LocalStore`](super::LocalStore) passes its
/// reservations on, so a caller cannot forge a place ahead of others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub(crate) at: Instant,
    pub(crate) place: u64,
}

impl Reservation {
    /// When to ask again (unless woken earlier): the paced slot, or the breaker's next probe.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The place in the queue (higher: later).
    pub fn place(&self) -> u64 {
        self.place
    }
}

/// The answer to "may I send now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send now.
    Go,
    /// Send now, as the single probe testing a failing server. Its outcome must be
    /// [recorded](RateLimitStore::record) with this token, or the probe
    /// [released](RateLimitStore::release_probe) with it.
    Probe(Probe),
    /// Wait in line until `at` or a wake-up, whichever comes first, then ask again with
    /// [`Ticket::Reserved`]; [give the place back](RateLimitStore::leave) if the request goes
    /// away meanwhile. While the circuit breaker holds everyone, `at` is its next probe time
    /// and may lie past the request's deadline (a wake-up can come sooner).
    Wait(Reservation),
    /// The wait would end past the request's deadline: refuse it now. No place was kept.
    TooLate {
        /// How long the request would have had to wait.
        wait: std::time::Duration,
    },
}

/// One probe turn, handed out by the crate's breaker only (it cannot be made outside the
/// crate: a store that wraps [`LocalStore`](super::LocalStore) passes its probes on). Only the
/// current turn's outcome or release counts: a stale probe (from before the breaker closed and
/// tripped again) cannot free the turn of the probe after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe(pub(crate) u64);

/// Whether a state change should wake held requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Nothing to wake.
    No,
    /// Wake every waiting request so it asks again.
    All,
}

/// Wakes every request waiting at the gate of the layer that gave it, so each asks again.
///
/// [`RateLimitAware`](crate::RateLimitAware) hands one to its store
/// ([`attach`](RateLimitStore::attach)): a store that learns something outside a request —
/// a fleet store's background sync adopting a faster shared rate — uses it to re-pace the
/// waiting queue at once.
#[derive(Debug, Clone)]
pub struct WakeHandle(pub(crate) std::sync::Arc<tokio::sync::Notify>);

impl WakeHandle {
    /// Wakes every waiting request.
    pub fn wake_all(&self) {
        self.0.notify_waiters();
    }
}

/// The shared rate-limit state behind [`RateLimitAware`](crate::RateLimitAware).
///
/// Implementations must be cheap when the server is healthy: [`admit`](Self::admit) with
/// [`Ticket::New`] and [`record`](Self::record) of [`Signal::Healthy`] sit on every request's
/// path. They must never block on I/O: a remote store syncs in the background and answers
/// from local memory.
pub trait RateLimitStore: Debug + Send + Sync + 'static {
    /// May a request send now? `deadline` is when the request must be done: a slot after it
    /// is refused with [`Admission::TooLate`] rather than reserved.
    fn admit(&self, now: Instant, ticket: Ticket, deadline: Option<Instant>) -> Admission;

    /// Learns from the outcome of a request that was sent.
    fn record(&self, now: Instant, signal: Signal, probe: Option<Probe>) -> Wake;

    /// A layer serves this store: `wake` reaches its waiting requests. A store that changes
    /// outside requests (a background sync) keeps it; the default drops it.
    fn attach(&self, wake: WakeHandle) {
        let _ = wake;
    }

    /// A probe ended without an outcome (its caller went away): let another request probe.
    fn release_probe(&self, probe: Probe) -> Wake;

    /// A waiting request went away (cancelled, timed out, dropped by a `select!`): its place
    /// is free, and the waiters behind it move up. The default does nothing.
    fn leave(&self, now: Instant, slot: Reservation) -> Wake {
        let _ = (now, slot);
        Wake::No
    }

    /// [`admit`](Self::admit) for a request of `demand.scope` (its model, by default),
    /// estimated to cost `demand.tokens`, queued by `demand.workload`. A store that keeps one
    /// state for every scope and paces requests only, first come first served, ignores all
    /// but the deadline: the default does.
    fn admit_in(&self, now: Instant, demand: &Demand<'_>, ticket: Ticket) -> Admission {
        self.admit(now, ticket, demand.deadline)
    }

    /// A response for `scope` stated its token limits (recorded after its signal): a store
    /// that models tokens per dimension sizes its buckets from them once the scope is
    /// throttled. The default ignores them.
    fn learn_limits_in(&self, now: Instant, scope: &Scope, limits: TokenLimits) {
        let _ = (now, scope, limits);
    }

    /// `charge` as this store estimates it for a request of `scope`: a store that learns
    /// from answers' `usage` scales the prompt estimate and replaces a default output
    /// reservation by a typical completion. Asked only on the gate's slow path; the default
    /// returns `charge`.
    fn estimate_in(&self, scope: &Scope, charge: TokenCharge) -> TokenCharge {
        let _ = scope;
        charge
    }

    /// Whether requests of `scope` are charged tokens now, so that their answers' `usage`
    /// should be read to [settle](Self::settle_in) them. Cheap (a lock-free check first); the
    /// default is `false`.
    fn meters_in(&self, scope: &Scope) -> bool {
        let _ = scope;
        false
    }

    /// A request of `scope` sent at `sent_at` and charged `charged` ended, and its answer said
    /// it cost `usage`: refund or charge the difference. The default does nothing.
    fn settle_in(
        &self,
        now: Instant,
        scope: &Scope,
        sent_at: Instant,
        charged: TokenCharge,
        usage: Usage,
    ) -> Wake {
        let _ = (now, scope, sent_at, charged, usage);
        Wake::No
    }

    /// [`record_sent`](Self::record_sent) for a request of `scope`. The default ignores the
    /// scope.
    fn record_in(
        &self,
        now: Instant,
        scope: &Scope,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Wake {
        let _ = scope;
        self.record_sent(now, signal, probe, sent_at)
    }

    /// [`leave`](Self::leave) for a request of `scope`. The default ignores the scope.
    fn leave_in(&self, now: Instant, scope: &Scope, slot: Reservation) -> Wake {
        let _ = scope;
        self.leave(now, slot)
    }

    /// Like [`record`](Self::record), knowing when the request was sent: `None` when it went
    /// by [`admit_unrestricted`](Self::admit_unrestricted), while nothing restricted sending.
    /// A store that adapts a sending rate cuts it once per wave of throttles: the ones from
    /// requests sent before the last cut are the same wave. The default forgets `sent_at`.
    fn record_sent(
        &self,
        now: Instant,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Wake {
        let _ = sent_at;
        self.record(now, signal, probe)
    }

    /// Admits a new request on the lock-free path if nothing restricts sending (and counts it,
    /// if the store measures its sending rate); `false` sends the request to
    /// [`admit`](Self::admit). The default is [`is_unrestricted`](Self::is_unrestricted).
    fn admit_unrestricted(&self) -> bool {
        self.is_unrestricted()
    }

    /// `true` when nothing restricts sending and there is nothing to forget: a new request may
    /// go and a healthy outcome need not be recorded. A cheap, lock-free check for the success
    /// path; the default (`false`) always takes the full path.
    fn is_unrestricted(&self) -> bool {
        false
    }
}
