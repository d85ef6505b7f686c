use std::{
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::{layer::Shared, Admission, Signal, Ticket};
use crate::{
    context::Deadline,
    error::{BoxError, Error},
};

type Waiting<ResB> = Pin<Box<dyn Future<Output = Result<Response<ResB>, Error>> + Send>>;

pin_project! {
    /// The response future of [`RateLimitService`](super::RateLimitService).
    pub struct RateLimitFuture<F, ResB> {
        #[pin]
        state: State<F, ResB>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<F, ResB> {
        /// Admitted at once: the inner future, whose outcome teaches the shared state.
        Sent { #[pin] future: F, outcome: Observer },
        /// Held at the gate (boxed: only requests that wait pay for it).
        Waiting { future: Waiting<ResB> },
        /// Refused before sending.
        Refused { error: Option<Error> },
    }
}

impl<F, ResB> RateLimitFuture<F, ResB> {
    pub(super) fn sent(future: F, shared: Arc<Shared>, probe: bool) -> Self {
        RateLimitFuture {
            state: State::Sent {
                future,
                outcome: Observer::new(shared, probe),
            },
        }
    }

    pub(super) fn refused(error: Error) -> Self {
        RateLimitFuture {
            state: State::Refused { error: Some(error) },
        }
    }

    pub(super) fn waiting<S, B>(
        service: S,
        request: Request<B>,
        shared: Arc<Shared>,
        admission: Admission,
        deadline: Option<Deadline>,
    ) -> Self
    where
        S: Service<Request<B>, Response = Response<ResB>, Future = F> + Send + 'static,
        F: Future<Output = Result<Response<ResB>, S::Error>> + Send,
        S::Error: Into<BoxError>,
        B: Send + 'static,
        ResB: Send + 'static,
    {
        RateLimitFuture {
            state: State::Waiting {
                future: Box::pin(wait_then_send(
                    service, request, shared, admission, deadline,
                )),
            },
        }
    }
}

impl<F, ResB, E> Future for RateLimitFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResB>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Sent { future, outcome } => future.poll(cx).map(|r| outcome.observe(r)),
            Proj::Waiting { future } => future.as_mut().poll(cx),
            Proj::Refused { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                Error::from_inner("rate-limit future polled after completion")
            }))),
        }
    }
}

/// Waits at the gate, then sends. Dropping it at any point releases what it held.
async fn wait_then_send<S, B, ResB>(
    mut service: S,
    request: Request<B>,
    shared: Arc<Shared>,
    mut admission: Admission,
    deadline: Option<Deadline>,
) -> Result<Response<ResB>, Error>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    let mut waited_for_gate = false;
    let probe = loop {
        let ticket = match admission {
            Admission::Go => break false,
            Admission::Probe => break true,
            Admission::TooLate { wait } => return Err(Error::rate_limited(Some(wait))),
            Admission::Wait(slot) => {
                waited_for_gate = true;
                tokio::time::sleep_until(slot.at).await;
                Ticket::Reserved(slot)
            }
            Admission::Held { recheck } => {
                waited_for_gate = true;
                let notified = shared.notify.notified();
                let mut notified = pin!(notified);
                notified.as_mut().enable();
                // Re-ask after enabling the wake-up, so a probe's report cannot be missed.
                match shared.store.admit(
                    Instant::now(),
                    Ticket::Held,
                    deadline.map(Deadline::instant),
                ) {
                    Admission::Held { recheck: again } => {
                        let until = match deadline {
                            Some(d) => again.min(recheck).min(d.instant()),
                            None => again.min(recheck),
                        };
                        let sleep = pin!(tokio::time::sleep_until(until));
                        wake_or_sleep(notified, sleep).await;
                        if deadline.is_some_and(|d| Instant::now() >= d.instant()) {
                            return Err(Error::rate_limited(None));
                        }
                        Ticket::Held
                    }
                    other => {
                        admission = other;
                        continue;
                    }
                }
            }
        };
        admission = shared
            .store
            .admit(Instant::now(), ticket, deadline.map(Deadline::instant));
    };
    if waited_for_gate {
        tracing::debug!(target: "tower_reliability", probe, "released by the rate-limit gate");
    }
    let mut outcome = Observer::new(shared, probe);
    if let Err(e) = poll_fn(|cx| service.poll_ready(cx)).await {
        return Err(Error::from_inner(e));
    }
    let result = service.call(request).await;
    outcome.observe(result)
}

async fn wake_or_sleep(
    mut notified: Pin<&mut tokio::sync::futures::Notified<'_>>,
    mut sleep: Pin<&mut tokio::time::Sleep>,
) {
    poll_fn(|cx| {
        if notified.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Reports an attempt's outcome to the shared state; if dropped first while probing, lets
/// another request probe.
#[derive(Debug)]
pub struct Observer {
    shared: Option<Arc<Shared>>,
    probe: bool,
}

impl Observer {
    fn new(shared: Arc<Shared>, probe: bool) -> Self {
        Observer {
            shared: Some(shared),
            probe,
        }
    }

    fn observe<ResB, E: Into<BoxError>>(
        &mut self,
        result: Result<Response<ResB>, E>,
    ) -> Result<Response<ResB>, Error> {
        let Some(shared) = self.shared.take() else {
            return result.map_err(Error::from_inner);
        };
        let now = Instant::now();
        match result {
            Ok(response) => {
                let signal = Signal::from_response(response.status(), response.headers());
                shared.wake(shared.store.record(now, signal, self.probe));
                Ok(response)
            }
            Err(e) => {
                let error = Error::from_inner(e);
                shared.wake(
                    shared
                        .store
                        .record(now, Signal::from_error(&error), self.probe),
                );
                Err(error)
            }
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            if self.probe {
                shared.wake(shared.store.release_probe());
            }
        }
    }
}
