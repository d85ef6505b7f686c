//! The future of [`JitteredBackoffService`](super::JitteredBackoffService): the wait before a
//! retry, then the call.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::{
    context::{RetryReport, WaitGuard},
    error::{BoxError, Error},
    observe,
    readiness::{NotSent, ReadyCall},
};

pin_project! {
    /// The response future of [`JitteredBackoffService`](super::JitteredBackoffService).
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<S, R>
    where
        S: Service<R>,
    {
        /// Sending (or sent): the inner future.
        Direct { #[pin] future: S::Future },
        /// A first attempt (no retry context): sent at once, and its outcome checked for
        /// retries made *below* this layer, which it could not space out.
        First { #[pin] future: S::Future },
        /// Waiting out the backoff, then readying a clone of the service. Boxed: only requests
        /// that back off pay for it, and the future every request carries stays small.
        Waiting { held: Pin<Box<Held<S, R>>> },
        /// The wait could not be made.
        Refused { error: Option<Error> },
    }
}

pin_project! {
    #[project = HeldProj]
    struct Held<S, R> {
        #[pin]
        sleep: Sleep,
        // The service's clone and the request, sent once the wait is over.
        call: ReadyCall<S, R>,
        slept: bool,
        // Released when the request is handed on.
        guard: Option<WaitGuard>,
    }
}

impl<S: Service<R>, R> ResponseFuture<S, R> {
    pub(super) fn direct(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Direct { future },
        }
    }

    pub(super) fn first(future: S::Future) -> Self {
        ResponseFuture {
            state: State::First { future },
        }
    }

    pub(super) fn waiting(service: S, request: R, until: Instant, guard: WaitGuard) -> Self {
        ResponseFuture {
            state: State::Waiting {
                held: Box::pin(Held {
                    sleep: tokio::time::sleep_until(until),
                    call: ReadyCall::new(service, request),
                    slept: false,
                    guard: Some(guard),
                }),
            },
        }
    }

    pub(super) fn refused(error: Error) -> Self {
        ResponseFuture {
            state: State::Refused { error: Some(error) },
        }
    }
}

impl<S, R, ResB> Future for ResponseFuture<S, R>
where
    S: Service<R, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                Proj::Direct { future } => {
                    return future.poll(cx).map_err(Error::from_inner);
                }
                Proj::First { future } => {
                    let outcome = ready!(future.poll(cx)).map_err(Error::from_inner);
                    let report = match &outcome {
                        Ok(response) => response.extensions().get::<RetryReport>().copied(),
                        Err(error) => error.report(),
                    };
                    if let Some(report) = report.filter(|r| r.attempts > 1) {
                        observe::backoff_above_retry(report.attempts);
                    }
                    return Poll::Ready(outcome);
                }
                Proj::Waiting { held } => {
                    let HeldProj {
                        sleep,
                        call,
                        slept,
                        guard,
                    } = held.as_mut().project();
                    if !*slept {
                        ready!(sleep.poll(cx));
                        *slept = true;
                    }
                    let sent = ready!(call.poll_call(cx, |service, request| {
                        guard.take();
                        service.call(request)
                    }));
                    let future = match sent {
                        Ok(future) => future,
                        Err(NotSent::NotReady(e)) => return Poll::Ready(Err(Error::from_inner(e))),
                        Err(NotSent::Spent) => {
                            return Poll::Ready(Err(Error::from_inner(
                                "backoff future polled after completion",
                            )))
                        }
                    };
                    state.set(State::Direct { future });
                }
                Proj::Refused { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(|| {
                        Error::from_inner("backoff future polled after completion")
                    })));
                }
            }
        }
    }
}
