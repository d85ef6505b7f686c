use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::{
    context::WaitGuard,
    error::{BoxError, Error},
};

pin_project! {
    /// The response future of [`BackoffService`](super::BackoffService).
    pub struct BackoffFuture<S, R>
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
        service: S,
        request: Option<R>,
        slept: bool,
        // Released when the request is handed on.
        guard: Option<WaitGuard>,
    }
}

impl<S: Service<R>, R> BackoffFuture<S, R> {
    pub(super) fn direct(future: S::Future) -> Self {
        BackoffFuture {
            state: State::Direct { future },
        }
    }

    pub(super) fn waiting(service: S, request: R, until: Instant, guard: WaitGuard) -> Self {
        BackoffFuture {
            state: State::Waiting {
                held: Box::pin(Held {
                    sleep: tokio::time::sleep_until(until),
                    service,
                    request: Some(request),
                    slept: false,
                    guard: Some(guard),
                }),
            },
        }
    }

    pub(super) fn refused(error: Error) -> Self {
        BackoffFuture {
            state: State::Refused { error: Some(error) },
        }
    }
}

impl<S, R> Future for BackoffFuture<S, R>
where
    S: Service<R>,
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
                Proj::Waiting { held } => {
                    let HeldProj {
                        sleep,
                        service,
                        request,
                        slept,
                        guard,
                    } = held.as_mut().project();
                    if !*slept {
                        ready!(sleep.poll(cx));
                        *slept = true;
                    }
                    ready!(service.poll_ready(cx)).map_err(Error::from_inner)?;
                    let Some(request) = request.take() else {
                        return Poll::Ready(Err(Error::from_inner(
                            "backoff future polled after completion",
                        )));
                    };
                    guard.take();
                    let future = service.call(request);
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
