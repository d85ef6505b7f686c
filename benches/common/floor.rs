//! The floor of the preset's success path: a hand-fused reference stack that does, in one
//! service, one future and one response-body wrapper, exactly the work `fireworks::layer` must
//! still do for a first attempt that succeeds (Interactive workload, a `200`, a request body in
//! memory), and nothing else. It is not a usable client: it never retries, never waits at a
//! gate and never times out on this path; it only pays for being able to. What a perfect
//! fusion of the five layers could cost, measured against tower's `Timeout` + `Retry`.
//!
//! Per request, in [`FloorService::call`] and [`FloorFuture::poll`]:
//! 1. **deadline**: the `Workload` extension (else Interactive), `Instant::now()` + its total
//!    (60 s), published in a thread-local around the inner `call` and each inner `poll` (set,
//!    then restored, as `src/scoped.rs` and `src/context.rs` do); one `Sleep`, created at the
//!    first `Pending` only; the response body wrapped with an idle-read timer armed by a
//!    `Pending` frame only.
//! 2. **replay**: the body read with one poll on a no-op waker; the request head cloned
//!    (as a plain header list, as `src/retry/head.rs` does) and a clone of the readied inner service kept for a retry; the
//!    caller's own head sent with a [`FloorReplayBody`] of the bytes; on a 2xx, 1 token back
//!    into the retry budget (`src/retry/budget.rs` `deposit`: a load when the bucket is full).
//! 3. **gate**: the `restricted` flag loaded, a relaxed `fetch_add` of sends and a clock read
//!    one send in 32 (`src/rate_limit/local.rs` `admit_unrestricted` / `count_send`); the body's
//!    bytes published in a thread-local around the inner `call`; the
//!    `x-ratelimit-remaining-requests` header read once and compared with `"0"`; the response
//!    body's per-frame tap check (`src/rate_limit/metered.rs` when no token limit is known:
//!    one branch per frame).
//! 4. **per-attempt limit**: the `Workload` extension read again; Interactive has none.
//!
//! [`Cut`] flags remove one part at compile time, to see what each costs.

#[path = "floor/body.rs"]
mod body;
#[path = "floor/published.rs"]
mod published;
#[path = "floor/shared.rs"]
mod shared;
#[path = "floor/timer.rs"]
mod timer;

use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{request, HeaderName, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{BoxError, Service};
use tower_reliability::Workload;

pub use body::{FloorReplayBody, Plain, Timed, TimedBoxed, Wrap, WrapTimer};
pub use published::{published_body, published_deadline, published_workload};
pub use shared::Shared;
pub use timer::TimerSlot;

use body::collect_once;
use published::{Ambient, Published, AMBIENT, BODY};
use shared::Profiles;

/// What a variant of the floor leaves out (bits of the `CUT` parameter).
pub struct Cut;

impl Cut {
    /// The full floor.
    pub const NONE: u8 = 0;
    /// No `x-ratelimit-remaining-requests` lookup on the response.
    pub const HEADER: u8 = 1;
    /// No replay: no copy of the head, no inner service clone, no bytes kept for a retry.
    pub const REPLAY: u8 = 2;
    /// No body publication for the layers below.
    pub const PUBLISH_BODY: u8 = 4;
    /// No deadline publication (measurement only: the client below may read the deadline).
    pub const PUBLISH_DEADLINE: u8 = 8;
    /// Every removable part (the response body wrapper goes with [`Plain`]).
    pub const ALL: u8 = Cut::HEADER | Cut::REPLAY | Cut::PUBLISH_BODY;
}

/// `CUT` as a type, for the future (`pin_project_lite` takes no const parameters).
#[derive(Debug)]
pub struct Cuts<const CUT: u8>;

/// The bits of a [`Cuts`].
pub trait CutSet {
    /// What is left out ([`Cut`] bits).
    const BITS: u8;
}

impl<const CUT: u8> CutSet for Cuts<CUT> {
    const BITS: u8 = CUT;
}

const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");

/// The hand-fused reference stack over `S` (see the [module](self)); `W` wraps the response
/// body ([`Timed`] or, to measure without it, [`Plain`]); `CUT` removes parts ([`Cut`]).
#[derive(Debug)]
pub struct FloorService<S, W = Timed, const CUT: u8 = 0> {
    inner: S,
    shared: Arc<Shared>,
    profiles: Profiles,
    _wrap: PhantomData<fn() -> W>,
}

impl<S: Clone, W, const CUT: u8> Clone for FloorService<S, W, CUT> {
    fn clone(&self) -> Self {
        FloorService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            profiles: self.profiles,
            _wrap: PhantomData,
        }
    }
}

