//! The contract between the layers (issue 12, section 1): "not sent, and why" is an explicit
//! outcome, budget refunds follow one documented rule, and foreign tower layers placed between
//! ours (`timeout`, `buffer`, `map_err`) do not break either.
mod common;
mod support;

use std::{
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use common::fast_backoff;
use http::{Request, Response};
use http_body_util::Full;
use support::{call, post, Mock, Step};
use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder};
use tower_reliability::{
    backoff::Jitter,
    context::StopReason,
    error::TimeoutPhase,
    retry::{ReplayBody, RetryBudget},
    BoxError, Error, JitteredBackoff, RetryOnStatus, RetryReport, TimeoutByWorkload, Workload,
};

/// A foreign layer's error type that keeps ours as its source (as many do).
#[derive(Debug)]
struct Foreign(BoxError);

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a foreign layer failed")
    }
}

impl std::error::Error for Foreign {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

fn report<B>(response: &Response<B>) -> Option<RetryReport> {
    response.extensions().get::<RetryReport>().copied()
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
    response
}

/// A deadline that fires inside the retry layer *after* a retry was sent (a
/// `TimeoutByWorkload` placed below it, or the user's own) is that attempt's outcome, not a
/// refusal: the attempt counts, its budget cost is spent, and the last real response comes back.
#[tokio::test(start_paused = true)]
async fn a_deadline_after_a_retry_was_sent_is_not_a_refusal() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let inner = service_fn(move |_req: Request<ReplayBody<Full<Bytes>>>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Ok(status(503)),
                _ => Err(Error::timeout(TimeoutPhase::Deadline)),
            }
        }
    });
    let budget = RetryBudget::new(100, 5, 10);
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default().budget(budget.clone()))
        .service(inner);
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let report = report(&response).expect("a report");
    assert_eq!(report.attempts, 2, "the retry was sent: it counts");
    assert_eq!(report.stopped, Some(StopReason::DeadlineReached));
    assert_eq!(budget.available(), 95, "a sent retry is not refunded");
}

/// A backoff refusal that a foreign layer wraps in its own error type is still read as "not
/// sent": the last response comes back and the retry's cost is refunded.
#[tokio::test(start_paused = true)]
async fn a_refusal_wrapped_by_a_foreign_layer_is_still_not_sent() {
    let mock = Mock::always(Step::Status(503, "busy"));
    let budget = RetryBudget::new(100, 5, 10);
    let stop_at_once = JitteredBackoff::default().custom(Arc::new(|_, _| None));
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default().budget(budget.clone()))
        .map_err(|e: Error| Foreign(e.into()))
        .layer(stop_at_once)
        .service(mock.clone());
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(mock.count(), 1);
    let report = report(&response).expect("a report");
    assert_eq!(report.attempts, 1);
    assert_eq!(report.stopped, Some(StopReason::NextAttemptRefused));
    assert_eq!(budget.available(), 100, "the refused retry is refunded");
}

