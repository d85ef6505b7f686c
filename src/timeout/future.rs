//! The futures of [`TimeoutByWorkloadService`](super::TimeoutByWorkloadService) (the deadline)
//! and [`AttemptTimeoutService`](super::AttemptTimeoutService) (one attempt's limit).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

pub use super::attempt::AttemptResponseFuture;
use super::TimeoutBody;
use crate::{
    context::Ambient,
    error::{BoxError, Error, TimeoutPhase},
};

pin_project! {
    /// The response future of [`TimeoutByWorkloadService`](super::TimeoutByWorkloadService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Created on the first `Pending`: a response that is ready at once never touches the
        // timer wheel.
        #[pin]
        sleep: Option<Sleep>,
        ambient: Ambient,
        idle_read: Duration,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, ambient: Ambient, idle_read: Duration) -> Self {
        ResponseFuture {
            inner,
            sleep: None,
            ambient,
            idle_read,
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<TimeoutBody<ResB>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner future first: an outcome ready at the deadline wins over the timeout (a
        // retry layer inside hands back its last response when its next wait hits the
        // deadline).
        let inner = this.inner;
        if let Poll::Ready(result) = this.ambient.scope(|| inner.poll(cx)) {
            let idle = *this.idle_read;
            return Poll::Ready(match result {
                Ok(response) => Ok(response.map(|body| TimeoutBody::new(body, idle))),
                Err(e) => Err(Error::from_inner(e)),
            });
        }
        let mut sleep = this.sleep;
        if sleep.is_none() {
            sleep.set(Some(tokio::time::sleep_until(
                this.ambient.deadline.instant(),
            )));
        }
        let Some(sleep) = sleep.as_pin_mut() else {
            return Poll::Pending;
        };
        match sleep.poll(cx) {
            Poll::Ready(()) => {
                crate::observe::timeout(TimeoutPhase::Deadline);
                Poll::Ready(Err(Error::timeout(TimeoutPhase::Deadline)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
