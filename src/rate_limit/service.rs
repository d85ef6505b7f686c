use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::{
    future::ResponseFuture, layer::Shared, published, Admission, Demand, Metered, RequestShape,
    Scope, ScopeSource, Ticket,
};
use crate::{
    classify::{Policy, Standard},
    context::Deadline,
    error::{BoxError, Error},
    observe, Workload,
};

/// The service made by [`RateLimitAware`](super::RateLimitAware).
#[derive(Debug, Clone)]
pub struct RateLimitAwareService<S, P = Standard> {
    inner: S,
    shared: Arc<Shared<P>>,
}

impl<S, P> RateLimitAwareService<S, P> {
    pub(super) fn new(inner: S, shared: Arc<Shared<P>>) -> Self {
        RateLimitAwareService { inner, shared }
    }

    crate::macros::service_accessors!();
}

impl<S, B, ResB, P> Service<Request<B>> for RateLimitAwareService<S, P>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    P: Policy,
{
    type Response = Response<Metered<ResB>>;
    type Error = Error;
    type Future = ResponseFuture<S, Request<B>, P>;

    /// Only the inner service's readiness: waiting happens in the response future.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::from_inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let explicit = request.extensions().get::<Scope>().cloned();
        // The success path: one atomic load and one relaxed add, no clock, no deadline lookup;
        // the body is kept (a handle) to find the scope only if the server pushes back.
        if self.shared.store.admit_unrestricted() {
            let scope = match explicit {
                Some(scope) => ScopeSource::Known(scope),
                None => published::body().map_or(ScopeSource::Global, ScopeSource::Body),
            };
            return ResponseFuture::sent(
                self.inner.call(request),
                self.shared.clone(),
                scope,
                None,
                None,
                None,
            );
        }
        let now = Instant::now();
        let deadline = Deadline::of(&request);
        // The body is read once: its model (unless a scope was given) and its token estimate.
        let shape = published::body()
            .map(|body| RequestShape::read(&body))
            .unwrap_or_default();
        let estimate = shape.charge();
        let scope = explicit.unwrap_or_else(|| Scope::from_model(shape.model));
        // What answers taught the store about this scope's costs scales the estimate.
        let charge = self.shared.store.estimate_in(&scope, estimate);
        let tokens = charge.capped_total();
        let workload = Workload::of(&request);
        let demand = Demand::new(&scope)
            .tokens(tokens)
            .per_dimension(charge)
            .workload(workload)
            .deadline(deadline.map(Deadline::instant));
        match self.shared.store.admit_in(now, &demand, Ticket::New) {
            admission @ (Admission::Go | Admission::Probe(_)) => {
                let probe = match admission {
                    Admission::Probe(probe) => Some(probe),
                    _ => None,
                };
                ResponseFuture::sent(
                    self.inner.call(request),
                    self.shared.clone(),
                    ScopeSource::Known(scope),
                    probe,
                    Some(now),
                    Some(charge),
                )
            }
            Admission::TooLate { wait } => {
                observe::gate_refused(Some(wait));
                ResponseFuture::refused(Error::rate_limited(Some(wait)))
            }
            admission => {
                // Waiting must not hold a permit or slot of the inner service: give back what
                // `poll_ready` reserved; the request readies a clone once admitted. A retry
                // marks its wait so that a caller leaving meanwhile gets the retry's cost back.
                let guard = request
                    .extensions()
                    .get::<crate::context::RetryContext>()
                    .map(crate::context::RetryContext::begin_wait);
                ResponseFuture::waiting(
                    crate::readiness::release(&mut self.inner),
                    request,
                    self.shared.clone(),
                    (scope, tokens, charge, workload),
                    admission,
                    deadline,
                    guard,
                )
            }
        }
    }
}
