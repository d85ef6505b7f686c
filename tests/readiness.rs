//! Waiting holds nothing of the service below: with a `concurrency_limit` or a `buffer` below
//! the stack, a request that backs off, waits at the gate or streams its body in must not keep
//! the permit (or buffer slot) it was readied with, or it deadlocks on its own capacity.
mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full, StreamBody};
use support::{body_bytes, call, Mock, Step};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    backoff::Jitter, fireworks, BoxError, JitteredBackoff, RateLimitAware, RetryOnStatus,
    TimeoutByWorkload, Workload,
};

fn no_jitter() -> JitteredBackoff {
    JitteredBackoff::default().jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn a_retry_backing_off_gives_its_permit_back() {
    // The reproduction: 503 then 200 under `concurrency_limit(1)`.
    let mock = Mock::new([Step::Status(503, "")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RetryOnStatus::default())
        .layer(no_jitter())
        .concurrency_limit(1)
        .service(mock.clone());
    let start = Instant::now();
    let response = call(&mut svc, support::post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "one backoff of 1 s"
    );
    assert_eq!(mock.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_request_held_at_a_closed_gate_gives_its_permit_back() {
    let mock = Mock::new(
        [Step::With(429, vec![("retry-after", "1".into())], "")],
        Step::ok(),
    );
    let gate = RateLimitAware::new();
    let stack = || {
        ServiceBuilder::new()
            .layer(TimeoutByWorkload::new(Workload::Interactive))
            .layer(RetryOnStatus::default().max_attempts(1))
            .layer(no_jitter())
            .layer(gate.clone())
            .concurrency_limit(1)
            .service(mock.clone())
    };
    // The 429 closes the gate for 1 s; the next request is held there on its first attempt.
    let first = call(&mut stack(), support::post("{}")).await.unwrap();
    assert_eq!(first.status(), 429);
    let start = Instant::now();
    let response = call(&mut stack(), support::post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        start.elapsed() <= Duration::from_millis(1100),
        "{:?}",
        start.elapsed()
    );
}

/// `concurrency_limit(n)` below the preset, with more than `n` callers held in backoff and at
/// the gate: every caller makes progress.
async fn callers_make_progress_below_the_preset<S>(svc: S, mock: Mock, callers: usize)
where
    S: tower::Service<http::Request<Full<Bytes>>, Error = tower_reliability::Error>
        + Clone
        + Send
        + 'static,
    S::Response: Send,
    S::Future: Send,
{
    let start = Instant::now();
    let tasks = (0..callers).map(|_| {
        let mut svc = svc.clone();
        tokio::spawn(async move { call(&mut svc, support::post("{}")).await.map(|_| ()) })
    });
    for result in join_all(tasks).await {
        result.unwrap().unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(mock.count() >= callers);
}

#[tokio::test(start_paused = true)]
async fn the_preset_over_a_concurrency_limit_makes_progress() {
    let mock = Mock::new(
        [
            Step::Status(503, ""),
            Step::Status(503, ""),
            Step::With(429, vec![("retry-after", "1".into())], ""),
        ],
        Step::ok(),
    );
    let svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .concurrency_limit(2)
        .service(mock.clone());
    callers_make_progress_below_the_preset(svc, mock, 8).await;
}

#[tokio::test(start_paused = true)]
async fn the_preset_over_a_buffer_makes_progress() {
    let mock = Mock::new(
        [
            Step::Status(503, ""),
            Step::Status(503, ""),
            Step::With(429, vec![("retry-after", "1".into())], ""),
        ],
        Step::Delay(Duration::from_millis(50), Box::new(Step::ok())),
    );
    let svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .buffer(1)
        .concurrency_limit(1)
        .service(mock.clone());
    callers_make_progress_below_the_preset(svc, mock, 6).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_body_still_streaming_in_holds_no_permit() {
    // A's body arrives after 30 s; B, ready at once, goes first under `concurrency_limit(1)`.
    let mock = Mock::always(Step::ok());
    let svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .concurrency_limit(1)
        .service(mock.clone());
    let slow_body = StreamBody::new(futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(b"{}")))
    }))
    .boxed();
    let mut a = svc.clone();
    let slow = async move {
        let request = http::Request::post("http://x/").body(slow_body).unwrap();
        call(&mut a, request).await.map(|_| Instant::now())
    };
    let mut b = svc.clone();
    let fast = async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let start = Instant::now();
        let body = Full::new(Bytes::from_static(b"{}"))
            .map_err(|e| -> BoxError { match e {} })
            .boxed();
        let request = http::Request::post("http://x/").body(body).unwrap();
        let response = call(&mut b, request).await.unwrap();
        assert_eq!(body_bytes(response).await.unwrap(), "ok");
        (start, Instant::now())
    };
    let (done, (start, fast_done)) = tokio::join!(slow, fast);
    assert!(
        fast_done - start < Duration::from_secs(1),
        "{:?}",
        fast_done - start
    );
    assert!(done.unwrap() >= start + Duration::from_secs(29));
    assert_eq!(mock.count(), 2);
}
