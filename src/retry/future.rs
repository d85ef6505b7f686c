//! The future of [`RetryOnStatusService`](super::RetryOnStatusService): one logical request,
//! attempt after attempt, until an answer to hand back.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{request, response, HeaderMap, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::{
    body::{Collected, Collector},
    head::Head,
    layer::RetryConfig,
    ReplayBody,
};
use crate::{
    classify::{Policy, RetryCause, RetryDecision, Standard},
    context::{Deadline, Outcome, RetryContext, RetryReport, StopReason},
    error::{BoxError, Error, TimeoutPhase},
    headers, observe,
    rate_limit::published,
    readiness::{NotSent, ReadyCall},
};

pin_project! {
    /// The response future of [`RetryOnStatusService`](super::RetryOnStatusService).
    pub struct ResponseFuture<S, B, ResB, P = Standard>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    {
        tracker: Tracker<P>,
        #[pin]
        state: State<S::Future, ResB>,
        // Readied before each attempt the future sends itself (after the body is read, and
        // each retry).
        service: ReadyCall<S, Attempt>,
        // Only while a request body is still being read (boxed: rarely needed).
        pending: Option<Box<Pending<B>>>,
        // Once a response is set aside: fires at the deadline, so that the caller gets that
        // response rather than a timeout (boxed: only retries pay for it).
        deadline_watch: Option<Pin<Box<Sleep>>>,
    }

    impl<S, B, ResB, P> PinnedDrop for ResponseFuture<S, B, ResB, P>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    {
        // Runs before any field is dropped, whatever their order: the layers inside (alive in
        // `state`) still hold their wait guards, so the refund rule can read them.
        fn drop(this: Pin<&mut Self>) {
            this.project().tracker.on_drop();
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, ResB> {
        // Reading the request body before the first attempt, then readying the service
        // (which holds nothing while the body streams in).
        Buffering,
        // An attempt is in flight.
        Attempting { #[pin] future: F },
        // Setting a retryable response's body aside before the next attempt (boxed: only
        // retries pay for it).
        Draining { drain: Pin<Box<Drain<ResB>>> },
        // Waiting for the service to be ready for the next attempt.
        Readying,
        // Failed before any attempt.
        Failed { error: Option<Error> },
    }
}

/// The retry bookkeeping of one logical request.
struct Tracker<P> {
    config: Arc<RetryConfig<P>>,
    replay: Option<Replay>,
    attempt: u32,
    last_cost: u32,
    ctx: Option<RetryContext>,
    last: Option<Last>,
    stopped: Option<StopReason>,
    /// A retry's cost is reserved but its request is not handed to the inner service yet.
    unsent: bool,
    /// An attempt is with the inner service and has no outcome yet.
    in_flight: bool,
    /// Why the attempt in flight (or about to be sent) is a retry.
    retry_cause: Option<RetryCause>,
}

impl<P> Tracker<P> {
    /// The refund rule, in one place: a retry whose cost is reserved never left when it was
    /// not handed to the service below yet, or when a layer inside still holds a
    /// [`WaitGuard`](crate::context::WaitGuard) for it (see [`crate::context`], "The refund
    /// contract").
    fn never_left(&self) -> bool {
        self.unsent || (self.in_flight && self.waiting_inside())
    }

    /// A layer inside (backoff, gate) holds the attempt in flight, not sent yet.
    fn waiting_inside(&self) -> bool {
        self.attempt > 1 && self.ctx.as_ref().is_some_and(RetryContext::is_waiting)
    }

    /// A caller that goes away between reserving a retry and sending it gets the cost back:
    /// cancellation never leaks budget tokens.
    fn on_drop(&mut self) {
        if self.never_left() {
            self.config.budget.deposit(self.last_cost);
            self.unsent = false;
            self.in_flight = false;
            return;
        }
        if self.in_flight {
            // The deadline fired (or the caller left) mid-attempt: the server may have it.
            self.settle_attempt();
            observe::attempt_abandoned(self.attempt);
        }
    }
}

/// An attempt is due. Its request is made from the replay only once the service is ready, so
/// that a retry dropped while the service gets ready never left (its cost comes back).
struct Attempt;

/// A request whose body is still being read.
struct Pending<B> {
    parts: request::Parts,
    body: B,
    collector: Collector,
    /// Set once the body is read: the service is being readied.
    collected: Option<Collected>,
}

/// What every attempt sends again.
struct Replay {
    head: Head,
    data: Option<Bytes>,
    // Boxed: request trailers are rare, and the replay sits in every retry future.
    trailers: Option<Box<HeaderMap>>,
}

pin_project! {
    #[project = DrainProj]
    struct Drain<ResB> {
        #[pin]
        sleep: Sleep,
        head: Option<response::Parts>,
        body: Option<ResB>,
        collector: Collector,
    }
}

/// The last retryable outcome, handed back if the next attempt cannot start.
enum Last {
    Response(Box<SetAside>),
    Error(Error),
}

/// A retryable response, its body read into memory.
struct SetAside {
    head: response::Parts,
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    /// The body broke while being read: handed back, it ends with this error.
    broken: Option<BoxError>,
}

impl SetAside {
    fn into_response<ResB>(self) -> Response<ReplayBody<ResB>> {
        let body = match self.broken {
            Some(error) => ReplayBody::broken(self.data, error),
            None => ReplayBody::buffered(self.data, self.trailers),
        };
        Response::from_parts(self.head, body)
    }
}

impl<S, B, ResB, P> ResponseFuture<S, B, ResB, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
{
    fn new(service: S, config: Arc<RetryConfig<P>>, state: State<S::Future, ResB>) -> Self {
        Self::with_replay(service, config, state, None)
    }

    /// Built in one expression: the inner future is moved once, into its place.
    #[inline]
    fn with_replay(
        service: S,
        config: Arc<RetryConfig<P>>,
        state: State<S::Future, ResB>,
        replay: Option<Replay>,
    ) -> Self {
        ResponseFuture {
            state,
            service: ReadyCall::idle(service),
            pending: None,
            deadline_watch: None,
            tracker: Tracker {
                config,
                replay,
                attempt: 1,
                last_cost: 0,
                ctx: None,
                last: None,
                stopped: None,
                unsent: false,
                in_flight: true,
                retry_cause: None,
            },
        }
    }

    /// The body is in memory: send the first attempt now.
    pub(super) fn start(
        mut service: S,
        config: Arc<RetryConfig<P>>,
        parts: request::Parts,
        mut collector: Collector,
    ) -> Self {
        let (replay, first) = Replay::first(parts, &mut collector);
        let body = published::enter(replay.data.as_ref());
        let future = service.call(first);
        drop(body);
        Self::with_replay(service, config, State::Attempting { future }, Some(replay))
    }

    /// The body is over the replay cap: send it once, as a stream.
    pub(super) fn send_once(
        mut service: S,
        config: Arc<RetryConfig<P>>,
        parts: request::Parts,
        mut collector: Collector,
        body: B,
    ) -> Self {
        tracing::debug!(
            target: "tower_reliability",
            read = collector.len(),
            cap = config.replay_cap,
            "request body larger than the replay cap: sent once"
        );
        let body = ReplayBody::streaming(collector.take_data(), body);
        let future = service.call(Request::from_parts(parts, body));
        Self::new(service, config, State::Attempting { future })
    }

    /// The body is not ready yet: read it in the future, then ready `service` (unreadied).
    pub(super) fn buffering(
        service: S,
        config: Arc<RetryConfig<P>>,
        parts: request::Parts,
        collector: Collector,
        body: B,
    ) -> Self {
        let mut this = Self::new(service, config, State::Buffering);
        this.service.due(Attempt);
        this.pending = Some(Box::new(Pending {
            parts,
            body,
            collector,
            collected: None,
        }));
        this.tracker.in_flight = false;
        this
    }

    /// The body failed before any attempt.
    pub(super) fn failed(service: S, config: Arc<RetryConfig<P>>, error: Error) -> Self {
        let mut this = Self::new(service, config, State::Failed { error: Some(error) });
        this.tracker.in_flight = false;
        this
    }
}

impl<S, B, ResB, P> Future for ResponseFuture<S, B, ResB, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
    P: Policy,
{
    type Output = Output<ResB>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(response) = watch_deadline(this.deadline_watch, this.tracker, cx) {
                // Drops the attempt in flight, if any.
                this.state.set(State::Failed { error: None });
                return Poll::Ready(Ok(response));
            }
            let next = match this.state.as_mut().project() {
                StateProj::Buffering => {
                    ready!(poll_buffering(this.pending, this.service, this.tracker, cx))
                }
                StateProj::Attempting { future } => {
                    let result = ready!(this.tracker.poll_attempt(future, cx));
                    this.tracker.after_attempt(result)
                }
                StateProj::Draining { drain } => {
                    ready!(poll_draining(
                        drain.as_mut(),
                        this.tracker,
                        this.deadline_watch,
                        cx
                    ))
                }
                StateProj::Readying => ready!(poll_readying(this.service, this.tracker, cx)),
                StateProj::Failed { error } => Next::Done(Err(error
                    .take()
                    .unwrap_or_else(|| Error::from_inner("retry future polled after completion")))),
            };
            match next {
                Next::Done(output) => return Poll::Ready(output),
                Next::Go(state) => this.state.set(state),
                Next::Retry => {
                    this.service.due(Attempt);
                    this.state.set(State::Readying);
                }
                Next::Again => {}
            }
        }
    }
}

/// What a [`ResponseFuture`] resolves to.
type Output<ResB> = Result<Response<ReplayBody<ResB>>, Error>;

/// What one step of [`ResponseFuture::poll`] decided.
enum Next<F, ResB> {
    /// The request is done.
    Done(Output<ResB>),
    /// Move to this state.
    Go(State<F, ResB>),
    /// The next attempt is due: ready the service for it (`Readying`).
    Retry,
    /// Look at the same state again.
    Again,
}

/// Step: once a response is set aside, the deadline hands it back (rather than a timeout).
fn watch_deadline<P: Policy, ResB>(
    watch: &mut Option<Pin<Box<Sleep>>>,
    tracker: &mut Tracker<P>,
    cx: &mut Context<'_>,
) -> Option<Response<ReplayBody<ResB>>> {
    let fired = watch.as_mut()?.as_mut().poll(cx).is_ready();
    if !fired {
        return None;
    }
    *watch = None;
    tracker.hand_back_at_deadline()
}

/// Step `Buffering`: read the request body, ready the service, send the first attempt.
fn poll_buffering<P: Policy, S, B, ResB>(
    pending: &mut Option<Box<Pending<B>>>,
    service: &mut ReadyCall<S, Attempt>,
    tracker: &mut Tracker<P>,
    cx: &mut Context<'_>,
) -> Poll<Next<S::Future, ResB>>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    let Some(waiting) = pending.as_deref_mut() else {
        return Poll::Ready(Next::Done(Err(Error::from_inner(
            "retry future polled after completion",
        ))));
    };
    if waiting.collected.is_none() {
        match ready!(waiting.collector.poll_collect(&mut waiting.body, cx)) {
            Err(e) => return Poll::Ready(Next::Done(Err(Error::from_inner(e)))),
            Ok(collected) => waiting.collected = Some(collected),
        }
    }
    let sent = ready!(service.poll_call(cx, |inner, Attempt| {
        let request = pending.take()?.into_request(tracker);
        let future = tracker.send(inner, request);
        tracker.in_flight = true;
        Some(future)
    }));
    Poll::Ready(match sent {
        Ok(Some(future)) => Next::Go(State::Attempting { future }),
        Err(NotSent::NotReady(e)) => Next::Done(Err(Error::from_inner(e))),
        Ok(None) | Err(NotSent::Spent) => Next::Done(Err(Error::from_inner(
            "retry future polled after completion",
        ))),
    })
}

