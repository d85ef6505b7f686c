use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::{
    sync::futures::OwnedNotified,
    time::{Instant, Sleep},
};
use tower_service::Service;

use super::{layer::Shared, Admission, Probe, Signal, Ticket};
use crate::{
    context::{Deadline, WaitGuard},
    error::{BoxError, Error},
    observe,
};

pin_project! {
    /// The response future of [`RateLimitService`](super::RateLimitService).
    ///
    /// Small on the success path; a request that has to wait boxes its waiting state (one
    /// allocation). Dropping the future at any point releases what it held (a probe turn is
    /// handed to the next request).
    pub struct RateLimitFuture<S, R>
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
        // Admitted: the inner future, whose outcome teaches the shared state.
        Sent { #[pin] future: S::Future, outcome: Observer },
        // Held at the gate, then readying a clone of the service. Boxed: only requests that
        // wait pay for it, and the future every request carries stays small.
        Waiting { held: Pin<Box<Held<S, R>>> },
        // Refused before sending.
        Refused { error: Option<Error> },
    }
}

pin_project! {
    #[project = HeldProj]
    struct Held<S, R> {
        #[pin]
        sleep: Sleep,
        #[pin]
        notified: Option<OwnedNotified>,
        wait: Wait,
        service: S,
        request: Option<R>,
        shared: Arc<Shared>,
        deadline: Option<Deadline>,
        since: Instant,
        // Set once admitted: the duty to report the outcome, while the service gets ready.
        admitted: Option<Observer>,
        // A retry's wait marker, released when the request is handed on.
        guard: Option<WaitGuard>,
    }
}

/// What a waiting request waits for.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Its paced slot.
    Slot(super::Reservation),
    /// A wake-up (a probe reported back) or a recheck time.
    Held,
}

impl<S: Service<R>, R> RateLimitFuture<S, R> {
    pub(super) fn sent(
        future: S::Future,
        shared: Arc<Shared>,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
    ) -> Self {
        RateLimitFuture {
            state: State::Sent {
                future,
                outcome: Observer::new(shared, probe, sent_at),
            },
        }
    }

    pub(super) fn refused(error: Error) -> Self {
        RateLimitFuture {
            state: State::Refused { error: Some(error) },
        }
    }

    /// Waits per `admission` (a `Wait` or `Held`), then sends with `service` (a clone).
    pub(super) fn waiting(
        service: S,
        request: R,
        shared: Arc<Shared>,
        admission: Admission,
        deadline: Option<Deadline>,
        guard: Option<WaitGuard>,
    ) -> Self {
        let now = Instant::now();
        let (wait, until) = match admission {
            Admission::Wait(slot) => (Wait::Slot(slot), slot.at),
            // Held: ask again on the first poll, with the wake-up armed first, so a probe that
            // reports between `call` and that poll is not missed. (Go, Probe and TooLate are
            // handled by the service and never get here.)
            _ => (Wait::Held, now),
        };
        RateLimitFuture {
            state: State::Waiting {
                held: Box::pin(Held {
                    sleep: tokio::time::sleep_until(until),
                    notified: None,
                    wait,
                    service,
                    request: Some(request),
                    shared,
                    deadline,
                    since: now,
                    admitted: None,
                    guard,
                }),
            },
        }
    }
}

fn cap(at: Instant, deadline: Option<Deadline>) -> Instant {
    deadline.map_or(at, |d| at.min(d.instant()))
}

impl<S, R, ResB> Future for RateLimitFuture<S, R>
where
    S: Service<R, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let (future, outcome) = match state.as_mut().project() {
                Proj::Sent { future, outcome } => {
                    return future.poll(cx).map(|r| outcome.observe(r));
                }
                Proj::Refused { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(|| {
                        Error::from_inner("rate-limit future polled after completion")
                    })));
                }
                Proj::Waiting { held } => match ready!(held.as_mut().poll_admitted(cx)) {
                    Ok(sent) => sent,
                    Err(error) => return Poll::Ready(Err(error)),
                },
            };
            state.set(State::Sent { future, outcome });
        }
    }
}

