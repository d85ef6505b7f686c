//! The future of [`RateLimitAwareService`](super::RateLimitAwareService): a place in the gate's
//! queue, then the call, then what its outcome teaches the gate.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::{
    sync::futures::OwnedNotified,
    time::{Instant, Sleep},
};
use tower_service::Service;

use super::{
    layer::Shared,
    metered::{Metered, Tap},
    Admission, Demand, Probe, Reservation, Scope, ScopeSource, Signal, Ticket, TokenCharge,
    TokenLimits,
};
use crate::{
    classify::{Policy, Standard},
    context::{Deadline, WaitGuard},
    error::{BoxError, Error},
    observe,
    readiness::{NotSent, ReadyCall},
    Workload,
};

pin_project! {
    /// The response future of [`RateLimitAwareService`](super::RateLimitAwareService).
    ///
    /// Small on the success path; a request that has to wait boxes its waiting state (one
    /// allocation). Dropping the future at any point releases what it held (a probe turn is
    /// handed to the next request).
    pub struct ResponseFuture<S, R, P = Standard>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, P>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<S, R, P>
    where
        S: Service<R>,
    {
        // Admitted: the inner future, whose outcome teaches the shared state.
        Sent { #[pin] future: S::Future, outcome: Observer<P> },
        // Held at the gate, then readying a clone of the service. Boxed: only requests that
        // wait pay for it, and the future every request carries stays small.
        Waiting { held: Pin<Box<Held<S, R, P>>> },
        // Refused before sending.
        Refused { error: Option<Error> },
    }
}

pin_project! {
    #[project = HeldProj]
    struct Held<S, R, P> {
        #[pin]
        sleep: Sleep,
        // Armed from the start: a wake-up (a probe reported, the queue was re-paced or moved up)
        // reaches every waiter, including one that got its place in `call`.
        #[pin]
        notified: Option<OwnedNotified>,
        place: Place<P>,
        // The service's clone and the request, sent once admitted.
        call: ReadyCall<S, R>,
        deadline: Option<Deadline>,
        since: Instant,
        // Set once admitted: the duty to report the outcome, while the service gets ready.
        admitted: Option<Observer<P>>,
        // A retry's wait marker, released when the request is handed on.
        guard: Option<WaitGuard>,
    }
}

/// A request's place in the gate's queue: given back if the request goes away while waiting.
struct Place<P> {
    shared: Arc<Shared<P>>,
    scope: Scope,
    /// The request's estimated tokens, charged when it goes.
    tokens: u64,
    /// The same per dimension (prompt estimate, output reservation).
    charge: TokenCharge,
    /// The request's workload: its priority in the queue.
    workload: Workload,
    /// `None` once sent or refused (the store took the place back itself).
    slot: Option<Reservation>,
}

impl<P> Place<P> {
    /// What this place asks of the store.
    fn demand(&self, deadline: Option<Instant>) -> Demand<'_> {
        Demand::new(&self.scope)
            .tokens(self.tokens)
            .per_dimension(self.charge)
            .workload(self.workload)
            .deadline(deadline)
    }

    /// The place held in the store's queue, if any.
    fn ticket(&self) -> Ticket {
        self.slot.map_or(Ticket::New, Ticket::Reserved)
    }

    /// Admitted (as a probe, or not): the store has taken the place back. What observes the
    /// attempt, once it is sent.
    fn released(
        &mut self,
        shared: Arc<Shared<P>>,
        probe: Option<Probe>,
        now: Instant,
        since: Instant,
    ) -> Observer<P> {
        self.slot = None;
        observe::gate_released(now.saturating_duration_since(since), probe.is_some());
        // Not sent yet (the service may not get ready): no deadline to count a hung attempt
        // against until it is.
        let scope = ScopeSource::Known(self.scope.clone());
        let mut outcome = Observer::new(shared, scope, probe, Some(now), Some(None));
        outcome.charge = Some(self.charge);
        outcome
    }

    fn give_back(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.shared.wake(
                self.shared
                    .store
                    .leave_in(Instant::now(), &self.scope, slot),
            );
        }
    }
}

impl<P> Drop for Place<P> {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl<S: Service<R>, R, P> ResponseFuture<S, R, P> {
    pub(super) fn sent(
        future: S::Future,
        shared: Arc<Shared<P>>,
        scope: ScopeSource,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
        charge: Option<TokenCharge>,
    ) -> Self {
        let mut outcome = Observer::new(shared, scope, probe, sent_at, None);
        outcome.charge = charge;
        ResponseFuture {
            state: State::Sent { future, outcome },
        }
    }

    pub(super) fn refused(error: Error) -> Self {
        ResponseFuture {
            state: State::Refused { error: Some(error) },
        }
    }

