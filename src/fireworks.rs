//! The preset: the four layers in the recommended order, with the guide's numbers.
//!
//! ```text
//! TimeoutByWorkload     total deadline, body idle timeout       (outermost)
//!   RetryOnStatus       what to retry, 5 attempts, budget, body replay
//!     JitteredBackoff   1 s * 2^n + U(0, 1 s), server hints up to 120 s
//!       RateLimitAware  whether anyone may send now
//!         AttemptTimeout  per-attempt time to headers (batch submission: 20 s)
//!           your client (hyper-util, reqwest, ...)
//! ```
//!
//! Why this order: the deadline must cover every attempt and wait, so it is outermost; each
//! retry must wait its backoff and then pass the shared gate, so both sit inside the retry
//! layer; the per-attempt limit must cut one attempt, not the whole request, so it sits
//! innermost. Everything can be swapped: [`FireworksLayer`] has a method per layer.
//!
//! **The client's body type.** The retry layer sends every attempt as a
//! `Request<`[`RequestBody<B>`]`>` (the crate's [`ReplayBody`]), so the client
//! you wrap must be built for that body, not for `B`: `build_http::<Full<Bytes>>()` fails with an
//! E0599 on `ready` that does not name the body. Its response body must be `Unpin` (hyper's
//! `Incoming` is); you get it back as a [`ResponseBody<B>`].
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::ServiceBuilder;
//! use tower_reliability::{fireworks, Workload};
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<fireworks::RequestBody<Full<Bytes>>>();
//! let service = ServiceBuilder::new()
//!     .layer(fireworks::layer(Workload::Interactive))
//!     .service(client);
//! # let _ = service;
//! ```

use tower_layer::Layer;

use crate::{
    backoff::{JitteredBackoff, JitteredBackoffService},
    classify::{Policy, Standard},
    rate_limit::{Metered, RateLimitAware, RateLimitAwareService},
    retry::{ReplayBody, RetryOnStatus, RetryOnStatusService},
    timeout::{
        AttemptTimeout, AttemptTimeoutService, TimeoutBody, TimeoutByWorkload,
        TimeoutByWorkloadService,
    },
    workload::Workload,
};

/// The Fireworks inference API's base URL.
pub const BASE_URL: &str = "https://api.fireworks.ai/inference/v1";