impl<S: Service<R>, R> Held<S, R> {
    /// Waits until admitted, then readies the service and sends.
    fn poll_admitted(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(S::Future, Observer), Error>>
    where
        S::Error: Into<BoxError>,
    {
        let HeldProj {
            mut sleep,
            mut notified,
            wait,
            service,
            request,
            shared,
            deadline,
            since,
            admitted,
            guard,
        } = self.project();
        while admitted.is_none() {
            let woken = notified
                .as_mut()
                .as_pin_mut()
                .is_some_and(|n| n.poll(cx).is_ready());
            if !woken {
                ready!(sleep.as_mut().poll(cx));
            }
            let now = Instant::now();
            let ticket = match *wait {
                Wait::Slot(slot) => Ticket::Reserved(slot),
                Wait::Held => {
                    if deadline.is_some_and(|d| now >= d.instant()) {
                        observe::gate_refused(None);
                        return Poll::Ready(Err(Error::rate_limited(None)));
                    }
                    Ticket::Held
                }
            };
            // Arm the wake-up before asking, so a probe's report cannot slip between.
            notified.set(Some(shared.notify.clone().notified_owned()));
            match shared
                .store
                .admit(now, ticket, deadline.map(Deadline::instant))
            {
                admission @ (Admission::Go | Admission::Probe(_)) => {
                    let probe = match admission {
                        Admission::Probe(probe) => Some(probe),
                        _ => None,
                    };
                    observe::gate_released(now.saturating_duration_since(*since), probe.is_some());
                    *admitted = Some(Observer::new(shared.clone(), probe, Some(now)));
                }
                Admission::TooLate { wait } => {
                    observe::gate_refused(Some(wait));
                    return Poll::Ready(Err(Error::rate_limited(Some(wait))));
                }
                Admission::Wait(slot) => {
                    *wait = Wait::Slot(slot);
                    sleep.as_mut().reset(slot.at);
                }
                Admission::Held { recheck } => {
                    *wait = Wait::Held;
                    sleep.as_mut().reset(cap(recheck, *deadline));
                }
            }
        }
        if let Err(e) = ready!(service.poll_ready(cx)) {
            return Poll::Ready(Err(Error::from_inner(e)));
        }
        let (Some(request), Some(outcome)) = (request.take(), admitted.take()) else {
            return Poll::Ready(Err(Error::from_inner(
                "rate-limit future polled after completion",
            )));
        };
        guard.take();
        Poll::Ready(Ok((service.call(request), outcome)))
    }
}

/// Reports an attempt's outcome to the shared state; if dropped first while probing, lets
/// another request probe.
#[derive(Debug)]
pub struct Observer {
    shared: Option<Arc<Shared>>,
    probe: Option<Probe>,
    sent_at: Option<Instant>,
}

impl Observer {
    fn new(shared: Arc<Shared>, probe: Option<Probe>, sent_at: Option<Instant>) -> Self {
        Observer {
            shared: Some(shared),
            probe,
            sent_at,
        }
    }

    fn observe<ResB, E: Into<BoxError>>(
        &mut self,
        result: Result<Response<ResB>, E>,
    ) -> Result<Response<ResB>, Error> {
        let Some(shared) = self.shared.take() else {
            return result.map_err(Error::from_inner);
        };
        match result {
            Ok(response) => {
                let signal = Signal::from_response(response.status(), response.headers());
                let quiet = matches!(signal, Signal::Healthy | Signal::Neutral);
                if quiet && self.probe.is_none() && shared.store.is_unrestricted() {
                    return Ok(response);
                }
                shared.wake(shared.store.record_sent(
                    Instant::now(),
                    signal,
                    self.probe,
                    self.sent_at,
                ));
                Ok(response)
            }
            Err(e) => {
                let error = Error::from_inner(e);
                shared.wake(shared.store.record_sent(
                    Instant::now(),
                    Signal::from_error(&error),
                    self.probe,
                    self.sent_at,
                ));
                Err(error)
            }
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            if let Some(probe) = self.probe {
                shared.wake(shared.store.release_probe(probe));
            }
        }
    }
}
