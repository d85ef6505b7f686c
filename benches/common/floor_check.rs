//! Checks that the floor (`floor.rs`) does the work it stands for, run before it is measured
//! (`OVERHEAD_FLOOR=1`): a floor that skipped a step would measure too low.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::{
    runtime::Runtime,
    time::{Instant, Sleep},
};
use tower::{service_fn, Service, ServiceExt};
use tower_reliability::Workload;

use super::{
    chat::{chat_request, REQUEST_JSON},
    floor::{
        published_body, published_deadline, published_workload, FloorReplayBody, FloorService,
        Shared, Timed, TimerSlot,
    },
    in_process::{RESPONSE_JSON, URI},
};

type Answer = Result<Response<Full<Bytes>>, Infallible>;

/// What the inner service saw of one request.
#[derive(Debug, Default, Clone)]
struct Seen {
    deadline_in_call: Option<Instant>,
    deadline_in_poll: Option<Instant>,
    workload_in_call: Option<Workload>,
    body_in_call: Option<Bytes>,
    sent: Bytes,
    authorization: Option<http::HeaderValue>,
}

/// An inner service that records what it sees, yields once (so the floor's future is polled
/// twice), and answers `200` with `remaining` in `x-ratelimit-remaining-requests`.
async fn recording(
    seen: Arc<Mutex<Seen>>,
    remaining: &'static str,
    request: Request<FloorReplayBody>,
) -> Answer {
    let (parts, body) = request.into_parts();
    let sent = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    tokio::task::yield_now().await;
    if let Ok(mut seen) = seen.lock() {
        seen.deadline_in_poll = published_deadline();
        seen.sent = sent;
        seen.authorization = parts.headers.get(http::header::AUTHORIZATION).cloned();
    }
    let mut response = Response::new(Full::new(Bytes::from_static(RESPONSE_JSON)));
    response.headers_mut().insert(
        "x-ratelimit-remaining-requests",
        http::HeaderValue::from_static(remaining),
    );
    Ok(response)
}

/// Sends one chat request (with `workload`, if any) through a floor whose inner service
/// records what it sees; returns what it saw, the response body and the floor's service.
fn one_request(
    runtime: &Runtime,
    remaining: &'static str,
    workload: Option<Workload>,
    tokens: u32,
) -> (Seen, Bytes, Instant, Arc<Shared>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = seen.clone();
    let inner = service_fn(move |request: Request<FloorReplayBody>| {
        let call_deadline = published_deadline();
        let call_body = published_body();
        let call_workload = published_workload();
        let recorder = recorder.clone();
        async move {
            if let Ok(mut seen) = recorder.lock() {
                seen.deadline_in_call = call_deadline;
                seen.body_in_call = call_body;
                seen.workload_in_call = call_workload;
            }
            recording(recorder, remaining, request).await
        }
    });
    let mut floor: FloorService<_> = FloorService::new(inner);
    floor.shared().set_tokens(tokens);
    let mut request = chat_request(&Uri::from_static(URI));
    if let Some(workload) = workload {
        request.extensions_mut().insert(workload);
    }
    let before = Instant::now();
    let body = runtime.block_on(async {
        let response = ServiceExt::<Request<Full<Bytes>>>::ready(&mut floor)
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("answered");
        response
            .into_body()
            .collect()
            .await
            .expect("read")
            .to_bytes()
    });
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    (seen, body, before, floor.shared().clone())
}

/// Panics if the floor skips a step of its success path, or if its timers are not created
/// when something is not ready (inline and boxed).
pub fn check(runtime: &Runtime) {
    check_success_path(runtime);
    check_timers::<Option<Sleep>>(runtime);
    check_timers::<Option<Pin<Box<Sleep>>>>(runtime);
}

