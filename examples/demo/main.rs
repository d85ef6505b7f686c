//! The offline demo: a few hundred chat requests, some streaming, from concurrent tasks through
//! `fireworks::layer(...)` against an in-process Fireworks-compatible server that rate-limits
//! and injects faults. Live progress while it runs, then a summary of what the layers did.
//!
//! ```text
//! cargo run --release --example demo --features testing,rustls
//! FIREWORKS_API_KEY=fw-... cargo run --release --example demo --features testing,rustls -- --real
//! ```
//!
//! Then, locally, part 2 (`models.rs`): one client, two models, one of them under a token
//! limit, batch and interactive traffic — per-model gates, token pacing and priority.
//!
//! Options: `--requests N` (default 300; 20 with `--real`), `--concurrency N` (default 16; 4
//! with `--real`), `--models-seconds N` (part 2's length, default 20), `--real` (the real
//! Fireworks API instead of the local server; model from `FIREWORKS_MODEL`; no part 2).

mod models;
mod tally;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tally::{Tally, TallyLayer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    client, fireworks,
    retry::ReplayBody,
    testing::{
        Fault, FireworksServer, HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY,
        DEFAULT_MODEL,
    },
    timeout::AttemptTimeout,
    Error, RetryReport, TimeoutByWorkload, TimeoutProfile, Workload,
};
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};

/// What happened to one logical request.
#[derive(Debug)]
enum Outcome {
    Ok { attempts: u32, latency: Duration },
    Status(u16),
    Failed(Error),
}

#[derive(Default)]
struct Progress {
    done: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let real = std::env::args().any(|a| a == "--real");
    // The real API costs money and has real limits: a smaller default run there.
    let requests = arg("--requests", if real { 20 } else { 300 });
    let concurrency = arg("--concurrency", if real { 4 } else { 16 }).max(1);

    let tally = TallyLayer::default();
    tracing_subscriber::registry()
        .with(tally.clone().with_filter_targets())
        .init();

    let (target, server, preset) = if real {
        // The real API, with the guide's numbers as they are.
        let key =
            std::env::var("FIREWORKS_API_KEY").map_err(|_| "--real needs FIREWORKS_API_KEY")?;
        let model = std::env::var("FIREWORKS_MODEL")
            .unwrap_or_else(|_| "accounts/fireworks/models/llama-v3p1-8b-instruct".into());
        let target = Target {
            url: format!("{}/chat/completions", fireworks::BASE_URL),
            authorization: client::bearer(&key)?,
            model,
        };
        (target, None, fireworks::layer(Workload::Interactive))
    } else {
        // The local server: 40 requests/s with a burst of 10 (429s carry retry-after-ms),
        // and a seeded fault script.
        let config = ServerConfig::default()
            .rate_limit(RateLimitConfig::new(40.0, 10).hint(HintStyle::RetryAfterMs))
            .token_interval(Duration::from_millis(4));
        let server = FireworksServer::start(config).await?;
        server.push_script(fault_script(requests * 2));
        let target = Target {
            url: server.chat_url(),
            authorization: client::bearer(DEFAULT_API_KEY)?,
            model: DEFAULT_MODEL.to_string(),
        };
        // The preset with the guide's numbers, and demo-sized timeouts so stalls show quickly.
        let profile =
            TimeoutProfile::new(Duration::from_secs(30)).with_idle_read(Duration::from_secs(1));
        let preset = fireworks::layer(Workload::Interactive)
            .timeouts(
                TimeoutByWorkload::new(Workload::Interactive)
                    .profile(Workload::Interactive, profile),
            )
            .attempt_timeout(AttemptTimeout::fixed(Duration::from_secs(3)));
        (target, Some(server), preset)
    };
    // One HTTPS-capable hyper-util client (it speaks plain HTTP to the local server too).
    let client = client::https_client::<ReplayBody<Full<Bytes>>>(&Workload::Interactive.profile());
    let service = ServiceBuilder::new().layer(preset).service(client);
    let target = Arc::new(target);

    eprintln!(
        "demo: {requests} chat requests ({} streaming), {concurrency} concurrent tasks, against {}",
        requests / 3,
        target.url
    );
    let progress = Arc::new(Progress::default());
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();

    let ticker = {
        let progress = progress.clone();
        let tally = tally.0.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                print_progress(&progress, &tally, requests, started);
            }
        })
    };

    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let service = service.clone();
            let target = target.clone();
            let (progress, outcomes, next) = (progress.clone(), outcomes.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if n >= requests {
                        return;
                    }
                    let outcome = one_request(service.clone(), &target, n % 3 == 0).await;
                    match &outcome {
                        Outcome::Ok { .. } => progress.ok.fetch_add(1, Ordering::Relaxed),
                        _ => progress.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    outcomes.lock().map(|mut o| o.push(outcome)).ok();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    ticker.abort();
    print_progress(&progress, &tally.0, requests, started);
    eprintln!();

    let outcomes = std::mem::take(&mut *outcomes.lock().map_err(|_| "poisoned")?);
    let tally = tally.0.lock().map_err(|_| "poisoned")?.clone();
    summarise(&outcomes, &tally, server.as_ref(), started.elapsed());
    if let Some(server) = server {
        server.shutdown().await;
        // Part 2 needs the local server's per-model token limits.
        models::run(arg("--models-seconds", 20) as u64).await?;
    }
    Ok(())
}

/// One fault per request the server receives, seeded so every run tells the same story:
/// 5xx answers (503 is Fireworks' load shedding), connection resets, a stream that stalls
/// mid-way, headers that never come.
fn fault_script(len: usize) -> Vec<Fault> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..len)
        .map(|_| match rng.u32(0..1000) {
            0..20 => Fault::Status(500),
            20..40 => Fault::Status(502),
            40..80 => Fault::Status(503),
            80..90 => Fault::Status(504),
            90..110 => Fault::ResetBeforeResponse,
            110..125 => Fault::StallAfterEvents(4),
            125..135 => Fault::DelayHeaders(Duration::from_secs(30)),
            _ => Fault::None,
        })
        .collect()
}