/// Retry (with `budget`) above tower's `timeout` of `limit`, above a 1 s backoff, above `mock`.
fn retry_timeout_backoff(
    budget: &RetryBudget,
    limit: Duration,
    mock: &Mock,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<tower_reliability::ReplayBody<support::TestBody>>,
    Error = tower_reliability::Error,
> {
    ServiceBuilder::new()
        .layer(RetryOnStatus::default().budget(budget.clone()))
        .timeout(limit)
        .layer(fast_backoff(Jitter::None, 1000))
        .service(mock.clone())
}

/// tower's `timeout` placed between the retry layer and the backoff, shorter than the backoff
/// wait: it fires while the retry is still waiting, never sent. The retry layer reads the
/// backoff's wait guard (the refund contract), not the error: the last response comes back,
/// nothing more is sent, and the retry's cost is refunded.
#[tokio::test(start_paused = true)]
async fn tower_timeout_between_retry_and_backoff_cuts_a_wait_not_an_attempt() {
    let mock = Mock::always(Step::Status(503, "busy"));
    let budget = RetryBudget::new(100, 5, 10);
    let mut svc = retry_timeout_backoff(&budget, Duration::from_millis(500), &mock);
    let started = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(mock.count(), 1, "the cut wait sent nothing");
    let report = report(&response).expect("a report");
    assert_eq!(report.attempts, 1);
    assert_eq!(report.stopped, Some(StopReason::NextAttemptRefused));
    assert_eq!(budget.available(), 100, "the never-sent retry is refunded");
    assert_eq!(started.elapsed(), Duration::from_millis(500));
}

/// The same stack with a tower `timeout` longer than the waits: retries, waits and the budget
/// are as without it.
#[tokio::test(start_paused = true)]
async fn tower_timeout_between_retry_and_backoff_keeps_retries_and_refunds() {
    let mock = Mock::new(
        [Step::Status(503, "busy"), Step::Status(503, "busy")],
        Step::ok(),
    );
    let budget = RetryBudget::new(100, 5, 10);
    let mut svc = retry_timeout_backoff(&budget, Duration::from_secs(5), &mock);
    let started = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let report = report(&response).expect("a report");
    assert_eq!(report.attempts, 3);
    assert_eq!(report.waited, Duration::from_secs(3));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    // Two retries (5 each), the success gives the last one's cost back.
    assert_eq!(budget.available(), 95);
}

fn three_second_deadline() -> TimeoutByWorkload {
    TimeoutByWorkload::new(Workload::Interactive).profile(
        Workload::Interactive,
        Workload::Interactive
            .profile()
            .with_total(Duration::from_secs(3)),
    )
}

/// `tower::buffer` between the retry layer and the backoff: the backoff's `call` runs on the
/// buffer's worker task, where the ambient deadline is not seen. With
/// `TimeoutByWorkload::deadline_in_extensions` it is: the backoff refuses the wait that would
/// pass the deadline, the last response comes back at once and that retry is refunded.
#[tokio::test(start_paused = true)]
async fn buffer_between_retry_and_backoff_with_the_deadline_in_extensions() {
    let mock = Mock::always(Step::Status(503, "busy"));
    let budget = RetryBudget::new(100, 5, 10);
    let mut svc = ServiceBuilder::new()
        .layer(three_second_deadline().deadline_in_extensions(true))
        .layer(RetryOnStatus::default().budget(budget.clone()))
        .buffer(4)
        .layer(fast_backoff(Jitter::None, 1000))
        .service(mock.clone());
    let started = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        mock.count(),
        2,
        "at 0 s and 1 s; a 2 s wait would pass the deadline"
    );
    let report = report(&response).expect("a report");
    assert_eq!(report.attempts, 2);
    assert_eq!(report.stopped, Some(StopReason::NextAttemptRefused));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        budget.available(),
        95,
        "one retry sent, the refused one refunded"
    );
}

/// The documented limit without `deadline_in_extensions`: the backoff behind the buffer starts
/// a wait past the deadline; the deadline cuts it, the retry layer still hands back the last
/// response and refunds the retry that never left.
#[tokio::test(start_paused = true)]
async fn buffer_between_retry_and_backoff_without_the_deadline_in_extensions() {
    let mock = Mock::always(Step::Status(503, "busy"));
    let budget = RetryBudget::new(100, 5, 10);
    let mut svc = ServiceBuilder::new()
        .layer(three_second_deadline())
        .layer(RetryOnStatus::default().budget(budget.clone()))
        .buffer(4)
        .layer(fast_backoff(Jitter::None, 1000))
        .service(mock.clone());
    let started = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(mock.count(), 2);
    let report = report(&response).expect("a report");
    assert_eq!(report.attempts, 2);
    assert_eq!(report.stopped, Some(StopReason::DeadlineReached));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "waited until the deadline"
    );
    assert_eq!(
        budget.available(),
        95,
        "one retry sent, the cut one refunded"
    );
}

