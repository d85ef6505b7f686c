use std::{sync::Arc, time::Duration};

use tower_layer::Layer;

use super::{RetryBudget, RetryOnStatusService, StatusSet};
use crate::classify::{Policy, Standard};

/// Re-issues a request when the outcome says another attempt can help.
///
/// Retried (the guide's table, and what never reached the server):
/// - responses with 429, 500, 502, 503, 504 (configurable with [`statuses`](Self::statuses));
/// - connect failures, transport failures before a response (reset, closed), and per-attempt
///   timeouts: [`AttemptTimeout`](crate::timeout::AttemptTimeout)'s, and tower's own
///   `tower::timeout` placed inside this layer (its `Elapsed` is read as
///   [`TimeoutPhase::Attempt`](crate::error::TimeoutPhase::Attempt), so a gateway answers 504 when
///   every attempt timed out, not 502);
/// - any response with `x-should-retry: true`.
///
/// That is the guide, [`classify::Standard`](crate::classify::Standard); the retry decision is
/// the [`retry`](crate::classify::Classification::retry) judgement of a
/// [`classify::Policy`](crate::classify::Policy), set with [`classify`](Self::classify) (the
/// knobs below adjust `Standard`). Give [`RateLimitAware`](crate::RateLimitAware) the same
/// policy, so both layers judge an outcome alike.
///
/// Never retried: 400, 401, 404, 422 and every other status outside the set; a response with
/// `x-should-retry: false`; a total-deadline timeout; a stream already handed to the caller (the
/// decision is made on the response head, before any body reaches you).
///
/// Limits: at most [`max_attempts`](Self::max_attempts) attempts (5, the guide's loop), a
/// [`RetryBudget`] shared by every clone (an outage cannot multiply load), and no retry that
/// cannot start before the [`Deadline`](crate::context::Deadline).
///
/// **Bodies.** The request body is read into memory, up to [`replay_cap`](Self::replay_cap)
/// (16 MiB: about four million tokens of JSON, more than any long-context prompt), and every
/// attempt sends the same bytes. A larger body is sent once, as a stream, and not retried
/// ([`StopReason::BodyNotReplayable`](crate::context::StopReason::BodyNotReplayable) in the
/// [`RetryReport`](crate::RetryReport) and a `warn` event). A single-chunk body (`Full<Bytes>`,
/// `String`) is never copied. The body type must be `Unpin`; wrap other bodies in `Box::pin`.
///
/// **What the service below receives.** Every attempt is sent as a
/// `Request<`[`ReplayBody<B>`](crate::ReplayBody)`>`, not the caller's `Request<B>`: the service
/// you wrap must accept that body type (a hyper-util client is built with
/// `build_http::<ReplayBody<Full<Bytes>>>()`; building it for `Full<Bytes>` fails with an
/// E0599 on `ready` that does not name the body). The service's response body must be `Unpin`
/// too (hyper's `Incoming`, `Full`, `String` are; box others with `Box::pin`); the caller gets
/// it back as a `ReplayBody` around it. A mock with `service_fn`:
///
/// ```
/// use std::{convert::Infallible, sync::{atomic::{AtomicU32, Ordering}, Arc}};
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_reliability::{ReplayBody, RetryOnStatus, RetryReport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let calls = Arc::new(AtomicU32::new(0));
/// let mock = service_fn(move |request: http::Request<ReplayBody<Full<Bytes>>>| {
///     let calls = calls.clone();
///     async move {
///         let sent = request.into_body().collect().await?.to_bytes();
///         assert_eq!(&sent[..], b"hello", "every attempt sends the same bytes");
///         let status = if calls.fetch_add(1, Ordering::SeqCst) == 0 { 503 } else { 200 };
///         let response = http::Response::builder().status(status).body(Full::new(Bytes::from("ok")))?;
///         Ok::<_, tower_reliability::BoxError>(response)
///     }
/// });
/// let service = ServiceBuilder::new().layer(RetryOnStatus::default()).service(mock);
///
/// let response = service.oneshot(http::Request::new(Full::new(Bytes::from("hello")))).await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.extensions().get::<RetryReport>().map(|r| r.attempts), Some(2));
/// # Ok(())
/// # }
/// ```
///
/// The body of a response that will be retried is read (up to 64 KiB, for at most 5 s) so the
/// connection goes back to the pool; if the retry cannot start (its wait is refused, the
/// service below fails to get ready) or the deadline comes while it waits or is in flight
/// ([`StopReason::DeadlineReached`](crate::context::StopReason::DeadlineReached)), you get that response
/// back, status, headers and body intact (a body that broke while being set aside ends with
/// its error). A response too large or too slow to set aside is handed to you as it is, not
/// retried.
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::{retry::{RetryBudget, StatusSet}, RetryOnStatus};
///
/// let retry = RetryOnStatus::default()
///     .max_attempts(3)
///     .statuses(StatusSet::GUIDE.with(408).with(520))
///     .budget(RetryBudget::new(100, 5, 10))
///     .replay_cap(1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct RetryOnStatus<P = Standard> {
    pub(super) config: RetryConfig<P>,
}

