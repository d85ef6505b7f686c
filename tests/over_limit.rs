//! `x-ratelimit-over-limit: yes`: Fireworks serves a request above the guaranteed limit at
//! lower priority and answers 429 only far above it. The gate reads the flag as an early
//! signal: it trims the adaptive rate (once per wave) and holds it, before any 429 comes, and
//! holds nobody for it.
mod common;
mod limits_support;

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tower_reliability::{
    rate_limit::{Admission, Demand, LocalStore, RateLimitStore, Scope, Signal, Ticket},
    testing::{FireworksHeaders, ModelLimits, DEFAULT_MODEL},
};

#[test]
fn the_flag_is_read_on_a_success() {
    let mut headers = HeaderMap::new();
    headers.insert("x-ratelimit-over-limit", HeaderValue::from_static(" Yes "));
    assert_eq!(
        Signal::from_response(StatusCode::OK, &headers),
        Signal::OverLimit
    );
    headers.insert("x-ratelimit-over-limit", HeaderValue::from_static("no"));
    assert_eq!(
        Signal::from_response(StatusCode::OK, &headers),
        Signal::Healthy
    );
}

#[test]
fn over_the_limit_the_rate_is_trimmed_once_and_nobody_is_held() {
    let store = LocalStore::default();
    let model = Scope::named("m");
    let t0 = Instant::now();
    for i in 0..50 {
        store.admit_in(
            t0 + Duration::from_millis(20 * i),
            &Demand::new(&model).tokens(0),
            Ticket::New,
        );
    }
    let t1 = t0 + Duration::from_secs(1);
    store.record_in(t1, &model, Signal::OverLimit, None, Some(t1));
    let rate = store.paced_rate_in(&model, t1).expect("trimmed: paced");
    assert!(rate < 50.0, "trimmed below the 50/s it sent: {rate}");
    assert_eq!(store.closed_until_in(&model, t1), None, "nobody held");
    // The same wave (sent before the trim) does not trim again.
    store.record_in(t1, &model, Signal::OverLimit, None, Some(t0));
    assert_eq!(store.paced_rate_in(&model, t1), Some(rate));
    assert!(matches!(
        store.admit_in(t1, &Demand::new(&model).tokens(0), Ticket::New),
        Admission::Go | Admission::Wait(_)
    ));
}

/// The preset against the local server limiting a model's generated tokens (Fireworks' current
/// headers: limits per second, no `remaining`), offered four times that: the over-limit flag
/// paces the client down to the guaranteed limit, before any 429.
#[tokio::test(start_paused = true)]
async fn the_flag_paces_the_client_before_429s() {
    let limits = ModelLimits::new()
        .generated_tokens_per_minute(3000)
        .fireworks_headers(FireworksHeaders::Current);
    let server = limits_support::server(limits, 10).await;
    let body = json!({
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "hi"}],
    })
    .to_string();
    // 10 generated tokens each, 20 a second: 200 tokens/s against a limit of 50/s.
    limits_support::offer(&server, &body, 400, Duration::from_millis(50)).await;
    let model = server.stats().model(DEFAULT_MODEL);
    // Few requests served above the guaranteed limit (at lower priority): the client trims its
    // rate at the first flags (without it, a quarter of these attempts are over the limit).
    assert!(
        model.over_limit * 10 <= model.requests,
        "{} of {} attempts over the limit",
        model.over_limit,
        model.requests
    );
    assert_eq!(model.rate_limited, 0);
}