impl<S, W, const CUT: u8> FloorService<S, W, CUT> {
    /// The floor over `inner`, with a full budget and an open gate.
    pub fn new(inner: S) -> Self {
        FloorService {
            inner,
            shared: Arc::new(Shared::new()),
            profiles: Profiles::new(),
            _wrap: PhantomData,
        }
    }

    /// The budget and gate shared by clones.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// What a retry would send again: the head, the bytes and the readied service's clone.
struct Retry<S> {
    _head: RetryHead,
    _data: Option<Bytes>,
    _service: S,
}

/// The head kept for a retry, as `src/retry/head.rs` keeps it: the headers as a plain list
/// (one allocation; a `HeaderMap` clone makes two), rebuilt into a map only for a retry.
struct RetryHead {
    _method: http::Method,
    _uri: http::Uri,
    _version: http::Version,
    _headers: Vec<(HeaderName, http::HeaderValue)>,
    _extensions: http::Extensions,
}

impl RetryHead {
    fn copy(parts: &request::Parts) -> RetryHead {
        RetryHead {
            _method: parts.method.clone(),
            _uri: parts.uri.clone(),
            _version: parts.version,
            _headers: parts
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            _extensions: parts.extensions.clone(),
        }
    }
}

impl<S, B, ResB, W, const CUT: u8> Service<Request<B>> for FloorService<S, W, CUT>
where
    S: Service<Request<FloorReplayBody>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    W: Wrap<ResB>,
{
    type Response = Response<W::Body>;
    type Error = BoxError;
    type Future = FloorFuture<S::Future, S, W, Cuts<CUT>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // 1. The deadline.
        let workload = request
            .extensions()
            .get::<Workload>()
            .copied()
            .unwrap_or(Workload::Interactive);
        let (total, idle_read, _) = self.profiles.of(workload);
        let now = Instant::now();
        let own = now.checked_add(total).unwrap_or(now);
        // 2. The replay.
        let (parts, mut body) = request.into_parts();
        let data = match collect_once(&mut body) {
            Ok(data) => data,
            Err(error) => return FloorFuture::failed(error, own, workload, self.shared.clone()),
        };
        // 3. The gate: the floor has no slow path (a restricted gate would queue here).
        let _unrestricted = self.shared.admit_unrestricted();
        // 4. The per-attempt limit, from the workload again.
        let attempt_workload = parts
            .extensions
            .get::<Workload>()
            .copied()
            .unwrap_or(Workload::Interactive);
        let (_, _, attempt) = self.profiles.of(attempt_workload);
        let attempt_at = attempt.and_then(|limit| now.checked_add(limit));

        let (mut service, retry_head) = if CUT & Cut::REPLAY == 0 {
            let clone = self.inner.clone();
            (
                std::mem::replace(&mut self.inner, clone),
                Some(RetryHead::copy(&parts)),
            )
        } else {
            (self.inner.clone(), None)
        };
        let (sent_data, kept_data) = if CUT & Cut::REPLAY == 0 {
            (data.clone(), data)
        } else {
            (data, None)
        };
        let published_data = if CUT & Cut::PUBLISH_BODY == 0 {
            sent_data.clone()
        } else {
            None
        };
        let sent = Request::from_parts(parts, FloorReplayBody { data: sent_data });
        let ambient = Ambient {
            deadline: own,
            workload,
        };
        let outer =
            (CUT & Cut::PUBLISH_DEADLINE == 0).then(|| Published::set(&AMBIENT, Some(ambient)));
        // Nested in another floor: the earlier deadline wins (no extra thread-local access).
        let deadline = match outer.as_ref().and_then(|o| o.previous) {
            Some(o) if o.deadline < own => {
                let _ = AMBIENT.try_with(|cell| {
                    cell.set(Some(Ambient {
                        deadline: o.deadline,
                        workload,
                    }))
                });
                o.deadline
            }
            _ => own,
        };
        let body_published =
            (CUT & Cut::PUBLISH_BODY == 0).then(|| Published::set(&BODY, published_data));
        let future = service.call(sent);
        drop(body_published);
        drop(outer);
        let retry = retry_head.map(|parts| Retry {
            _head: parts,
            _data: kept_data,
            _service: service,
        });
        FloorFuture {
            state: State::Sent { future },
            sleep: W::Timer::default(),
            ambient: Ambient { deadline, workload },
            attempt_at,
            idle_read,
            retry,
            shared: self.shared.clone(),
            _wrap: PhantomData,
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The attempt is in flight.
        Sent { #[pin] future: F },
        // Failed before sending (a body not in memory).
        Failed { error: Option<BoxError> },
    }
}

pin_project! {
    /// The floor's response future: the attempt, the deadline's lazily created timer, and what
    /// a retry would need.
    pub struct FloorFuture<F, S, W: WrapTimer, C> {
        #[pin]
        state: State<F>,
        // The earlier of the deadline and the per-attempt limit; created at the first
        // `Pending`, so a response ready at once never touches the timer wheel.
        #[pin]
        sleep: W::Timer,
        ambient: Ambient,
        attempt_at: Option<Instant>,
        idle_read: Duration,
        retry: Option<Retry<S>>,
        shared: Arc<Shared>,
        _wrap: PhantomData<fn() -> (W, C)>,
    }
}

impl<F, S, W: WrapTimer, C> FloorFuture<F, S, W, C> {
    /// Whether the deadline's timer was created (at a `Pending`).
    pub fn timer_armed(&self) -> bool {
        self.sleep.is_armed()
    }

    fn failed(error: BoxError, deadline: Instant, workload: Workload, shared: Arc<Shared>) -> Self {
        FloorFuture {
            state: State::Failed { error: Some(error) },
            sleep: W::Timer::default(),
            ambient: Ambient { deadline, workload },
            attempt_at: None,
            idle_read: Duration::ZERO,
            retry: None,
            shared,
            _wrap: PhantomData,
        }
    }
}

impl<F, S, ResB, E, W, C> Future for FloorFuture<F, S, W, C>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
    W: Wrap<ResB>,
    C: CutSet,
{
    type Output = Result<Response<W::Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.state.project() {
            StateProj::Sent { future } => {
                let _published = (C::BITS & Cut::PUBLISH_DEADLINE == 0)
                    .then(|| Published::set(&AMBIENT, Some(*this.ambient)));
                future.poll(cx)
            }
            StateProj::Failed { error } => {
                return Poll::Ready(Err(error
                    .take()
                    .unwrap_or_else(|| "floor future polled after completion".into())));
            }
        };
        match polled {
            Poll::Ready(Ok(response)) => {
                // 2xx: final, 1 token back into the budget. (The floor never retries: any
                // other answer is handed back as it is.)
                if response.status().is_success() {
                    this.shared.deposit(1);
                }
                if C::BITS & Cut::HEADER == 0 {
                    let exhausted = response
                        .headers()
                        .get(&REMAINING)
                        .is_some_and(|v| v.as_bytes() == b"0");
                    if exhausted {
                        this.shared.restricted.store(true, Ordering::Release);
                    }
                }
                let idle = *this.idle_read;
                Poll::Ready(Ok(response.map(|body| W::wrap(body, idle))))
            }
            // The floor never retries an error.
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => {
                let mut sleep = this.sleep;
                if !sleep.is_armed() {
                    let deadline = this.ambient.deadline;
                    let at = this.attempt_at.map_or(deadline, |a| a.min(deadline));
                    sleep.as_mut().arm(at);
                }
                ready!(sleep.poll_armed(cx));
                Poll::Ready(Err("the floor's deadline or attempt limit passed".into()))
            }
        }
    }
}