/// Where the requests go.
struct Target {
    url: String,
    authorization: http::HeaderValue,
    model: String,
}

async fn one_request<S, B>(mut service: S, target: &Target, stream: bool) -> Outcome
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = Error>,
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = serde_json::json!({
        "model": target.model,
        "messages": [{"role": "user", "content": "Tell me about backoff"}],
        "stream": stream,
        "max_tokens": 32,
    });
    let request = http::Request::post(&target.url)
        .header(http::header::AUTHORIZATION, target.authorization.clone())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    let started = Instant::now();
    let response = match service.ready().await {
        Ok(ready) => ready.call(request).await,
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(error),
    };
    let status = response.status().as_u16();
    let attempts = response
        .extensions()
        .get::<RetryReport>()
        .map_or(1, |r| r.attempts);
    match response.into_body().collect().await {
        Err(e) => match e.into().downcast::<Error>() {
            Ok(error) => Outcome::Failed(*error),
            Err(other) => Outcome::Failed(Error::from_inner(other)),
        },
        Ok(_) if status == 200 => Outcome::Ok {
            attempts,
            latency: started.elapsed(),
        },
        Ok(_) => Outcome::Status(status),
    }
}

fn print_progress(progress: &Progress, tally: &Mutex<Tally>, total: usize, started: Instant) {
    let done = progress.done.load(Ordering::Relaxed) as usize;
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let t = tally.lock().map(|t| t.clone()).unwrap_or_default();
    let retries: u64 = t.retry_causes.values().sum();
    eprint!(
        "\r[{}{}] {done:>4}/{total} ok {:>4} failed {:>3} | retries {:>3} gate pauses {:>3} | {:>5.1}s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        progress.ok.load(Ordering::Relaxed),
        progress.failed.load(Ordering::Relaxed),
        retries,
        t.gate_closures,
        started.elapsed().as_secs_f64(),
    );
}

fn summarise(outcomes: &[Outcome], t: &Tally, server: Option<&FireworksServer>, elapsed: Duration) {
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ok { latency, .. } => Some(*latency),
            _ => None,
        })
        .collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or("-".into(), |d| {
                format!("{:.0} ms", d.as_secs_f64() * 1000.0)
            })
    };
    let ok = latencies.len();
    let retried = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Ok { attempts, .. } if *attempts > 1))
        .count();
    let mut statuses = std::collections::BTreeMap::new();
    for o in outcomes {
        if let Outcome::Status(code) = o {
            *statuses.entry(code.to_string()).or_insert(0u64) += 1;
        }
    }
    let errors: Vec<&Error> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(e) => Some(e),
            _ => None,
        })
        .collect();
    let never_reached = errors
        .iter()
        .filter(|e| e.reached_server() == Some(false))
        .count();

    println!("\n== Summary ({:.1} s) ==", elapsed.as_secs_f64());
    println!("requests           {}", outcomes.len());
    println!("  ok               {ok} ({retried} of them after a retry)");
    println!("  final non-200    {}", fmt_map(&statuses));
    println!(
        "  failed           {} ({never_reached} never reached the server)",
        errors.len()
    );
    let mut by_message = std::collections::BTreeMap::new();
    for e in &errors {
        *by_message.entry(e.to_string()).or_insert(0u64) += 1;
    }
    for (message, count) in by_message {
        println!("    {count:>3} x {message}");
    }
    println!(
        "latency (ok)       p50 {}  p90 {}  p99 {}  max {}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!("retries by cause   {}", fmt_map(&t.retry_causes));
    println!(
        "backoff waits      {} ({:.1} s in total); {} followed a server hint ({:.1} s asked for)",
        t.backoffs,
        t.backoff_ms as f64 / 1000.0,
        t.server_hints,
        t.server_hint_ms as f64 / 1000.0
    );
    println!(
        "rate-limit gate    closed {} times ({} on a server hint); {} requests held and released; {} failed fast; breaker tripped {} times",
        t.gate_closures, t.gate_closures_hinted, t.gate_releases, t.gate_fail_fast, t.breaker_trips
    );
    println!("timeouts by phase  {}", fmt_map(&t.timeouts));
    match server {
        Some(server) => {
            let stats = server.stats();
            println!(
                "server saw         {} requests (what its dashboard would count): {}; {} connections reset",
                stats.requests,
                stats
                    .statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                stats.connections_reset
            );
        }
        None => println!("server saw         see the Fireworks usage dashboard (it counts server-acknowledged requests only)"),
    }
}

fn fmt_map<V: std::fmt::Display>(map: &std::collections::BTreeMap<String, V>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

trait WithTargets {
    fn with_filter_targets(
        self,
    ) -> tracing_subscriber::filter::Filtered<TallyLayer, Targets, tracing_subscriber::Registry>;
}

impl WithTargets for TallyLayer {
    fn with_filter_targets(
        self,
    ) -> tracing_subscriber::filter::Filtered<TallyLayer, Targets, tracing_subscriber::Registry>
    {
        use tracing_subscriber::Layer;
        self.with_filter(Targets::new().with_target("tower_reliability", tracing::Level::DEBUG))
    }
}
