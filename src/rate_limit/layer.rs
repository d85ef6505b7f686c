use std::sync::Arc;

use tokio::sync::Notify;
use tower_layer::Layer;

use crate::classify::{Policy, Standard};

use super::{GateConfig, LocalStore, RateLimitAwareService, RateLimitStore, Wake, WakeHandle};

/// One rate-limit state per client, shared by every clone: it learns from every response and
/// paces every request, so the process backs off as a whole.
///
/// - A **429** (or a 503 with a hint) closes the gate for every request of every clone until
///   the server's `retry-after-ms` / `Retry-After` time (at most [`GateConfig::max_hold`]), or
///   for a short doubling backoff when the server gave no hint (Fireworks does not promise
///   one).
/// - `x-ratelimit-remaining-requests: 0` (with `x-ratelimit-limit-requests` and/or
///   `x-ratelimit-reset-requests`) paces requests *before* the 429 at the server's refill rate,
///   one per `reset / limit`, as its continuously refilling bucket allows ([`Quota`](super::Quota)).
/// - A **high failure ratio** (5xx without hint, broken connections, attempts cut by their
///   deadline) over a window with enough requests in it means an outage: new requests are held
///   while a single probe at a time tests the server (a circuit breaker's half-open state), so
///   an outage costs about one attempt per request, and held requests go out once it is over,
///   within their deadlines, ramping up quickly. Load shedding (some 503s while most requests
///   succeed) does not trip it: only the retries of the failed requests pay.
/// - From the first throttle on, every request is paced at an **adaptive client-side rate**
///   ([`GateConfig::rate_control`], CUBIC by default): cut once per wave of 429s, grown back
///   until the next, forgotten after a quiet spell. It converges near a limit the server never
///   states, and follows it when it changes.
/// - When the gate reopens, held requests are released paced and first come, first served
///   (at the learned rate, or [`release_spacing`](GateConfig::release_spacing) before one is
///   learned, doubling while successes come back after a breaker spell), not as a herd. A
///   request that goes away while waiting gives its place back.
/// - A request whose wait would pass its [`Deadline`](crate::context::Deadline) fails at once with
///   [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited), carrying the wait.
///
/// What a response or an error teaches the gate is the [`classify::Policy`](crate::classify)'s
/// [`gate`](crate::classify::Classification::gate) judgement ([`Standard`] by default, the
/// guide's: the list above); give the retry layer the same policy with
/// [`classify`](Self::classify) on both, or once on the
/// [`fireworks`](crate::fireworks::FireworksLayer::classify) preset.
///
/// Waiting happens in the response future, never in `poll_ready`, so the service stays
/// `Clone` and works under axum's `Router` and tower's `Buffer` (unlike tower's `RateLimit`).
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_reliability::RateLimitAware;
///
/// let shared = RateLimitAware::new();
/// // Two stacks (say, chat and batch) on one API key share one gate.
/// let chat = ServiceBuilder::new().layer(shared.clone());
/// let batch = ServiceBuilder::new().layer(shared.clone());
/// # let _ = (chat, batch);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitAware<P = Standard> {
    pub(super) shared: Arc<Shared<P>>,
}

/// The state, the wake-ups and the classification, behind one `Arc`.
#[derive(Debug)]
pub(super) struct Shared<P: ?Sized = Standard> {
    pub(super) store: Arc<dyn RateLimitStore>,
    pub(super) notify: Arc<Notify>,
    // Last: an `Arc<Shared<P>>` coerces to an `Arc<AnyShared>` for what needs no policy.
    pub(super) policy: P,
}

/// The shared state with its policy type erased (a settling body holds one).
pub(super) type AnyShared = Shared<dyn std::any::Any + Send + Sync>;

impl<P: ?Sized> Shared<P> {
    pub(super) fn wake(&self, wake: Wake) {
        if wake == Wake::All {
            self.notify.notify_waiters();
        }
    }
}

impl Default for RateLimitAware {
    fn default() -> Self {
        RateLimitAware::new()
    }
}

impl RateLimitAware {
    /// A fresh in-memory state with the default [`GateConfig`].
    pub fn new() -> Self {
        RateLimitAware::with_config(GateConfig::default())
    }

    /// A fresh in-memory state with these knobs.
    pub fn with_config(config: GateConfig) -> Self {
        RateLimitAware::with_store(Arc::new(LocalStore::new(config)))
    }

    /// Uses another store (for example a [`RedisStore`](super::RedisStore), shared by many
    /// processes; feature `redis`).
    pub fn with_store(store: Arc<dyn RateLimitStore>) -> Self {
        let notify = Arc::new(Notify::new());
        store.attach(WakeHandle(notify.clone()));
        RateLimitAware {
            shared: Arc::new(Shared {
                store,
                notify,
                policy: Standard::new(),
            }),
        }
    }
}

impl<P> RateLimitAware<P> {
    /// The same shared state, judging outcomes with `policy` (default [`Standard`]): a
    /// response or error teaches the gate the policy's
    /// [`gate`](crate::classify::Classification::gate) judgement.
    ///
    /// ```
    /// use tower_reliability::{classify::{Policy, Standard}, RateLimitAware};
    ///
    /// // 500s are retried but do not trip the circuit breaker.
    /// let gate = RateLimitAware::new().classify(Standard::new().not_for_breaker(500));
    /// # let _ = gate;
    /// ```
    pub fn classify<Q: Policy>(self, policy: Q) -> RateLimitAware<Q> {
        RateLimitAware {
            shared: Arc::new(Shared {
                store: self.shared.store.clone(),
                notify: self.shared.notify.clone(),
                policy,
            }),
        }
    }

    /// The policy that judges outcomes.
    pub fn policy(&self) -> &P {
        &self.shared.policy
    }

    /// The shared store.
    pub fn store(&self) -> &Arc<dyn RateLimitStore> {
        &self.shared.store
    }

    /// Whether two handles share one state.
    pub fn shares_state_with<Q>(&self, other: &RateLimitAware<Q>) -> bool {
        // The wake-ups are made once per state: clones and re-classified handles share them.
        Arc::ptr_eq(&self.shared.notify, &other.shared.notify)
    }
}

impl<S, P> Layer<S> for RateLimitAware<P> {
    type Service = RateLimitAwareService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitAwareService::new(inner, self.shared.clone())
    }
}
