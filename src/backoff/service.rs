use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::{future::ResponseFuture, JitteredBackoff};
use crate::{
    context::{Deadline, RetryContext},
    error::{BoxError, Error},
    observe,
};

/// The service made by [`JitteredBackoff`].
#[derive(Debug, Clone)]
pub struct JitteredBackoffService<S> {
    inner: S,
    policy: JitteredBackoff,
}

impl<S> JitteredBackoffService<S> {
    /// Wraps `inner` with the given backoff policy.
    pub fn new(inner: S, policy: JitteredBackoff) -> Self {
        JitteredBackoffService { inner, policy }
    }

    crate::macros::service_accessors!();
}

impl<S, B, ResB> Service<Request<B>> for JitteredBackoffService<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::from_inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(ctx) = request.extensions().get::<RetryContext>() else {
            return ResponseFuture::first(self.inner.call(request));
        };
        let now = Instant::now();
        let retry = ctx.attempt().saturating_sub(2);
        match self.policy.wait_before(
            retry,
            ctx.last_wait(),
            ctx.server_hint(),
            now,
            Deadline::of(&request),
        ) {
            Err(refusal) => {
                observe::backoff_refused(ctx.attempt(), &refusal);
                ResponseFuture::refused(refusal)
            }
            Ok(wait) if wait.is_zero() => ResponseFuture::direct(self.inner.call(request)),
            Ok(wait) => {
                ctx.record_wait(wait);
                observe::backoff(ctx.attempt(), wait, ctx.server_hint());
                // Sleeping must not hold a permit or slot of the inner service: give back
                // what `poll_ready` reserved and ready a clone after the wait.
                let guard = ctx.begin_wait();
                ResponseFuture::waiting(
                    crate::readiness::release(&mut self.inner),
                    request,
                    crate::time::after(now, wait),
                    guard,
                )
            }
        }
    }
}
