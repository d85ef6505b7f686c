//! `RedisStore`: one rate limit shared by a fleet of processes on one API key.
//!
//! Fireworks limits an *account*, per model. Ten replicas of a service each keeping their own
//! gate each learn the limit alone, and each spends its own 429s doing it: the fleet as a whole
//! sends about ten times what one careful client would. With this store, every process using
//! the same key prefix shares, per [`Scope`] (model), the gate's closed-until time and the
//! adaptive sending rate: a 429 for one model holds that model in every process, and no other
//! model. Each process paces at its share of the fleet's rate.
//!
//! Shares follow demand. Each process publishes its demand with its membership: the new
//! requests it was offered per second (sent, queued or refused alike), averaged over about a
//! second. Its share is its demand over the fleet's, each process weighing at least a tenth
//! of an even share (`1 / N`) so that an idle process can start at once (slowly) and gets
//! its part within a sync or two of its traffic showing; the shares add up to one. A process
//! offered 70 % of the fleet's traffic paces at 70 % of the fleet's rate instead of `1 / N`.
//! One share per process covers all its scopes (the demand is not counted per model).
//!
//! Requests never wait on Redis. Every decision is made on the in-process [`LocalStore`], as
//! without Redis; a background task syncs it with Redis every
//! [`sync_interval`](RedisConfig::sync_interval) (and at once when this process learns
//! something: a 429, a closure), in one atomic Lua script per sync. When Redis is slow or down
//! the process keeps running on its local state, says so once in `tracing` (a `warn` event,
//! and the `tower_reliability_fleet_store_fallbacks_total` metric), and picks the shared state
//! up again when Redis answers — a Redis restart included (the script is reloaded).
//!
//! What is shared, per scope: the gate's closure (a hinted 429, a no-hint backoff) and the
//! adaptive rate's curve (the fleet's rate at the last cut, when it was cut, its identity and
//! hinted plateau), for at most [`MAX_SCOPES`] scopes at once, in one hash (`{prefix}:gate`,
//! fields `kind` for the client-wide scope and `kind:model` for a model); the members and
//! their demands. A sync sends what this process learned for the scopes it has active and
//! reads back every scope the fleet has something on, so its payload is bounded by
//! [`MAX_SCOPES`] too. What is not shared: the circuit breaker (each process notices an outage
//! by itself, within a few requests), the paced queue (each process paces its own requests at
//! its share), and the mirrors of the server's request and token buckets (each process reads
//! the headers of its own responses).

mod background;
mod config;
mod connection;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::{sync::Notify, time::Instant};

use super::{
    local::Learned, Admission, Demand, LocalStore, Probe, RateLimitStore, Reservation, Scope,
    Signal, Ticket, TokenCharge, TokenLimits, Usage, Wake, MAX_SCOPES,
};

pub use config::RedisConfig;

/// Why a [`RedisStore`] could not be made.
#[derive(Debug)]
pub struct RedisStoreError(ErrorCause);

#[derive(Debug)]
enum ErrorCause {
    Url(redis::RedisError),
    NoRuntime,
    Prefix,
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ErrorCause::Url(e) => write!(f, "invalid Redis URL: {e}"),
            ErrorCause::NoRuntime => {
                f.write_str("RedisStore::spawn must be called within a tokio runtime")
            }
            ErrorCause::Prefix => f.write_str(
                "the key prefix must be non-empty and contain no `{` or `}` (it is the keys' hash tag)",
            ),
        }
    }
}

impl std::error::Error for RedisStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            ErrorCause::Url(e) => Some(e),
            ErrorCause::NoRuntime | ErrorCause::Prefix => None,
        }
    }
}