/// The stack with the guide's values, for requests of `workload` by default (a request's own
/// [`Workload`] extension overrides it).
///
/// The service you wrap receives `Request<`[`RequestBody<B>`]`>` (a [`ReplayBody`]) for the
/// caller's `Request<B>`, and must answer with an `Unpin` body. A mock with `service_fn`:
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_reliability::{fireworks, Workload};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let mock = service_fn(|request: http::Request<fireworks::RequestBody<Full<Bytes>>>| async move {
///     let _sent = request.into_body().collect().await?.to_bytes();
///     Ok::<_, tower_reliability::BoxError>(http::Response::new(Full::new(Bytes::from("ok"))))
/// });
/// let service = ServiceBuilder::new()
///     .layer(fireworks::layer(Workload::Interactive))
///     .service(mock);
///
/// let request = http::Request::post("https://api.fireworks.ai/inference/v1/chat/completions")
///     .body(Full::new(Bytes::from(r#"{"model":"m","messages":[]}"#)))?;
/// let response = service.oneshot(request).await?;
/// let body: fireworks::ResponseBody<Full<Bytes>> = response.into_body();
/// assert_eq!(&body.collect().await?.to_bytes()[..], b"ok");
/// # Ok(())
/// # }
/// ```
pub fn layer(workload: Workload) -> FireworksLayer {
    FireworksLayer {
        timeouts: TimeoutByWorkload::new(workload),
        retry: RetryOnStatus::default(),
        backoff: JitteredBackoff::default(),
        rate_limit: RateLimitAware::new(),
        attempt: AttemptTimeout::by_workload(workload),
    }
}

/// The four layers (and the per-attempt timeout) stacked in the recommended order.
///
/// Clones share the rate-limit state and the retry budget: build one per API key and clone it
/// into every stack that uses the key.
#[derive(Debug, Clone)]
pub struct FireworksLayer<P = Standard> {
    timeouts: TimeoutByWorkload,
    retry: RetryOnStatus<P>,
    backoff: JitteredBackoff,
    rate_limit: RateLimitAware<P>,
    attempt: AttemptTimeout,
}

/// The service the preset builds around `S` (`P`: the [`classify::Policy`](crate::classify)).
pub type FireworksService<S, P = Standard> = TimeoutByWorkloadService<
    RetryOnStatusService<
        JitteredBackoffService<RateLimitAwareService<AttemptTimeoutService<S>, P>>,
        P,
    >,
>;

/// The request body the client below the preset receives for a caller's body `B`: the retry
/// layer's [`ReplayBody`], which replays `B`'s bytes on every attempt. Build the client for it
/// (`build_http::<RequestBody<Full<Bytes>>>()`).
pub type RequestBody<B> = ReplayBody<B>;

/// The response body the preset hands back around the client's body `B`.
pub type ResponseBody<B> = TimeoutBody<ReplayBody<Metered<B>>>;

impl<P: Policy> FireworksLayer<P> {
    /// Judges outcomes with `policy`, in both the retry layer and the rate-limit gate (default
    /// [`Standard`], the guide). Call it after [`retry`](Self::retry) and
    /// [`rate_limit`](Self::rate_limit), which bring their own.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_reliability::{classify::{Policy, Standard}, fireworks, Workload};
    ///
    /// // Retry 408 but don't count it for the breaker.
    /// let layer = fireworks::layer(Workload::Interactive)
    ///     .classify(Standard::new().retry_also(StatusCode::REQUEST_TIMEOUT).not_for_breaker(408));
    /// # let _ = layer;
    /// ```
    pub fn classify<Q: Policy>(self, policy: Q) -> FireworksLayer<Q> {
        FireworksLayer {
            timeouts: self.timeouts,
            retry: self.retry.classify(policy.clone()),
            backoff: self.backoff,
            rate_limit: self.rate_limit.classify(policy),
            attempt: self.attempt,
        }
    }

    /// Replaces the timeouts layer. The per-attempt limits follow its profiles' `attempt`
    /// fields (call [`attempt_timeout`](Self::attempt_timeout) afterwards to set them apart).
    pub fn timeouts(mut self, timeouts: TimeoutByWorkload) -> Self {
        self.attempt = AttemptTimeout::from_timeouts(&timeouts);
        self.timeouts = timeouts;
        self
    }

    /// Replaces the retry layer.
    pub fn retry(mut self, retry: RetryOnStatus<P>) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the backoff layer.
    pub fn backoff(mut self, backoff: JitteredBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the rate-limit layer (pass a clone to share a gate between presets).
    pub fn rate_limit(mut self, rate_limit: RateLimitAware<P>) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Replaces the per-attempt timeout.
    pub fn attempt_timeout(mut self, attempt: AttemptTimeout) -> Self {
        self.attempt = attempt;
        self
    }

    /// The retry layer in use (its budget is shared by clones).
    pub fn retry_layer(&self) -> &RetryOnStatus<P> {
        &self.retry
    }

    /// The rate-limit layer in use (its state is shared by clones).
    pub fn rate_limit_layer(&self) -> &RateLimitAware<P> {
        &self.rate_limit
    }

    /// The timeouts layer in use.
    pub fn timeouts_layer(&self) -> &TimeoutByWorkload {
        &self.timeouts
    }
}

impl<S, P: Policy> Layer<S> for FireworksLayer<P> {
    type Service = FireworksService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.attempt.layer(inner);
        let inner = self.rate_limit.layer(inner);
        let inner = self.backoff.layer(inner);
        let inner = self.retry.layer(inner);
        self.timeouts.layer(inner)
    }
}
