//! Rules 2, 3 and 5: what is retried, the last real response, body replay, and the budget.
mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::fast_backoff;
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use support::{body_bytes, call, post, Mock, Step};
use tower::ServiceBuilder;
use tower_reliability::{
    backoff::Jitter,
    context::StopReason,
    retry::{RetryBudget, StatusSet},
    ErrorKind, RetryOnStatus, RetryReport,
};

/// Retry + a 1 ms backoff: the retry rules, without waiting.
fn stack(
    retry: RetryOnStatus,
    mock: &Mock,
) -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<tower_reliability::retry::ReplayBody<support::TestBody>>,
    Error = tower_reliability::Error,
    Future = impl Send,
> + Send
       + 'static {
    ServiceBuilder::new()
        .layer(retry)
        .layer(fast_backoff(Jitter::None, 1))
        .service(mock.clone())
}

#[tokio::test(start_paused = true)]
async fn the_guides_retryable_statuses_are_retried_until_the_cap() {
    for code in [429, 500, 502, 503, 504] {
        let mock = Mock::always(Step::Status(code, "nope"));
        let mut svc = stack(RetryOnStatus::default(), &mock);
        let response = call(&mut svc, post("{}")).await.unwrap();
        assert_eq!(response.status(), code);
        assert_eq!(mock.count(), 5, "{code}: the guide's loop makes 5 attempts");
        let report = *response.extensions().get::<RetryReport>().unwrap();
        assert_eq!(report.attempts, 5);
        assert_eq!(report.stopped, Some(StopReason::AttemptsExhausted));
        assert_eq!(
            body_bytes(response).await.unwrap(),
            "nope",
            "{code}: the last real body"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_never_retried() {
    for code in [400, 401, 403, 404, 408, 409, 422] {
        let mock = Mock::always(Step::Status(code, "fix the request"));
        let mut svc = stack(RetryOnStatus::default(), &mock);
        let response = call(&mut svc, post("{}")).await.unwrap();
        assert_eq!(response.status(), code);
        assert_eq!(mock.count(), 1, "{code} must not be retried");
        assert!(response.extensions().get::<RetryReport>().is_none());
        assert_eq!(body_bytes(response).await.unwrap(), "fix the request");
    }
}

#[tokio::test(start_paused = true)]
async fn the_last_response_keeps_its_headers() {
    let mock = Mock::new(
        [Step::Status(503, "first")],
        Step::With(502, vec![("x-request-id", "last".into())], "last body"),
    );
    let mut svc = stack(RetryOnStatus::default().max_attempts(3), &mock);
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-request-id"], "last");
    assert_eq!(body_bytes(response).await.unwrap(), "last body");
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_reports_its_attempts() {
    let mock = Mock::new([Step::Status(500, ""), Step::Status(429, "")], Step::ok());
    let mut svc = stack(RetryOnStatus::default(), &mock);
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let report = response.extensions().get::<RetryReport>().unwrap();
    assert_eq!((report.attempts, report.stopped), (3, None));
    let attempts: Vec<_> = mock.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(
        attempts,
        [None, Some(2), Some(3)],
        "a RetryContext on retries only"
    );
}

#[tokio::test(start_paused = true)]
async fn the_status_set_is_configurable_and_x_should_retry_overrides() {
    let mock = Mock::new([Step::Status(408, "")], Step::ok());
    let mut svc = stack(
        RetryOnStatus::default().statuses(StatusSet::GUIDE.with(408)),
        &mock,
    );
    assert_eq!(call(&mut svc, post("{}")).await.unwrap().status(), 200);
    assert_eq!(mock.count(), 2);

    let no = vec![("x-should-retry", "false".to_string())];
    let mock = Mock::always(Step::With(503, no, ""));
    let mut svc = stack(RetryOnStatus::default(), &mock);
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(mock.count(), 1);
    assert_eq!(
        response.extensions().get::<RetryReport>().unwrap().stopped,
        Some(StopReason::ServerSaidNo)
    );

    let yes = vec![("x-should-retry", "true".to_string())];
    let mock = Mock::new([Step::With(409, yes, "")], Step::ok());
    let mut svc = stack(RetryOnStatus::default(), &mock);
    assert_eq!(call(&mut svc, post("{}")).await.unwrap().status(), 200);
    assert_eq!(mock.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn failures_that_never_reached_the_server_are_retried_and_classified() {
    let mock = Mock::new(
        [Step::Fail(std::io::ErrorKind::ConnectionRefused)],
        Step::ok(),
    );
    let mut svc = stack(RetryOnStatus::default(), &mock);
    assert_eq!(call(&mut svc, post("{}")).await.unwrap().status(), 200);
    assert_eq!(mock.count(), 2);

    let mock = Mock::always(Step::Fail(std::io::ErrorKind::ConnectionRefused));
    let mut svc = stack(RetryOnStatus::default(), &mock);
    let err = call(&mut svc, post("{}")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "the last error, classified");
    assert_eq!(err.reached_server(), Some(false));
    assert_eq!(mock.count(), 5);

    // An application error is the inner service's own: not retried, kept as the source.
    let mock = Mock::always(Step::Fail(std::io::ErrorKind::InvalidData));
    let mut svc = stack(RetryOnStatus::default(), &mock);
    let err = call(&mut svc, post("{}")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Inner);
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(mock.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_is_replayed_byte_for_byte() {
    // Five chunks, each arriving after a pause: not collectable at `call` time.
    let chunks: Vec<&'static str> = vec!["{\"model\":", "\"m\",", "\"messages\":", "[]", "}"];
    let stream = futures::stream::iter(chunks.clone()).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(c.as_bytes())))
    });
    use futures::StreamExt;
    let request = http::Request::post("http://x/")
        .body(StreamBody::new(Box::pin(stream)))
        .unwrap();
    let mock = Mock::new([Step::Status(503, ""), Step::Status(502, "")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .layer(fast_backoff(Jitter::None, 1))
        .service(mock.clone());
    assert_eq!(call(&mut svc, request).await.unwrap().status(), 200);
    let expected = chunks.concat();
    let bodies: Vec<_> = mock.calls().into_iter().map(|c| c.body).collect();
    assert_eq!(bodies, vec![Bytes::from(expected); 3]);
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_replay_cap_is_sent_once_whole_and_not_retried() {
    let big = "x".repeat(1000);
    let request = http::Request::post("http://x/")
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    let mock = Mock::always(Step::Status(503, "busy"));
    let mut svc = stack(RetryOnStatus::default().replay_cap(100), &mock);
    let response = call(&mut svc, request).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(mock.count(), 1);
    assert_eq!(mock.calls()[0].body, big, "never truncated");
    let report = response.extensions().get::<RetryReport>().unwrap();
    assert_eq!(report.stopped, Some(StopReason::BodyNotReplayable));
}

#[tokio::test(start_paused = true)]
async fn a_retryable_response_too_large_to_set_aside_is_handed_back_intact() {
    let huge: &'static str = Box::leak("e".repeat(100_000).into_boxed_str());
    let mock = Mock::new([Step::Status(500, huge)], Step::ok());
    let mut svc = stack(RetryOnStatus::default(), &mock);
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(mock.count(), 1);
    assert_eq!(
        response.extensions().get::<RetryReport>().unwrap().stopped,
        Some(StopReason::ResponseNotDrainable)
    );
    assert_eq!(body_bytes(response).await.unwrap().len(), 100_000);
}

#[tokio::test(start_paused = true)]
async fn the_budget_makes_an_outage_cost_about_one_attempt_per_request() {
    let budget = RetryBudget::new(50, 5, 10); // room for 10 retries
    let mock = Mock::always(Step::Status(503, "down"));
    let retry = RetryOnStatus::default().budget(budget.clone());
    let mut svc = stack(retry.clone(), &mock);
    // A clone of the layer (another stack) shares the bucket.
    let mut other = stack(retry, &mock);
    for i in 0..100 {
        let svc = if i % 2 == 0 { &mut svc } else { &mut other };
        assert_eq!(call(svc, post("{}")).await.unwrap().status(), 503);
    }
    assert_eq!(mock.count(), 100 + 10, "1.1 attempts per request, not 5");
    assert_eq!(budget.available(), 0);

    // Recovery: successes refill the bucket (1 token each), retries come back.
    mock.set_otherwise(Step::ok());
    for _ in 0..5 {
        call(&mut svc, post("{}")).await.unwrap();
    }
    assert_eq!(budget.available(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_reports_why() {
    let mock = Mock::always(Step::Status(503, ""));
    let mut svc = stack(
        RetryOnStatus::default().budget(RetryBudget::new(0, 5, 10)),
        &mock,
    );
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(
        response.extensions().get::<RetryReport>().unwrap().stopped,
        Some(StopReason::BudgetExhausted)
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_request_between_reserving_and_sending_a_retry_returns_the_tokens() {
    let budget = RetryBudget::new(100, 5, 10);
    // A 503 whose body never ends: the retry is reserved while the body is being set aside.
    let mock = Mock::always(Step::StreamStatus(
        503,
        vec![(Duration::ZERO, "busy")],
        true,
    ));
    let mut svc = stack(RetryOnStatus::default().budget(budget.clone()), &mock);
    let pending = tokio::spawn(async move { call(&mut svc, post("{}")).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(budget.available(), 95, "the retry's cost is reserved");
    pending.abort();
    assert!(pending.await.unwrap_err().is_cancelled());
    assert_eq!(
        budget.available(),
        100,
        "and given back when the caller goes away"
    );
    assert_eq!(mock.count(), 1);
}

/// The AWS standard retry quota's arithmetic (botocore `RetryQuotaChecker`, smithy-rs's retry
/// permit): a retry takes its cost; a success gives back only the *last* retry's cost, or 1
/// when it needed no retry; a final answer that is not a success gives nothing back.
#[tokio::test(start_paused = true)]
async fn the_budget_follows_the_aws_standard_arithmetic() {
    let budget = RetryBudget::new(100, 5, 10);
    let retry = RetryOnStatus::default().budget(budget.clone());

    // Succeeds on the 4th try: 3 retries take 15, the success gives back the last 5.
    let fourth_try = |n: usize| {
        let mut script = Vec::new();
        for _ in 0..n {
            script.extend([
                Step::Status(503, ""),
                Step::Status(503, ""),
                Step::Status(503, ""),
            ]);
            script.push(Step::ok());
        }
        Mock::new(script, Step::ok())
    };
    let mock = fourth_try(3);
    let mut svc = stack(retry.clone(), &mock);
    for n in 1..=3u32 {
        let response = call(&mut svc, post("{}")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(budget.available(), 100 - 10 * n, "after request {n}");
    }
    // A success that needed no retry earns 1.
    call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(budget.available(), 71);

    // A final 404 after a retry: the retry's 5 are not given back.
    let mock = Mock::new([Step::Status(503, ""), Step::Status(404, "")], Step::ok());
    let mut svc = stack(retry.clone(), &mock);
    assert_eq!(call(&mut svc, post("{}")).await.unwrap().status(), 404);
    assert_eq!(budget.available(), 66);
    // A final 404 with no retry earns nothing.
    let mock = Mock::always(Step::Status(404, ""));
    let mut svc = stack(retry.clone(), &mock);
    call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(budget.available(), 66);

    // A server that always needs four tries drains the bucket: retries stop.
    let mock = fourth_try(100);
    let mut svc = stack(retry, &mock);
    let mut attempts_before = 0;
    for _ in 0..20 {
        call(&mut svc, post("{}")).await.unwrap();
        let sent = mock.count();
        if sent - attempts_before == 1 {
            break;
        }
        attempts_before = sent;
    }
    assert!(budget.available() < 15, "drained: {}", budget.available());
}

/// A retryable response whose body breaks while it is set aside, then handed back because the
/// retry was refused: the caller sees the body error, not a silently cut body.
#[tokio::test(start_paused = true)]
async fn a_set_aside_body_that_broke_is_handed_back_broken() {
    let mock = Mock::new(
        [Step::Broken(
            503,
            vec![("retry-after", "500".into())],
            "{\"error\":",
        )],
        Step::ok(),
    );
    let mut svc = stack(RetryOnStatus::default(), &mock);
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    let report = response.extensions().get::<RetryReport>().copied().unwrap();
    assert_eq!(report.stopped, Some(StopReason::NextAttemptRefused));
    let body = body_bytes(response).await;
    assert!(
        body.is_err(),
        "a cut body handed back as complete: {body:?}"
    );
    assert_eq!(mock.count(), 1);
}

/// The deadline fires while a retry is in flight: the caller gets the real response of the
/// previous attempt, with the report saying the deadline stopped retrying.
#[tokio::test(start_paused = true)]
async fn the_last_real_response_is_handed_back_at_the_deadline() {
    let mock = Mock::new(
        [Step::Status(503, "first")],
        Step::Delay(Duration::from_secs(600), Box::new(Step::ok())),
    );
    let mut svc = ServiceBuilder::new()
        .layer(tower_reliability::TimeoutByWorkload::new(
            tower_reliability::Workload::Interactive,
        ))
        .layer(RetryOnStatus::default())
        .layer(fast_backoff(Jitter::None, 1))
        .service(mock.clone());
    let start = tokio::time::Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(60),
        "the Interactive deadline"
    );
    assert_eq!(response.status(), 503);
    let report = response.extensions().get::<RetryReport>().copied().unwrap();
    assert_eq!(report.attempts, 2);
    assert_eq!(report.stopped, Some(StopReason::DeadlineReached));
    assert_eq!(body_bytes(response).await.unwrap(), "first");
}

/// The inner service fails to get ready for a retry: the set-aside response is handed back.
#[tokio::test(start_paused = true)]
async fn the_last_real_response_is_handed_back_when_the_service_fails_to_get_ready() {
    #[derive(Clone)]
    struct FailsSecondReady {
        inner: Mock,
        readied: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }
    impl<B> tower::Service<http::Request<B>> for FailsSecondReady
    where
        Mock: tower::Service<http::Request<B>, Error = tower_reliability::BoxError>,
    {
        type Response = <Mock as tower::Service<http::Request<B>>>::Response;
        type Error = <Mock as tower::Service<http::Request<B>>>::Error;
        type Future = <Mock as tower::Service<http::Request<B>>>::Future;
        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            use std::sync::atomic::Ordering;
            if self.readied.fetch_add(1, Ordering::SeqCst) >= 1 {
                return std::task::Poll::Ready(Err("connection pool closed".into()));
            }
            self.inner.poll_ready(cx)
        }
        fn call(&mut self, request: http::Request<B>) -> Self::Future {
            self.inner.call(request)
        }
    }
    let mock = Mock::new([Step::Status(502, "bad gateway")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .service(FailsSecondReady {
            inner: mock.clone(),
            readied: Default::default(),
        });
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 502);
    let report = response.extensions().get::<RetryReport>().copied().unwrap();
    assert_eq!(report.attempts, 1);
    assert_eq!(report.stopped, Some(StopReason::NextAttemptRefused));
    assert_eq!(body_bytes(response).await.unwrap(), "bad gateway");
}

/// A request body's trailers are replayed with its data on every attempt.
#[tokio::test(start_paused = true)]
async fn request_trailers_are_replayed_on_every_attempt() {
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"{\"model\":\"m\"}"))),
        Ok(Frame::trailers(trailers.clone())),
    ];
    let request = http::Request::post("http://x/")
        .body(StreamBody::new(futures::stream::iter(frames)))
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let seen = seen.clone();
        tower::service_fn(move |request: http::Request<_>| {
            let seen = seen.clone();
            async move {
                let collected = BodyExt::collect(request.into_body()).await?;
                let trailers = collected.trailers().cloned();
                let attempt = {
                    let mut seen = seen.lock().unwrap();
                    seen.push((collected.to_bytes(), trailers));
                    seen.len()
                };
                let status = if attempt == 1 { 503 } else { 200 };
                let response = http::Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                Ok::<_, tower_reliability::BoxError>(response)
            }
        })
    };
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .service(inner);
    assert_eq!(call(&mut svc, request).await.unwrap().status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one retry");
    for (data, sent_trailers) in seen {
        assert_eq!(data, Bytes::from_static(b"{\"model\":\"m\"}"));
        assert_eq!(sent_trailers.as_ref(), Some(&trailers));
    }
}
