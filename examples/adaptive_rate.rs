//! The adaptive sending rate, live: a server that rate-limits without any `Retry-After` hint,
//! twice as many requests arriving as it allows, and its limit halved halfway through.
//!
//! Runs against the crate's local Fireworks-compatible server (no API key, no network). Every
//! second it prints what was sent, what the server answered, and the rate the client learned.
//!
//! ```text
//! cargo run --release --example adaptive_rate --features testing
//! ```

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{GateConfig, LocalStore, RateControl},
    retry::ReplayBody,
    testing::{
        FireworksServer, HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL,
    },
    RateLimitAware, Workload,
};

const LIMIT: f64 = 20.0;
const SECONDS: u64 = 16;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // No hint and no x-ratelimit-* headers: the 429 is all the client hears.
    let limit = |rps: f64| {
        RateLimitConfig::new(rps, 2)
            .hint(HintStyle::None)
            .headers(false)
    };
    let server = FireworksServer::start(ServerConfig::default().rate_limit(limit(LIMIT))).await?;

    // The preset, with its gate's store kept here to read the learned rate.
    let store = Arc::new(LocalStore::new(
        GateConfig::default().with_rate_control(RateControl::CUBIC),
    ));
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let service = fireworks::layer(Workload::Interactive)
        .rate_limit(RateLimitAware::with_store(store.clone()))
        .layer(client);

    println!(
        "limit {LIMIT}/s (no Retry-After), offered {}/s; halved at {}s\n",
        2.0 * LIMIT,
        SECONDS / 2
    );
    println!("  t | sent | 200 | 429 | learned rate");
    let start = Instant::now();
    let mut arrivals = tokio::time::interval(Duration::from_secs_f64(1.0 / (2.0 * LIMIT)));
    let mut next_report = start + Duration::from_secs(1);
    let mut last = server.stats();
    let mut calls = Vec::new();
    let mut halved = false;
    let body = serde_json::json!({
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
    .to_string();
    while start.elapsed() < Duration::from_secs(SECONDS) {
        arrivals.tick().await;
        if !halved && start.elapsed() >= Duration::from_secs(SECONDS / 2) {
            halved = true;
            server.set_rate_limit(limit(LIMIT / 2.0));
            println!("    -- the server halves its limit to {}/s --", LIMIT / 2.0);
        }
        let request = http::Request::post(server.chat_url())
            .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))?;
        let service = service.clone();
        calls.push(tokio::spawn(async move {
            match service.oneshot(request).await {
                Ok(response) if response.status().is_success() => {
                    response.into_body().collect().await.is_ok()
                }
                Ok(_) => false,
                Err(_) => false,
            }
        }));
        if Instant::now() >= next_report {
            let now = server.stats();
            let learned = store
                .paced_rate(Instant::now())
                .map_or("off (no throttling seen)".to_owned(), |r| {
                    format!("{r:.1}/s")
                });
            println!(
                "{:>3} | {:>4} | {:>3} | {:>3} | {learned}",
                next_report.duration_since(start).as_secs(),
                now.requests - last.requests,
                now.count(200) - last.count(200),
                now.count(429) - last.count(429),
            );
            last = now;
            next_report += Duration::from_secs(1);
        }
    }
    let mut ok = 0;
    let total = calls.len();
    for call in calls {
        ok += usize::from(call.await.unwrap_or(false));
    }
    let stats = server.stats();
    println!(
        "\n{ok} of {total} requests succeeded; the server answered {} times, {} of them 429 ({:.1} %)",
        stats.requests,
        stats.count(429),
        100.0 * stats.count(429) as f64 / stats.requests.max(1) as f64
    );
    Ok(())
}
