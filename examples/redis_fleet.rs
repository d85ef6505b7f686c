//! Two replicas of a service on one API key, sharing one rate limit through Redis.
//!
//! Each replica has its own client stack and its own `RedisStore` with the same key prefix; a
//! local Fireworks-compatible server allows 20 requests a second in all, with no hint, and
//! each replica is offered 20 a second (the fleet offers twice the limit). Every second the
//! example prints what each replica sent and got, and the rate it paces at: its share of the
//! fleet's learned rate. Halfway through, stop Redis (`redis-cli -p PORT shutdown nosave`) to
//! see the replicas fall back to their local state and say so, and start it again to see them
//! share again.
//!
//! ```text
//! eval "$(scripts/redis.sh start)"     # a throwaway redis-server; prints REDIS_URL
//! REDIS_URL=$REDIS_URL cargo run --release --example redis_fleet --features testing,redis
//! scripts/redis.sh stop "$REDIS_DIR"
//! ```
//!
//! Without `REDIS_URL` it tries `redis://127.0.0.1:6379`; with no Redis there at all the
//! replicas run on local state (and the log says so).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{RedisConfig, RedisStore},
    retry::ReplayBody,
    testing::{
        FireworksServer, HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL,
    },
    RateLimitAware, Workload,
};

const LIMIT: f64 = 20.0;
const SECONDS: u64 = 12;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter("tower_reliability=warn")
        .init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let limit = RateLimitConfig::new(LIMIT, 2)
        .hint(HintStyle::None)
        .headers(false);
    let server = FireworksServer::start(ServerConfig::default().rate_limit(limit)).await?;
    // One prefix per account; a fresh one per run keeps this demo's runs apart.
    let prefix = format!("tower-reliability-example:{}", std::process::id());

    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = Arc::new(RedisStore::spawn(RedisConfig::new(&url, &prefix))?);
        let service = fireworks::layer(Workload::Interactive)
            .rate_limit(RateLimitAware::with_store(store.clone()))
            .layer(client.clone());
        replicas.push((store, service));
    }
    println!("Redis at {url}; server limit {LIMIT}/s for the fleet (no hint), 2 replicas offered {LIMIT}/s each\n");
    println!("  t | replica | ok | shared | members | paces at | server 429s");

    let body = serde_json::json!({
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
    .to_string();
    let start = Instant::now();
    let mut arrivals = tokio::time::interval(Duration::from_secs_f64(1.0 / LIMIT));
    let mut next_report = start + Duration::from_secs(1);
    // Successes per replica since the last report.
    let succeeded: Arc<[AtomicU64; 2]> = Arc::default();
    let mut calls = Vec::new();
    let mut last_429 = 0;
    while start.elapsed() < Duration::from_secs(SECONDS) {
        arrivals.tick().await;
        for (index, (_, service)) in replicas.iter().enumerate() {
            let request = http::Request::post(server.chat_url())
                .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.clone())))?;
            let service = service.clone();
            let succeeded = succeeded.clone();
            calls.push(tokio::spawn(async move {
                let ok = match service.oneshot(request).await {
                    Ok(response) if response.status().is_success() => {
                        response.into_body().collect().await.is_ok()
                    }
                    _ => false,
                };
                if ok {
                    succeeded[index].fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        if Instant::now() >= next_report {
            let t = next_report.duration_since(start).as_secs();
            for (index, (store, _)) in replicas.iter().enumerate() {
                let ok = succeeded[index].swap(0, Ordering::Relaxed);
                let paced = store
                    .local()
                    .paced_rate(Instant::now())
                    .map_or("-".to_owned(), |r| format!("{r:.1}/s"));
                let throttled = if index == 0 {
                    let now = server.stats().count(429);
                    let new = now - last_429;
                    last_429 = now;
                    new.to_string()
                } else {
                    String::new()
                };
                println!(
                    "{t:>3} | {index:>7} | {ok:>2} | {:>6} | {:>7} | {paced:>8} | {throttled}",
                    store.is_shared(),
                    store.members()
                );
            }
            next_report += Duration::from_secs(1);
        }
    }
    for call in calls {
        call.await?;
    }
    let stats = server.stats();
    println!(
        "\nthe server answered {} requests, {} of them 429 ({:.1} %)",
        stats.requests,
        stats.count(429),
        100.0 * stats.count(429) as f64 / stats.requests.max(1) as f64
    );
    Ok(())
}
