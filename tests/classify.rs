//! One classification for the retry layer and the gate (`classify::Policy`), end to end through
//! the preset on paused time.
mod support;

use std::sync::Arc;

use http::StatusCode;
use support::{call, post, Mock, Step};
use tower::Layer;
use tower_reliability::{
    classify::{Policy, Standard},
    fireworks,
    rate_limit::{LocalStore, RateLimitStore},
    RateLimitAware, RetryReport, Workload,
};

/// Sends `requests` requests at once through the preset judged by `policy`, over `mock`; the
/// store behind its gate, and each request's status and attempts (`None`: an error).
async fn run<P: Policy>(
    policy: P,
    mock: &Mock,
    requests: usize,
) -> (Arc<LocalStore>, Vec<Option<(StatusCode, u32)>>) {
    let store = Arc::new(LocalStore::default());
    let svc = fireworks::layer(Workload::Interactive)
        .rate_limit(RateLimitAware::with_store(store.clone()))
        .classify(policy)
        .layer(mock.clone());
    let calls: Vec<_> = (0..requests)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let response = call(&mut svc, post("{}")).await.ok()?;
                let attempts = response
                    .extensions()
                    .get::<RetryReport>()
                    .map_or(1, |r| r.attempts);
                Some((response.status(), attempts))
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.expect("no panic"));
    }
    (store, outcomes)
}

/// The example, one line: 408 is retried, and the breaker does not count it.
#[tokio::test(start_paused = true)]
async fn retry_408_but_not_for_the_breaker() {
    let mock = Mock::new(
        [Step::Status(408, "slow"), Step::Status(408, "slow")],
        Step::ok(),
    );
    let policy = Standard::new()
        .retry_also(StatusCode::REQUEST_TIMEOUT)
        .not_for_breaker(408);
    let (store, outcomes) = run(policy, &mock, 1).await;
    assert_eq!(
        outcomes,
        [Some((StatusCode::OK, 3))],
        "408 twice, then the answer"
    );
    assert!(!store.breaker_engaged());
    assert!(store.is_unrestricted(), "a 408 teaches the gate nothing");

    // The guide alone hands the 408 back.
    let mock = Mock::new([Step::Status(408, "slow")], Step::ok());
    let (_, outcomes) = run(Standard::new(), &mock, 1).await;
    assert_eq!(outcomes, [Some((StatusCode::REQUEST_TIMEOUT, 1))]);
}

/// `not_for_breaker` keeps a status retried but out of the breaker's count: a run of 500s
/// trips it under the guide, not once 500 is excluded.
#[tokio::test(start_paused = true)]
async fn not_for_breaker_keeps_retrying_without_tripping() {
    let mock = Mock::always(Step::Status(500, "down"));
    let (store, outcomes) = run(Standard::new().not_for_breaker(500), &mock, 12).await;
    assert!(outcomes.iter().all(
        |o| matches!(o, Some((StatusCode::INTERNAL_SERVER_ERROR, attempts)) if *attempts > 1)
    ));
    assert!(!store.breaker_engaged(), "500s excluded from the breaker");

    let mock = Mock::always(Step::Status(500, "down"));
    let (store, _) = run(Standard::new(), &mock, 12).await;
    assert!(store.breaker_engaged(), "the guide counts 500s");
}

/// `never_retry` hands a guide status back at once; the gate still learns from it.
#[tokio::test(start_paused = true)]
async fn never_retry_hands_back_at_once() {
    let mock = Mock::always(Step::Status(502, "bad gateway"));
    let (_, outcomes) = run(Standard::new().never_retry(502), &mock, 1).await;
    assert_eq!(outcomes, [Some((StatusCode::BAD_GATEWAY, 1))]);
    assert_eq!(mock.count(), 1);
}