    /// Waits per `admission` (a `Wait`), then sends with `service` (a clone).
    #[allow(clippy::too_many_arguments)] // what a waiting request carries, each said once
    pub(super) fn waiting(
        service: S,
        request: R,
        shared: Arc<Shared<P>>,
        (scope, tokens, charge, workload): (Scope, u64, TokenCharge, Workload),
        admission: Admission,
        deadline: Option<Deadline>,
        guard: Option<WaitGuard>,
    ) -> Self {
        let now = Instant::now();
        // (Go, Probe and TooLate are handled by the service and never get here; anything but
        // a place asks again as new on the first poll.)
        let slot = match admission {
            Admission::Wait(slot) => Some(slot),
            _ => None,
        };
        let notified = shared.notify.clone().notified_owned();
        ResponseFuture {
            state: State::Waiting {
                held: Box::pin(Held {
                    sleep: tokio::time::sleep_until(cap(slot.map_or(now, |s| s.at), deadline)),
                    notified: Some(notified),
                    place: Place {
                        shared,
                        scope,
                        tokens,
                        charge,
                        workload,
                        slot,
                    },
                    call: ReadyCall::new(service, request),
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

impl<S, R, ResB, P> Future for ResponseFuture<S, R, P>
where
    S: Service<R, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    P: Policy,
{
    type Output = Result<Response<Metered<ResB>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let (future, outcome) = match state.as_mut().project() {
                Proj::Sent { future, outcome } => {
                    return match future.poll(cx) {
                        Poll::Ready(result) => Poll::Ready(outcome.observe(result)),
                        Poll::Pending => {
                            outcome.in_flight();
                            Poll::Pending
                        }
                    };
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

/// An admitted request: its inner future and the duty to report its outcome.
type Sent<F, P> = (F, Observer<P>);

impl<S: Service<R>, R, P> Held<S, R, P> {
    /// Waits until admitted, then readies the service and sends.
    fn poll_admitted(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Sent<S::Future, P>, Error>>
    where
        S::Error: Into<BoxError>,
    {
        let HeldProj {
            mut sleep,
            mut notified,
            place,
            call,
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
            let shared = place.shared.clone();
            // Arm the wake-up before asking, so a probe's report cannot slip between.
            notified.set(Some(shared.notify.clone().notified_owned()));
            let limit = deadline.map(Deadline::instant);
            match shared
                .store
                .admit_in(now, &place.demand(limit), place.ticket())
            {
                Admission::Go => *admitted = Some(place.released(shared, None, now, *since)),
                Admission::Probe(probe) => {
                    *admitted = Some(place.released(shared, Some(probe), now, *since));
                }
                Admission::TooLate { wait } => {
                    place.slot = None;
                    observe::gate_refused(Some(wait));
                    return Poll::Ready(Err(Error::rate_limited(Some(wait))));
                }
                Admission::Wait(slot) => {
                    place.slot = Some(slot);
                    if limit.is_some_and(|d| now >= d) {
                        // Held past the deadline (the breaker): give up the place.
                        place.give_back();
                        observe::gate_refused(None);
                        return Poll::Ready(Err(Error::rate_limited(None)));
                    }
                    sleep.as_mut().reset(cap(slot.at, *deadline));
                }
            }
        }
        let sent = ready!(call.poll_call(cx, |service, request| {
            let mut outcome = admitted.take()?;
            guard.take();
            outcome.deadline = deadline.map(Deadline::instant);
            outcome.in_flight_since = Some(Instant::now());
            Some((service.call(request), outcome))
        }));
        Poll::Ready(match sent {
            Ok(Some(sent)) => Ok(sent),
            Err(NotSent::NotReady(e)) => Err(Error::from_inner(e)),
            Ok(None) | Err(NotSent::Spent) => Err(Error::from_inner(
                "rate-limit future polled after completion",
            )),
        })
    }
}

/// Reports an attempt's outcome to the shared state; if dropped first while probing, lets
/// another request probe.
///
/// An attempt dropped at or after its request's deadline after [`HUNG_AFTER`] or more in
/// flight (the deadline cut it: a hung connection, a generation that never produced its head)
/// is reported as a failure, so an outage where connections hang trips the breaker. One
/// dropped before the deadline is a caller that went away, and one sent with little of its
/// deadline left (after a long wait at the gate) had no time to answer: neither says anything
/// about the server.
#[derive(Debug)]
pub(crate) struct Observer<P = Standard> {
    shared: Option<Arc<Shared<P>>>,
    /// The request's scope, resolved only if there is something to record.
    scope: ScopeSource,
    probe: Option<Probe>,
    sent_at: Option<Instant>,
    /// The request's deadline, once known.
    deadline: Option<Instant>,
    /// Whether `deadline` was looked up (lazily on the fast path: at the first `Pending`).
    deadline_known: bool,
    /// When the attempt was first seen in flight (with a deadline to be cut by).
    in_flight_since: Option<Instant>,
    /// What the request was charged per dimension, if it went by the gate's slow path: its
    /// body is tapped to settle it when its scope's tokens are modelled.
    charge: Option<TokenCharge>,
}

/// How long an attempt must have been in flight, with no answer, for a cut by its deadline to
/// count as the server's failure: one sent with less of its deadline left (after a long wait
/// at the gate) had no fair chance to answer.
pub(crate) const HUNG_AFTER: Duration = Duration::from_secs(2);

impl<P> Observer<P> {
    /// `deadline`: `None` to look it up once the attempt is in flight, `Some` when known.
    fn new(
        shared: Arc<Shared<P>>,
        scope: ScopeSource,
        probe: Option<Probe>,
        sent_at: Option<Instant>,
        deadline: Option<Option<Instant>>,
    ) -> Self {
        Observer {
            shared: Some(shared),
            scope,
            probe,
            sent_at,
            deadline: deadline.flatten(),
            deadline_known: deadline.is_some(),
            in_flight_since: sent_at,
            charge: None,
        }
    }

    /// The attempt is in flight: learn its deadline from the enclosing
    /// [`TimeoutByWorkload`](crate::TimeoutByWorkload), which publishes it while the attempt is
    /// polled (not when its future is dropped). A task-local read, once per attempt.
    fn in_flight(&mut self) {
        if !self.deadline_known {
            self.deadline_known = true;
            self.deadline = Deadline::ambient().map(Deadline::instant);
            if self.deadline.is_some() && self.in_flight_since.is_none() {
                // One clock read per attempt, and only when a deadline could cut it.
                self.in_flight_since = Some(Instant::now());
            }
        }
    }

    fn observe<ResB, E: Into<BoxError>>(
        &mut self,
        result: Result<Response<ResB>, E>,
    ) -> Result<Response<Metered<ResB>>, Error>
    where
        P: Policy,
    {
        let Some(shared) = self.shared.take() else {
            return result
                .map(|r| r.map(Metered::new))
                .map_err(Error::from_inner);
        };
        match result {
            Ok(response) => {
                let unrestricted = shared.store.is_unrestricted();
                let early = !unrestricted || sample_early_signals();
                let judged = shared
                    .policy
                    .classify_response(response.status(), response.headers())
                    .gate;
                let signal = Signal::read(judged, response.headers(), early);
                let quiet = matches!(signal, Signal::Healthy | Signal::Neutral);
                if quiet && self.probe.is_none() && unrestricted {
                    return Ok(response.map(Metered::new));
                }
                let now = Instant::now();
                let scope = self.scope.resolve();
                shared.wake(
                    shared
                        .store
                        .record_in(now, &scope, signal, self.probe, self.sent_at),
                );
                // Restricted: the token limits the answer states size the scope's buckets
                // (three lookups; never on the healthy path).
                if !shared.store.is_unrestricted() {
                    if let Some(limits) = TokenLimits::from_headers(response.headers()) {
                        shared.store.learn_limits_in(now, &scope, limits);
                    }
                }
                // Charged tokens in a modelled scope: settle with the answer's usage.
                let tap = match (self.charge, self.sent_at) {
                    (Some(charge), Some(sent_at))
                        if response.status().is_success() && shared.store.meters_in(&scope) =>
                    {
                        Some(Tap::new(shared.clone(), scope, sent_at, charge))
                    }
                    _ => None,
                };
                Ok(response.map(|body| Metered::tapped(body, tap)))
            }
            Err(e) => {
                let error = Error::from_inner(e);
                shared.wake(shared.store.record_in(
                    Instant::now(),
                    &self.scope.resolve(),
                    shared.policy.classify_error(&error).gate,
                    self.probe,
                    self.sent_at,
                ));
                Err(error)
            }
        }
    }
}

impl<P> Drop for Observer<P> {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        if let Some(deadline) = self.deadline {
            let now = Instant::now();
            let hung = self
                .in_flight_since
                .is_some_and(|since| now.saturating_duration_since(since) >= HUNG_AFTER);
            if now >= deadline && hung {
                // Cut by the deadline with no answer: a failure of the server.
                shared.wake(shared.store.record_in(
                    now,
                    &self.scope.resolve(),
                    Signal::Failing,
                    self.probe,
                    self.sent_at,
                ));
                return;
            }
        }
        if let Some(probe) = self.probe {
            shared.wake(shared.store.release_probe(probe));
        }
    }
}

/// One response in 16 (per thread) is read for the early signals while nothing is restricted.
fn sample_early_signals() -> bool {
    thread_local! {
        static COUNT: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    }
    COUNT.with(|count| {
        let n = count.get().wrapping_add(1);
        count.set(n);
        n % 16 == 1
    })
}