/// A [`RateLimitStore`] shared by every process with the same key prefix, through Redis.
///
/// One state per [`Scope`] (model), as [`LocalStore`] keeps, each shared with the fleet: a
/// closure (a hinted 429, a no-hint backoff) or a cut of the adaptive rate for one model holds
/// that model in every process, and no other model. At most [`MAX_SCOPES`] scopes are shared
/// at once. Not shared: the circuit breaker (each process notices an outage by itself), the
/// paced queue, and the mirrors of the server's request and token buckets (each process reads
/// its own responses' headers).
///
/// Each process paces at its [`share`](Self::share) of the fleet's rate, which follows its
/// demand: each process publishes, with its membership, the new requests it was offered per
/// second (sent, queued or refused alike, averaged over about a second), and its share is its
/// demand over the fleet's. Every process weighs at least a tenth of an even share (`1 / N`),
/// so an idle process can start at once (slowly) and gets its part within a sync or two of its
/// traffic showing; the shares add up to one. One share per process covers all its scopes.
///
/// ```no_run
/// use std::sync::Arc;
/// use tower_reliability::{fireworks, rate_limit::{RedisConfig, RedisStore}, RateLimitAware, Workload};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::spawn(RedisConfig::new(
///     "redis://127.0.0.1:6379",
///     "tower-reliability:fireworks:prod",
/// ))?;
/// let layer = fireworks::layer(Workload::Interactive)
///     .rate_limit(RateLimitAware::with_store(Arc::new(store)));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// Dropping the store stops its background task.
pub struct RedisStore {
    local: Arc<LocalStore>,
    link: Arc<Link>,
    task: tokio::task::AbortHandle,
}

/// What the request path hands the background task (what this process learned since the
/// last sync, per scope, and how many requests arrived), and what the task reports back.
#[derive(Debug)]
struct Link {
    /// At most [`MAX_SCOPES`] scopes; news of more is told as the client-wide scope's.
    pending: Mutex<HashMap<Scope, Learned>>,
    wake: Notify,
    shared: AtomicBool,
    members: AtomicU32,
    /// New requests so far (the process's demand, sent or not): one relaxed add each.
    arrivals: AtomicU64,
    /// This process's share of the fleet's rate, as `f64` bits.
    share: AtomicU64,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            pending: Mutex::default(),
            wake: Notify::new(),
            shared: AtomicBool::new(false),
            members: AtomicU32::new(0),
            arrivals: AtomicU64::new(0),
            share: AtomicU64::new(1.0f64.to_bits()),
        }
    }
}

impl Link {
    /// Takes what is pending, leaving nothing.
    fn take(&self) -> HashMap<Scope, Learned> {
        std::mem::take(&mut *self.pending())
    }