/// tower's own `timeout` inside `RetryOnStatus` (where `AttemptTimeout` goes) is an attempt
/// timeout: retried, at the timeout cost.
#[tokio::test(start_paused = true)]
async fn tower_timeout_inside_the_retry_layer_is_an_attempt_timeout() {
    let mock = Mock::new(
        [Step::Delay(Duration::from_secs(60), Box::new(Step::ok()))],
        Step::ok(),
    );
    let budget = RetryBudget::new(100, 5, 10);
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default().budget(budget.clone()))
        .layer(fast_backoff(Jitter::None, 10))
        .timeout(Duration::from_secs(1))
        .service(mock.clone());
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.count(), 2);
    assert_eq!(report(&response).map(|r| r.attempts), Some(2));
    assert_eq!(
        budget.available(),
        100,
        "-10 for a retry after a timeout, +10 on success"
    );

    // When every attempt times out, the caller gets an attempt timeout (a gateway: 504, not
    // 502), tower's `Elapsed` kept as the source.
    mock.set_otherwise(Step::Delay(Duration::from_secs(60), Box::new(Step::ok())));
    let err = call(&mut svc, post("{}")).await.unwrap_err();
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::Attempt));
    assert!(
        std::error::Error::source(&err).is_some_and(|s| s.is::<tower::timeout::error::Elapsed>())
    );
    #[cfg(feature = "axum")]
    assert_eq!(err.gateway_status(), http::StatusCode::GATEWAY_TIMEOUT);
}

/// `JitteredBackoff` placed *above* `RetryOnStatus` sees no retry (they are made below it), so
/// the retries go out with no wait. It cannot wait for them, but it must not be silent: one
/// `warn` per process names the mistake.
#[tokio::test(start_paused = true)]
async fn backoff_above_the_retry_layer_warns_once() {
    let capture = common::tracing_capture::global_capture();
    let mock = Mock::new(
        [Step::Status(503, "busy"), Step::Status(503, "busy")],
        Step::ok(),
    );
    let mut svc = ServiceBuilder::new()
        .layer(fast_backoff(Jitter::None, 1000))
        .layer(RetryOnStatus::default())
        .service(mock.clone());
    let started = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.count(), 3);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the documented behaviour: no waits"
    );
    mock.set_otherwise(Step::Status(503, "busy"));
    let _ = call(&mut svc, post("{}")).await.unwrap();
    let text = capture.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("JitteredBackoff is above RetryOnStatus"))
        .count();
    assert_eq!(warnings, 1, "one warning, not one per request:\n{text}");
}

/// A failed request says what it cost: a dead upstream's connect error carries the attempts
/// and the waits (`Error::report`), as a response carries its `RetryReport`.
#[tokio::test(start_paused = true)]
async fn a_failed_request_carries_its_retry_report() {
    let mock = Mock::always(Step::Fail(std::io::ErrorKind::ConnectionRefused));
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default().budget(RetryBudget::unlimited()))
        .layer(fast_backoff(Jitter::None, 10))
        .service(mock.clone());
    let err = call(&mut svc, post("{}")).await.unwrap_err();
    assert!(err.is_connect());
    assert_eq!(mock.count(), 5);
    let report = err.report().expect("a report on the error");
    assert_eq!(report.attempts, 5);
    assert_eq!(report.waited, Duration::from_millis(10 + 20 + 40 + 80));
    assert_eq!(report.stopped, Some(StopReason::AttemptsExhausted));

    // A failure on the first and only attempt has nothing to report.
    let mock = Mock::always(Step::Fail(std::io::ErrorKind::InvalidData));
    let mut plain = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .service(mock);
    let err = call(&mut plain, post("{}")).await.unwrap_err();
    assert_eq!(err.report(), None);
}
