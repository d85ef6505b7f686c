//! `x-ratelimit-over-limit: yes`: Fireworks serves a request above the guaranteed limit at
//! lower priority and answers 429 only far above it. The gate reads the flag as an early
//! signal: it trims the adaptive rate (once per wave) and holds it, before any 429 comes, and
//! holds nobody for it.
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::json;
use std::sync::Arc;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{Admission, LocalStore, RateLimitStore, Scope, Signal, Ticket},
    retry::ReplayBody,
    testing::{FireworksHeaders, FireworksServer, ModelLimits, ServerConfig, DEFAULT_MODEL},
    RateLimitAware, Workload,
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
            &model,
            0,
            Ticket::New,
            None,
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
        store.admit_in(t1, &model, 0, Ticket::New, None),
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
    let server = FireworksServer::start(
        ServerConfig::default()
            .model_limits(limits)
            .tokens_per_completion(10)
            .token_interval(Duration::from_millis(1)),
    )
    .await
    .expect("server starts");
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let store = Arc::new(LocalStore::default());
    let svc = ServiceBuilder::new()
        .layer(
            fireworks::layer(Workload::Interactive)
                .rate_limit(RateLimitAware::with_store(store.clone())),
        )
        .service(client);
    let body = json!({
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "hi"}],
    })
    .to_string();
    // 10 generated tokens each, 20 a second: 200 tokens/s against a limit of 50/s.
    let mut calls = Vec::new();
    for _ in 0..400 {
        let mut svc = svc.clone();
        let request = http::Request::post(server.chat_url())
            .header("authorization", "Bearer test-key")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        calls.push(tokio::spawn(async move {
            let response = svc.ready().await?.call(request).await?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            Ok::<_, tower_reliability::Error>(status)
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for call in calls {
        let _ = call.await.unwrap();
    }
    let stats = server.stats();
    let model = stats.model(DEFAULT_MODEL);
    eprintln!(
        "attempts {}, served {}, 429s {}, over-limit {}",
        model.requests, model.served, model.rate_limited, model.over_limit
    );
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