    /// Adds `learned` about `scope` to what is pending.
    fn merge(&self, scope: &Scope, learned: Learned) {
        let mut pending = self.pending();
        let scope = if pending.contains_key(scope) || pending.len() < MAX_SCOPES {
            scope.clone()
        } else {
            Scope::global()
        };
        pending.entry(scope).or_default().merge(learned);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, Learned>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn arrived(&self, ticket: Ticket) {
        if ticket == Ticket::New {
            self.arrivals.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RedisStore {
    /// Makes the store and starts its background sync on the current tokio runtime. Does not
    /// wait for Redis: until the first sync succeeds, the process runs on its local state.
    ///
    /// # Errors
    ///
    /// An unparseable URL (or unreadable [`ca_cert`](RedisConfig::ca_cert)), an empty prefix
    /// or one with `{` or `}`, or no tokio runtime to run the sync on.
    pub fn spawn(config: RedisConfig) -> Result<RedisStore, RedisStoreError> {
        if config.prefix.is_empty() || config.prefix.contains(['{', '}']) {
            return Err(RedisStoreError(ErrorCause::Prefix));
        }
        let endpoint =
            connection::Endpoint::new(&config).map_err(|e| RedisStoreError(ErrorCause::Url(e)))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| RedisStoreError(ErrorCause::NoRuntime))?;
        let local = Arc::new(LocalStore::new(config.gate));
        let link = Arc::new(Link::default());
        let task = runtime
            .spawn(background::run(
                endpoint,
                config,
                local.clone(),
                link.clone(),
            ))
            .abort_handle();
        Ok(RedisStore { local, link, task })
    }

    /// The in-process state every decision is made on (for
    /// [`paced_rate`](LocalStore::paced_rate), [`closed_until`](LocalStore::closed_until)).
    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    /// Whether the process uses the fleet's state: `false` until the first sync succeeds and
    /// after a fallback (syncs failing for [`fallback_after`](RedisConfig::fallback_after)),
    /// `true` again once Redis answers. The sync runs on the runtime `spawn` was called in:
    /// if that runtime shuts down, the store carries on locally.
    pub fn is_shared(&self) -> bool {
        self.link.shared.load(Ordering::Acquire)
    }

    /// Live processes sharing the state, as of the last sync (0 before the first).
    pub fn members(&self) -> u32 {
        self.link.members.load(Ordering::Acquire)
    }

    /// This process's part of the fleet's rate, as of the last sync: its demand over the
    /// fleet's (see [`RedisStore`]); 1 before the first sync and after a fallback.
    pub fn share(&self) -> f64 {
        f64::from_bits(self.link.share.load(Ordering::Acquire))
    }

    fn publish(&self, scope: &Scope, learned: Learned) {
        self.link.merge(scope, learned);
        self.link.wake.notify_one();
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("shared", &self.is_shared())
            .field("members", &self.members())
            .field("local", &self.local)
            .finish()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RateLimitStore for RedisStore {
    fn admit(&self, now: Instant, ticket: Ticket, deadline: Option<Instant>) -> Admission {
        let global = Scope::global();
        self.admit_in(now, &Demand::new(&global).deadline(deadline), ticket)
    }

    fn admit_in(&self, now: Instant, demand: &Demand<'_>, ticket: Ticket) -> Admission {
        self.link.arrived(ticket);
        self.local.admit_in(now, demand, ticket)
    }

    /// The background sync wakes the layer's waiters when a faster fleet rate re-paces them.
    fn attach(&self, wake: super::WakeHandle) {
        self.local.attach(wake);
    }

    fn admit_unrestricted(&self) -> bool {
        if !self.local.admit_unrestricted() {
            return false;
        }
        self.link.arrived(Ticket::New);
        true
    }

    fn record(&self, now: Instant, signal: Signal, probe: Option<Probe>) -> Wake {
        self.record_in(now, &Scope::global(), signal, probe, None)
    }

    fn record_sent(
        &self,
        now: Instant,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Wake {
        self.record_in(now, &Scope::global(), signal, probe, sent_at)
    }

    fn record_in(
        &self,
        now: Instant,
        scope: &Scope,
        signal: Signal,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Wake {
        let (wake, learned) = self.local.learn(now, scope, signal, probe, sent_at);
        if !learned.is_empty() {
            self.publish(scope, learned);
        }
        wake
    }

    fn release_probe(&self, probe: Probe) -> Wake {
        self.local.release_probe(probe)
    }

    fn leave(&self, now: Instant, slot: Reservation) -> Wake {
        self.local.leave(now, slot)
    }

    fn leave_in(&self, now: Instant, scope: &Scope, slot: Reservation) -> Wake {
        self.local.leave_in(now, scope, slot)
    }

    fn is_unrestricted(&self) -> bool {
        self.local.is_unrestricted()
    }

    // Token accounting stays per process: each mirrors what its own answers say.
    fn learn_limits_in(&self, now: Instant, scope: &Scope, limits: TokenLimits) {
        self.local.learn_limits_in(now, scope, limits);
    }

    fn meters_in(&self, scope: &Scope) -> bool {
        self.local.meters_in(scope)
    }

    fn estimate_in(&self, scope: &Scope, charge: TokenCharge) -> TokenCharge {
        self.local.estimate_in(scope, charge)
    }

    fn settle_in(
        &self,
        now: Instant,
        scope: &Scope,
        sent_at: Instant,
        charged: TokenCharge,
        usage: Usage,
    ) -> Wake {
        self.local.settle_in(now, scope, sent_at, charged, usage)
    }
}