/// A `Pending` answer creates the deadline's timer, a `Pending` frame the idle-read one; not
/// before. (Not run to expiry: a paused clock would slow every later `Instant::now` of the
/// process, tokio's test-util clock being global once paused.)
fn check_timers<T: TimerSlot>(runtime: &Runtime) {
    let _entered = runtime.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let stalled = service_fn(|_: Request<FloorReplayBody>| std::future::pending::<Answer>());
    let mut floor: FloorService<_, Timed<T>> = FloorService::new(stalled);
    let mut future = std::pin::pin!(floor.call(chat_request(&Uri::from_static(URI))));
    assert!(!future.timer_armed(), "no timer before a Pending");
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert!(
        future.timer_armed(),
        "a Pending answer creates the deadline's timer"
    );

    let stalling = service_fn(|_: Request<FloorReplayBody>| async {
        Ok::<_, Infallible>(Response::new(StalledBody))
    });
    let mut floor: FloorService<_, Timed<T>> = FloorService::new(stalling);
    let response =
        match std::pin::pin!(floor.call(chat_request(&Uri::from_static(URI)))).poll(&mut cx) {
            Poll::Ready(Ok(response)) => response,
            _ => panic!("an answer ready at once is handed back at once"),
        };
    let mut body = std::pin::pin!(response.into_body());
    assert!(!body.timer_armed(), "no timer before a Pending frame");
    assert!(body.as_mut().poll_frame(&mut cx).is_pending());
    assert!(
        body.timer_armed(),
        "a Pending frame creates the idle-read timer"
    );
}

/// A response body that never yields a frame.
#[derive(Debug)]
pub struct StalledBody;

impl Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

fn check_success_path(runtime: &Runtime) {
    let (seen, body, before, shared) = one_request(runtime, "599", None, 10);
    assert_eq!(
        &body[..],
        RESPONSE_JSON,
        "the response body reads to its end"
    );
    assert_eq!(&seen.sent[..], REQUEST_JSON, "the request body is replayed");
    assert!(seen.authorization.is_some(), "the caller's head is sent");
    assert_eq!(
        seen.body_in_call.as_deref(),
        Some(REQUEST_JSON),
        "body published"
    );
    assert_eq!(seen.workload_in_call, Some(Workload::Interactive));
    let deadline = seen.deadline_in_call.expect("deadline published in call");
    let total = Duration::from_secs(60);
    assert!(deadline >= before + total && deadline <= Instant::now() + total);
    assert_eq!(
        seen.deadline_in_poll,
        Some(deadline),
        "deadline published in poll"
    );
    assert_eq!(
        published_deadline(),
        None,
        "restored after the call and the poll"
    );
    assert_eq!(published_body(), None, "restored after the call");
    assert_eq!(shared.sent(), 1, "the gate counts the send");
    assert_eq!(shared.tokens(), 11, "a first-attempt 2xx deposits 1 token");
    assert!(!shared.is_restricted());

    let (_, _, _, shared) = one_request(runtime, "0", None, 500);
    assert!(shared.is_restricted(), "remaining 0 is read");
    assert_eq!(shared.tokens(), 500, "never above the max");

    let (seen, _, before, _) = one_request(runtime, "599", Some(Workload::Agentic), 500);
    let agentic = Workload::Agentic.profile().total();
    assert_eq!(seen.workload_in_call, Some(Workload::Agentic));
    assert!(seen.deadline_in_call.is_some_and(|d| d >= before + agentic));

    // A body that is not in memory fails, without a panic.
    let inner = service_fn(|_: Request<FloorReplayBody>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let mut floor: FloorService<_> = FloorService::new(inner);
    type Streaming =
        StreamBody<futures::stream::Pending<Result<http_body::Frame<Bytes>, Infallible>>>;
    let request: Request<Streaming> = Request::new(StreamBody::new(futures::stream::pending()));
    let result = runtime.block_on(async {
        let ready = ServiceExt::<Request<Streaming>>::ready(&mut floor).await;
        ready.expect("ready").call(request).await
    });
    assert!(result.is_err(), "a streaming body is refused");
}
