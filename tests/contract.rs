//! The contract between the layers (issue 12, section 1): "not sent, and why" is an explicit
//! outcome, budget refunds follow one documented rule, and foreign tower layers placed between
//! ours (`timeout`, `buffer`, `map_err`) do not break either.
mod support;

use std::{
    convert::Infallible,
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use support::{call, post, Mock, Step};
use tower::{service_fn, ServiceBuilder};
use tower_reliability::{
    retry::{ReplayBody, RetryBudget},
    BoxError, Error, JitteredBackoff, RetryOnStatus, RetryReport, StopReason, TimeoutPhase,
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

#[allow(dead_code)]
fn _unused(_: Infallible) {}
