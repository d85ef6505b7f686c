use std::{
    sync::Arc,
    task::{Context, Poll, Waker},
};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    body::{Collected, Collector},
    future::ResponseFuture,
    layer::RetryConfig,
    ReplayBody,
};
use crate::{
    classify::{Policy, Standard},
    error::{BoxError, Error},
};

/// The service made by [`RetryOnStatus`](super::RetryOnStatus).
#[derive(Debug, Clone)]
pub struct RetryOnStatusService<S, P = Standard> {
    inner: S,
    config: Arc<RetryConfig<P>>,
}

impl<S, P> RetryOnStatusService<S, P> {
    pub(crate) fn new(inner: S, config: Arc<RetryConfig<P>>) -> Self {
        RetryOnStatusService { inner, config }
    }

    crate::macros::service_accessors!();
}

impl<S, B, ResB, P> Service<Request<B>> for RetryOnStatusService<S, P>
where
    P: Policy,
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ReplayBody<ResB>>;
    type Error = Error;
    type Future = ResponseFuture<S, B, ResB, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::from_inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Keep the readied service for this request; leave a clone for the next call.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, mut body) = request.into_parts();
        let mut collector = Collector::new(self.config.replay_cap);
        let config = self.config.clone();
        if body.is_end_stream() {
            return ResponseFuture::start(service, config, parts, collector);
        }
        // Most request bodies are already in memory (`Full<Bytes>`, `String`): one poll with a
        // no-op waker collects them, so the first attempt starts here, with no extra state.
        // A body that is not ready is polled again, with the real waker, by the future.
        match collector.poll_collect(&mut body, &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(Collected::Complete)) => {
                ResponseFuture::start(service, config, parts, collector)
            }
            Poll::Ready(Ok(Collected::OverCap)) => {
                ResponseFuture::send_once(service, config, parts, collector, body)
            }
            Poll::Ready(Err(e)) => ResponseFuture::failed(service, config, Error::from_inner(e)),
            // Reading a body that is still streaming in is a wait: give back what
            // `poll_ready` reserved; the future readies a clone once the body is in.
            Poll::Pending => {
                drop(service);
                let waiter = self.inner.clone();
                ResponseFuture::buffering(waiter, config, parts, collector, body)
            }
        }
    }
}