impl<B> Pending<B> {
    /// The body is read: the first attempt's request (replayable unless over the cap).
    fn into_request<P>(self, tracker: &mut Tracker<P>) -> Request<ReplayBody<B>> {
        let Pending {
            parts,
            body,
            mut collector,
            collected,
        } = self;
        match collected {
            Some(Collected::Complete) => {
                let (replay, request) = Replay::first(parts, &mut collector);
                tracker.replay = Some(replay);
                request
            }
            _ => {
                tracker.replay = None;
                Request::from_parts(parts, ReplayBody::streaming(collector.take_data(), body))
            }
        }
    }
}

/// Step `Draining`: set a retryable response's body aside, then ready the next attempt; hand
/// the response back as it is when it is too large or too slow to set aside.
fn poll_draining<P: Policy, F, ResB>(
    drain: Pin<&mut Drain<ResB>>,
    tracker: &mut Tracker<P>,
    deadline_watch: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<Next<F, ResB>>
where
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
{
    let DrainProj {
        sleep,
        head,
        body,
        collector,
    } = drain.project();
    let Some(inner) = body.as_mut() else {
        return Poll::Ready(Next::Done(Err(Error::from_inner(
            "retry future polled after completion",
        ))));
    };
    let mut broken = None;
    let drained = match collector.poll_collect(inner, cx) {
        Poll::Ready(Ok(Collected::Complete)) => true,
        // A body that breaks while being set aside does not stop the retry; handed back, it
        // ends with its error.
        Poll::Ready(Err(e)) => {
            broken = Some(e);
            true
        }
        Poll::Ready(Ok(Collected::OverCap)) => false,
        Poll::Pending if sleep.poll(cx).is_ready() => false,
        Poll::Pending => return Poll::Pending,
    };
    let (Some(head), Some(body)) = (head.take(), body.take()) else {
        return Poll::Ready(Next::Again);
    };
    if !drained {
        tracker.cancel_retry(StopReason::ResponseNotDrainable);
        let body = ReplayBody::streaming(collector.take_data(), body);
        let response = tracker.report(Response::from_parts(head, body));
        return Poll::Ready(Next::Done(Ok(response)));
    }
    tracker.last = Some(Last::Response(Box::new(SetAside {
        head,
        data: collector.take_data(),
        trailers: collector.take_trailers(),
        broken,
    })));
    if deadline_watch.is_none() {
        *deadline_watch = tracker
            .deadline()
            .map(|d| Box::pin(tokio::time::sleep_until(d.instant())));
    }
    Poll::Ready(Next::Retry)
}

/// Step `Readying`: ready the service below, then send the next attempt.
fn poll_readying<P: Policy, S, B, ResB>(
    service: &mut ReadyCall<S, Attempt>,
    tracker: &mut Tracker<P>,
    cx: &mut Context<'_>,
) -> Poll<Next<S::Future, ResB>>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
{
    let sent = ready!(service.poll_call(cx, |inner, Attempt| {
        let request = tracker.next_request()?;
        Some(tracker.send(inner, request))
    }));
    Poll::Ready(match sent {
        Ok(Some(future)) => Next::Go(State::Attempting { future }),
        // The next attempt cannot start: hand back what we had.
        Err(NotSent::NotReady(e)) => Next::Done(tracker.refused(Error::from_inner(e))),
        Ok(None) => Next::Done(Err(Error::from_inner("retry without a replayable request"))),
        Err(NotSent::Spent) => Next::Done(Err(Error::from_inner(
            "retry future polled after completion",
        ))),
    })
}

impl<P: Policy> Tracker<P> {
    /// Step `Attempting`, once the attempt has an outcome: done, or set the response's body
    /// aside (`Draining`), or ready the next attempt (`Readying`).
    fn after_attempt<F, ResB, E>(&mut self, result: Result<Response<ResB>, E>) -> Next<F, ResB>
    where
        ResB: Body + Unpin,
        ResB::Error: Into<BoxError>,
        E: Into<BoxError>,
    {
        match result {
            Ok(response) => match self.on_response(response) {
                Ok(done) => Next::Done(Ok(done)),
                Err((head, body)) => {
                    let wait = self.drain_timeout();
                    let collector = Collector::new(self.config.drain_cap);
                    Next::Go(State::Draining {
                        drain: Box::pin(Drain {
                            sleep: tokio::time::sleep(wait),
                            head: Some(head),
                            body: Some(body),
                            collector,
                        }),
                    })
                }
            },
            Err(e) => match self.on_error(Error::from_inner(e)) {
                Some(done) => Next::Done(done),
                None => Next::Retry,
            },
        }
    }
}

type Retryable<ResB> = (response::Parts, ResB);

impl<P> Tracker<P> {
    /// Polls the attempt in flight. A retry may be handed on from inside that poll (a backoff
    /// or a gate below sends it once its wait is over): its body is published then too.
    fn poll_attempt<F: Future>(
        &self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        if self.attempt > 1 {
            return published::with_body(self.replayed_body(), || future.poll(cx));
        }
        future.poll(cx)
    }

    /// The buffered request body every attempt replays, if it is replayable.
    fn replayed_body(&self) -> Option<&Bytes> {
        self.replay.as_ref().and_then(|r| r.data.as_ref())
    }

    /// Hands `request` to `service` with its body published to the layers inside (the
    /// rate-limit gate reads the request's model from it).
    fn send<S: Service<R>, R>(&self, service: &mut S, request: R) -> S::Future {
        published::with_body(self.replayed_body(), || service.call(request))
    }

    /// A response arrived: hand it back (`Ok`), or keep its parts for a retry (`Err`).
    fn on_response<ResB>(
        &mut self,
        response: Response<ResB>,
    ) -> Result<Response<ReplayBody<ResB>>, Retryable<ResB>>
    where
        P: Policy,
    {
        let status = response.status();
        self.settle_attempt();
        observe::attempt_response(self.attempt, status);
        match self
            .config
            .policy
            .classify_response(status, response.headers())
            .retry
        {
            RetryDecision::Final => {
                // The AWS standard: only a success gives tokens back, and only the last
                // retry's cost (or 1 when it needed no retry).
                if status.is_success() {
                    let retried = (self.attempt > 1).then_some(self.last_cost);
                    self.config.budget.on_success(retried);
                }
                Ok(self.finish(response))
            }
            RetryDecision::ServerSaidNo => {
                self.stop(StopReason::ServerSaidNo);
                Ok(self.finish(response))
            }
            RetryDecision::Retry(cause) => {
                if let Err(reason) = self.reserve_retry(cause) {
                    self.stop(reason);
                    return Ok(self.finish(response));
                }
                let hint = headers::retry_after(response.headers(), SystemTime::now());
                observe::retry_response(self.attempt, status, hint);
                self.prepare_next(Outcome::Status(status), hint);
                Err(response.into_parts())
            }
        }
    }

    /// An attempt failed: the final outcome (`Some`), or `None` to retry.
    fn on_error<ResB>(&mut self, error: Error) -> Option<Result<Response<ReplayBody<ResB>>, Error>>
    where
        P: Policy,
    {
        if self.attempt > 1 && (error.not_sent_reason().is_some() || self.waiting_inside()) {
            // The retry never left: a layer inside refused it, or failed it (a foreign
            // timeout between ours) while still holding it. Hand back what we had.
            self.in_flight = false;
            self.retry_cause = None;
            self.attempt -= 1;
            return Some(self.refused(error));
        }
        self.settle_attempt();
        observe::attempt_error(self.attempt, &error);
        if error.timeout_phase() == Some(TimeoutPhase::Deadline) {
            if let Some(Last::Response(set_aside)) = self.last.take() {
                // A deadline inside, after this retry was sent: the attempt counts, and the
                // caller gets the last real response rather than a timeout.
                self.stop(StopReason::DeadlineReached);
                return Some(Ok(self.report(set_aside.into_response())));
            }
        }
        let RetryDecision::Retry(cause) = self.config.policy.classify_error(&error).retry else {
            return Some(Err(self.fail(error)));
        };
        if let Err(reason) = self.reserve_retry(cause) {
            self.stop(reason);
            return Some(Err(self.fail(error)));
        }
        observe::retry_error(self.attempt, cause, &error);
        self.prepare_next(Outcome::Error(error.kind()), None);
        self.last = Some(Last::Error(error));
        None
    }

    /// The retry reserved last could not be sent (`error` says why): hands back the last
    /// outcome, the set-aside response if there is one.
    fn refused<ResB>(&mut self, error: Error) -> Result<Response<ReplayBody<ResB>>, Error> {
        self.cancel_retry(StopReason::NextAttemptRefused);
        match self.last.take() {
            Some(Last::Response(set_aside)) => Ok(self.report(set_aside.into_response())),
            Some(Last::Error(previous)) => Err(self.fail(previous)),
            None => Err(self.fail(error)),
        }
    }

    /// A final error: it carries the report when there was more than one attempt or retrying
    /// stopped early, as a response would.
    fn fail(&self, error: Error) -> Error {
        match self.retry_report() {
            Some(report) => error.with_report(report),
            None => error,
        }
    }

    /// The deadline came while a retry was waiting or in flight: hands back the set-aside
    /// response (`None` when there is none; the timeout layer then reports the deadline).
    fn hand_back_at_deadline<ResB>(&mut self) -> Option<Response<ReplayBody<ResB>>> {
        let Some(Last::Response(set_aside)) = self.last.take() else {
            return None;
        };
        let waiting = self.in_flight && self.waiting_inside();
        if self.never_left() {
            // The retry never left: not an attempt, and its cost comes back.
            if waiting {
                self.attempt -= 1;
            }
            self.in_flight = false;
            self.retry_cause = None;
            self.cancel_retry(StopReason::DeadlineReached);
        } else {
            if self.in_flight {
                // The server may have it; it is cut here.
                self.settle_attempt();
                observe::attempt_abandoned(self.attempt);
            }
            self.stop(StopReason::DeadlineReached);
        }
        Some(self.report(set_aside.into_response()))
    }

    /// Checks every limit and takes the retry's cost from the budget.
    fn reserve_retry(&mut self, cause: RetryCause) -> Result<(), StopReason> {
        if self.replay.is_none() {
            return Err(StopReason::BodyNotReplayable);
        }
        if self.attempt >= self.config.max_attempts {
            return Err(StopReason::AttemptsExhausted);
        }
        if self
            .deadline()
            .is_some_and(|d| d.remaining(Instant::now()).is_zero())
        {
            return Err(StopReason::NextAttemptRefused);
        }
        let cost = self.config.budget.cost(cause == RetryCause::AttemptTimeout);
        if !self.config.budget.try_withdraw(cost) {
            return Err(StopReason::BudgetExhausted);
        }
        self.last_cost = cost;
        self.unsent = true;
        self.retry_cause = Some(cause);
        Ok(())
    }

    /// The retry reserved last will not happen: give its cost back.
    fn cancel_retry(&mut self, reason: StopReason) {
        self.unsent = false;
        self.config.budget.deposit(self.last_cost);
        self.last_cost = 0;
        self.stop(reason);
    }

    /// The attempt in flight has an outcome: if it was a retry, it counts as one now.
    fn settle_attempt(&mut self) {
        self.in_flight = false;
        if self.attempt > 1 {
            if let Some(cause) = self.retry_cause.take() {
                observe::retry_made(cause);
            }
        }
    }

    /// Retrying ends here with a retryable outcome.
    fn stop(&mut self, reason: StopReason) {
        observe::retry_stopped(self.attempt, reason);
        self.stopped = Some(reason);
    }

    fn prepare_next(&mut self, previous: Outcome, hint: Option<Duration>) {
        self.ctx = Some(match &self.ctx {
            Some(ctx) => ctx.next(previous, hint),
            None => RetryContext::new(2, previous, hint),
        });
    }

    fn next_request<B>(&mut self) -> Option<Request<ReplayBody<B>>> {
        let request = self.replay.as_ref()?.request(self.ctx.as_ref());
        self.attempt += 1;
        self.unsent = false;
        self.in_flight = true;
        Some(request)
    }

    fn deadline(&self) -> Option<Deadline> {
        let explicit = self
            .replay
            .as_ref()
            .and_then(|r| r.head.extensions().get::<Deadline>().copied());
        Deadline::earliest(explicit, Deadline::ambient())
    }

    fn drain_timeout(&self) -> Duration {
        let cap = self.config.drain_timeout;
        self.deadline()
            .map_or(cap, |d| d.remaining(Instant::now()).min(cap))
    }

    fn finish<ResB>(&self, response: Response<ResB>) -> Response<ReplayBody<ResB>> {
        self.report(response.map(|body| ReplayBody::streaming(None, body)))
    }

    fn report<T>(&self, mut response: Response<T>) -> Response<T> {
        if let Some(report) = self.retry_report() {
            response.extensions_mut().insert(report);
        }
        response
    }

    /// The report, when there is something to report.
    fn retry_report(&self) -> Option<RetryReport> {
        (self.attempt > 1 || self.stopped.is_some()).then(|| RetryReport {
            attempts: self.attempt,
            waited: self
                .ctx
                .as_ref()
                .map_or(Duration::ZERO, RetryContext::total_wait),
            stopped: self.stopped,
        })
    }
}

impl Replay {
    /// The body every attempt sends: the buffered bytes (a handle) and trailers.
    fn body<B>(&self) -> ReplayBody<B> {
        ReplayBody::buffered(self.data.clone(), self.trailers.as_deref().cloned())
    }

    /// The replay of a request whose body is all in `collector`, and its first attempt. The
    /// first attempt sends the caller's own head and the replay keeps a copy: a client that
    /// adds headers (hyper-util inserts `host`) then grows the caller's map, which has room,
    /// rather than an exact-size copy (one allocation less per request).
    fn first<B>(
        parts: request::Parts,
        collector: &mut Collector,
    ) -> (Self, Request<ReplayBody<B>>) {
        let replay = Replay {
            head: Head::copy(&parts),
            data: collector.take_data(),
            trailers: collector.take_trailers().map(Box::new),
        };
        let body = replay.body();
        (replay, Request::from_parts(parts, body))
    }

    fn request<B>(&self, ctx: Option<&RetryContext>) -> Request<ReplayBody<B>> {
        let mut request = Request::from_parts(self.head.parts(), self.body());
        if let Some(ctx) = ctx {
            request.extensions_mut().insert(ctx.clone());
        }
        request
    }
}
