//! The per-attempt time-to-headers limit.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::Request;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::{BoxError, Error, TimeoutPhase},
    workload::{PerWorkload, Workload},
};

/// Limits each attempt's time to response headers; a retry layer outside retries it.
///
/// tower's own `tower::timeout` in this place works too (its `Elapsed` becomes
/// [`TimeoutPhase::Attempt`] in [`RetryOnStatus`](crate::RetryOnStatus)); this layer adds limits
/// per [`Workload`] and no timer at all where there is no limit. Put either *below*
/// [`JitteredBackoff`](crate::JitteredBackoff): above it, the limit also runs through the wait
/// (a wait it cuts sends nothing, and the retry layer hands back the last response).
///
/// The limit comes from the request's [`Workload`] (the profiles' `attempt` field: by default
/// only [`Workload::BatchSubmit`] has one, 20 s) or is fixed; a request that carries its own
/// [`TimeoutProfile`](crate::TimeoutProfile) gets that profile's `attempt` instead. With no
/// limit, requests pass through with no timer at all.
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::{timeout::AttemptTimeout, Workload};
///
/// let per_workload = AttemptTimeout::by_workload(Workload::Interactive);
/// let fixed = AttemptTimeout::fixed(Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeout {
    default: Workload,
    limits: PerWorkload<Option<Duration>>,
}

impl AttemptTimeout {
    /// Limits from the workload profiles, with `default` for requests that name none.
    pub fn by_workload(default: Workload) -> Self {
        AttemptTimeout {
            default,
            limits: PerWorkload::from_fn(|w| w.profile().attempt),
        }
    }

    /// The per-attempt limits of a [`TimeoutByWorkload`](super::TimeoutByWorkload)'s profiles
    /// (its `attempt` fields), with its default workload.
    pub fn from_timeouts(timeouts: &super::TimeoutByWorkload) -> Self {
        AttemptTimeout {
            default: timeouts.default_workload(),
            limits: PerWorkload::from_fn(|w| timeouts.profile_of(w).attempt),
        }
    }

    /// The same limit for every request.
    pub fn fixed(limit: Duration) -> Self {
        AttemptTimeout {
            default: Workload::Interactive,
            limits: PerWorkload::from_fn(|_| Some(limit)),
        }
    }

    /// Sets (or clears) one workload's limit.
    pub fn limit(mut self, workload: Workload, limit: Option<Duration>) -> Self {
        self.limits.set(workload, limit);
        self
    }

    /// The limit in force for `workload`.
    pub fn limit_of(&self, workload: Workload) -> Option<Duration> {
        *self.limits.get(workload)
    }
}

impl<S> Layer<S> for AttemptTimeout {
    type Service = AttemptTimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptTimeoutService {
            inner,
            config: *self,
        }
    }
}

/// The service made by [`AttemptTimeout`].
#[derive(Debug, Clone)]
pub struct AttemptTimeoutService<S> {
    inner: S,
    config: AttemptTimeout,
}

impl<S> AttemptTimeoutService<S> {
    crate::macros::service_accessors!();
}

impl<S, B> Service<Request<B>> for AttemptTimeoutService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = AttemptResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::from_inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let workload = request
            .extensions()
            .get::<Workload>()
            .copied()
            .unwrap_or(self.config.default);
        let limit = match crate::workload::profile_override(&request) {
            Some(profile) => profile.attempt,
            None => self.config.limit_of(workload),
        };
        let inner = self.inner.call(request);
        let state = match limit {
            None => State::Unlimited { inner },
            Some(limit) => State::Limited {
                inner,
                until: crate::time::after(Instant::now(), limit),
                sleep: None,
            },
        };
        AttemptResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`AttemptTimeoutService`].
    pub struct AttemptResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum State<F> {
        // No limit for this request.
        Unlimited { #[pin] inner: F },
        // Racing the limit. The timer is made on the first `Pending` and boxed: an answer that
        // is ready at once never touches the timer wheel, and the 112-byte `Sleep` does not
        // sit inline in every future above this one (most requests have no attempt limit).
        Limited { #[pin] inner: F, until: Instant, sleep: Option<Pin<Box<Sleep>>> },
    }
}

impl<F, T, E> Future for AttemptResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AttemptProj::Unlimited { inner } => inner.poll(cx).map_err(Error::from_inner),
            AttemptProj::Limited {
                inner,
                until,
                sleep,
            } => {
                if let Poll::Ready(result) = inner.poll(cx) {
                    return Poll::Ready(result.map_err(Error::from_inner));
                }
                let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*until)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        crate::observe::timeout(TimeoutPhase::Attempt);
                        Poll::Ready(Err(Error::timeout(TimeoutPhase::Attempt)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
