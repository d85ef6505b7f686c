use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::{future::ResponseFuture, TimeoutBody, TimeoutByWorkload};
use crate::{
    context::{Ambient, Deadline},
    error::{BoxError, Error},
    workload::Workload,
};

/// The service made by [`TimeoutByWorkload`].
#[derive(Debug, Clone)]
pub struct TimeoutByWorkloadService<S> {
    inner: S,
    config: TimeoutByWorkload,
}

impl<S> TimeoutByWorkloadService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: TimeoutByWorkload) -> Self {
        TimeoutByWorkloadService { inner, config }
    }

    crate::macros::service_accessors!();
}

impl<S, B, ResB> Service<Request<B>> for TimeoutByWorkloadService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<TimeoutBody<ResB>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::from_inner)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let workload = request
            .extensions()
            .get::<Workload>()
            .copied()
            .unwrap_or(self.config.default);
        let profile = crate::workload::profile_override(&request)
            .unwrap_or_else(|| self.config.profile_of(workload));
        let own = Deadline::at(crate::time::after(Instant::now(), profile.total));
        let deadline = Deadline::earliest(Some(own), Deadline::of(&request)).unwrap_or(own);
        if self.config.deadline_in_extensions {
            request.extensions_mut().insert(deadline);
        }
        let ambient = Ambient {
            deadline,
            workload: Some(workload),
        };
        // A guard rather than a closure: the inner future is built in place, not returned
        // through the scope.
        let published = ambient.enter();
        let future = self.inner.call(request);
        drop(published);
        ResponseFuture::new(future, ambient, profile.idle_read)
    }
}
