//! The demo's second part: one client, two models, a token limit and two workloads.
//!
//! Providers limit tokens per minute, per model. The local server limits one model ("big") to
//! 120,000 tokens a minute, stated in OpenAI's `x-ratelimit-*-tokens` headers, and leaves the
//! other ("small") unlimited. "big"'s bucket is spent first (as after a busy minute). Then,
//! through one preset, for `seconds`:
//!
//! - batch jobs send 3,000-token prompts to "big", one a second: 1.5 × its limit;
//! - a chat front end sends short interactive prompts to "big" too, one a second;
//! - another service sends short prompts to "small", ten a second.
//!
//! The summary shows the gate pacing "big" by tokens (few 429s, the limit used), the chat
//! requests going ahead of the batch backlog (priority by workload), and "small" unaffected
//! by "big"'s limit (one gate per model).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    client, fireworks,
    retry::ReplayBody,
    testing::{FireworksHeaders, FireworksServer, ModelLimits, ServerConfig, DEFAULT_API_KEY},
    TimeoutByWorkload, Workload,
};

const BIG: &str = "accounts/fireworks/models/big";
const SMALL: &str = "accounts/fireworks/models/small";
const TOKENS_PER_MINUTE: u64 = 120_000;

/// One kind of traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    Batch,
    Chat,
    Small,
}

impl Lane {
    fn name(self) -> &'static str {
        match self {
            Lane::Batch => "batch → big (3,000-token prompts)",
            Lane::Chat => "chat → big (interactive)",
            Lane::Small => "other service → small",
        }
    }
}

/// Runs the part and prints its summary.
pub async fn run(seconds: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let limits = ModelLimits::new()
        .tokens_per_minute(TOKENS_PER_MINUTE)
        .openai_headers(true)
        .fireworks_headers(FireworksHeaders::None);
    let config = ServerConfig::default()
        .models([BIG, SMALL])
        .limits_for(BIG, limits)
        .token_interval(Duration::from_millis(1))
        .tokens_per_completion(16);
    let server = FireworksServer::start(config).await?;
    let url = server.chat_url();
    // Batch is the preset's default workload here; chat requests say they are interactive.
    let long = Workload::Interactive
        .profile()
        .with_total(Duration::from_secs(120));
    let timeouts = TimeoutByWorkload::new(Workload::BatchSubmit)
        .profile(Workload::BatchSubmit, long)
        .profile(Workload::Interactive, long);
    let preset = fireworks::layer(Workload::BatchSubmit).timeouts(timeouts);
    let client = client::https_client::<ReplayBody<Full<Bytes>>>(&Workload::Interactive.profile());
    let service = ServiceBuilder::new().layer(preset).service(client);
    let authorization = client::bearer(DEFAULT_API_KEY)?;
    spend_bucket(&url, &authorization).await;
    let before = server.stats().model(BIG);

    eprintln!(
        "\ndemo, part 2: one client, model \"big\" limited to {TOKENS_PER_MINUTE} tokens a \
         minute, model \"small\" unlimited, {seconds} s"
    );
    let results: Arc<Mutex<Vec<(Lane, bool, Duration)>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Ticks of 100 ms: batch every 10th (3,000 tokens a second: 1.5 × the 2,000 allowed),
    // chat every 10th, small every tick.
    let start = tokio::time::Instant::from_std(started);
    for tick in 0..seconds * 10 {
        tokio::time::sleep_until(start + Duration::from_millis(100 * tick)).await;
        let mut lanes = vec![Lane::Small];
        if tick % 10 == 0 {
            lanes.push(Lane::Batch);
        }
        if tick % 10 == 7 {
            lanes.push(Lane::Chat);
        }
        for lane in lanes {
            let (model, words) = match lane {
                Lane::Batch => (BIG, 3000),
                Lane::Chat => (BIG, 20),
                Lane::Small => (SMALL, 20),
            };
            let body = serde_json::json!({
                "model": model,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "tok ".repeat(words)}],
            });
            let mut request = http::Request::post(&url)
                .header(http::header::AUTHORIZATION, authorization.clone())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?;
            if lane == Lane::Chat {
                request.extensions_mut().insert(Workload::Interactive);
            }
            let mut service = service.clone();
            let results = results.clone();
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let ok = match service.ready().await {
                    Ok(ready) => match ready.call(request).await {
                        Ok(response) => {
                            response.status() == 200 && response.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if let Ok(mut results) = results.lock() {
                    results.push((lane, ok, sent.elapsed()));
                }
            }));
        }
    }
    for task in tasks {
        task.await?;
    }
    let results = std::mem::take(&mut *results.lock().map_err(|_| "poisoned")?);
    println!("\n== Part 2: per-model gates, token pacing, priority ==");
    println!(
        "{:<36} {:>5} {:>7} {:>9} {:>9}",
        "traffic", "sent", "served", "p50", "p99"
    );
    for lane in [Lane::Batch, Lane::Chat, Lane::Small] {
        let mut times: Vec<Duration> = results
            .iter()
            .filter(|(l, ok, _)| *l == lane && *ok)
            .map(|(_, _, t)| *t)
            .collect();
        times.sort();
        let sent = results.iter().filter(|(l, ..)| *l == lane).count();
        let pct = |p: f64| {
            times
                .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .map_or("-".into(), |d| {
                    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
                })
        };
        println!(
            "{:<36} {sent:>5} {:>7} {:>9} {:>9}",
            lane.name(),
            times.len(),
            pct(0.5),
            pct(0.99)
        );
    }
    let big = server.stats().model(BIG);
    let elapsed = started.elapsed().as_secs_f64();
    let tokens = (big.prompt_tokens + big.generated_tokens)
        - (before.prompt_tokens + before.generated_tokens);
    println!(
        "server, model big: {} attempts, {} answered 429, {:.0} tokens/s served over {elapsed:.0} s \
         (limit {:.0}/s)",
        big.requests - before.requests,
        big.rate_limited - before.rate_limited,
        tokens as f64 / elapsed,
        TOKENS_PER_MINUTE as f64 / 60.0
    );
    server.shutdown().await;
    Ok(())
}

/// Spends "big"'s bucket, outside the preset: large prompts, halved on each 429, until less
/// than a short prompt is left.
async fn spend_bucket(url: &str, authorization: &http::HeaderValue) {
    let plain = client::https_client::<Full<Bytes>>(&Workload::Interactive.profile());
    let mut size = TOKENS_PER_MINUTE / 8;
    while size >= 50 {
        let body = serde_json::json!({
            "model": BIG,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "tok ".repeat(size as usize)}],
        });
        let Ok(request) = http::Request::post(url)
            .header(http::header::AUTHORIZATION, authorization.clone())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
        else {
            return;
        };
        let Ok(response) = plain.request(request).await else {
            return;
        };
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status != http::StatusCode::OK {
            size /= 2;
        }
    }
}