#[derive(Debug, Clone)]
pub(crate) struct RetryConfig<P = Standard> {
    pub(crate) policy: P,
    pub(crate) max_attempts: u32,
    pub(crate) replay_cap: usize,
    pub(crate) drain_cap: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) budget: RetryBudget,
}

impl Default for RetryOnStatus {
    /// The guide's statuses, 5 attempts, the AWS retry quota, a 16 MiB replay cap.
    fn default() -> Self {
        RetryOnStatus {
            config: RetryConfig {
                policy: Standard::new(),
                max_attempts: 5,
                replay_cap: 16 * 1024 * 1024,
                drain_cap: 64 * 1024,
                drain_timeout: Duration::from_secs(5),
                budget: RetryBudget::default(),
            },
        }
    }
}

impl RetryOnStatus {
    /// The defaults; same as [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The statuses to retry (default [`StatusSet::GUIDE`]).
    pub fn statuses(mut self, statuses: StatusSet) -> Self {
        self.config.policy = self.config.policy.statuses(statuses);
        self
    }

    /// Whether a response's `x-should-retry: true|false` overrides the status (default `true`).
    pub fn honour_should_retry(mut self, honour: bool) -> Self {
        self.config.policy = self.config.policy.honour_should_retry(honour);
        self
    }

    /// Whether to retry failures that never reached the server (default `true`).
    pub fn retry_connect_errors(mut self, retry: bool) -> Self {
        self.config.policy = self.config.policy.retry_connect_errors(retry);
        self
    }

    /// Whether to retry connections lost after sending, before a response (default `true`, as
    /// the OpenAI SDK does; the server may have seen the request).
    pub fn retry_transport_errors(mut self, retry: bool) -> Self {
        self.config.policy = self.config.policy.retry_transport_errors(retry);
        self
    }

    /// Whether to retry per-attempt timeouts (default `true`).
    pub fn retry_attempt_timeouts(mut self, retry: bool) -> Self {
        self.config.policy = self.config.policy.retry_attempt_timeouts(retry);
        self
    }
}

impl<P> RetryOnStatus<P> {
    /// Judges outcomes with `policy` instead (default [`Standard`], as adjusted by the knobs
    /// above): the layer retries what its
    /// [`retry`](crate::classify::Classification::retry) judgement says.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_reliability::{classify::{Policy, Standard}, RetryOnStatus};
    ///
    /// let retry = RetryOnStatus::new().classify(Standard::new().retry_also(StatusCode::REQUEST_TIMEOUT));
    /// # let _ = retry;
    /// ```
    pub fn classify<Q: Policy>(self, policy: Q) -> RetryOnStatus<Q> {
        let RetryConfig {
            policy: _,
            max_attempts,
            replay_cap,
            drain_cap,
            drain_timeout,
            budget,
        } = self.config;
        RetryOnStatus {
            config: RetryConfig {
                policy,
                max_attempts,
                replay_cap,
                drain_cap,
                drain_timeout,
                budget,
            },
        }
    }

    /// The policy that judges outcomes.
    pub fn policy(&self) -> &P {
        &self.config.policy
    }

    /// The total number of attempts, the first included (default 5; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts.max(1);
        self
    }

    /// The largest request body replayed (default 16 MiB). Larger bodies are sent once.
    pub fn replay_cap(mut self, bytes: usize) -> Self {
        self.config.replay_cap = bytes;
        self
    }

    /// The largest retryable response body set aside before retrying (default 64 KiB).
    pub fn drain_cap(mut self, bytes: usize) -> Self {
        self.config.drain_cap = bytes;
        self
    }

    /// How long to wait for a retryable response's body (default 5 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.drain_timeout = timeout;
        self
    }

    /// The retry budget. Pass clones of one budget to share it between stacks.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.config.budget = budget;
        self
    }

    /// The retry budget in use (clones share the bucket).
    pub fn current_budget(&self) -> &RetryBudget {
        &self.config.budget
    }
}

impl<S, P: Clone> Layer<S> for RetryOnStatus<P> {
    type Service = RetryOnStatusService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryOnStatusService::new(inner, Arc::new(self.config.clone()))
    }
}
