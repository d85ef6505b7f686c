//! The crate's metrics, exposed to Prometheus.
//!
//! Installs `metrics-exporter-prometheus` with its HTTP listener, starts the crate's local
//! Fireworks-compatible server with random faults (5xx, connection resets) and a request rate
//! limit (429 with `retry-after-ms`), sends 100 chat completions through the `fireworks`
//! preset over a hyper-util client (every fourth one streamed, one stalled), and one to a port
//! nobody listens on, then scrapes its own `/metrics` endpoint and prints the
//! `tower_reliability_*` series, next to the server's own count of what reached it.
//!
//! ```text
//! cargo run --example prometheus --features metrics,testing
//! cargo run --example prometheus --features metrics,testing -- --port 9100 --serve
//! curl -s http://127.0.0.1:9100/metrics | grep tower_reliability_
//! ```
//!
//! `--port` picks the listener's port (default 9000); `--serve` keeps the process running,
//! with a trickle of requests, until Ctrl-C. Backoff waits are scaled down (50 ms instead of
//! the guide's 1 s) so the demo takes a few seconds; everything else is the preset as shipped.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    retry::ReplayBody,
    testing::{
        Fault, FaultMix, FireworksServer, HintStyle, RateLimitConfig, ServerConfig,
        DEFAULT_API_KEY, DEFAULT_MODEL,
    },
    Error, JitteredBackoff, RetryOnStatus, TimeoutByWorkload, TimeoutProfile, Workload,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stack = fireworks::FireworksService<Client<HttpConnector, ReplayBody<Full<Bytes>>>>;

const REQUESTS: usize = 100;
const CONCURRENCY: usize = 8;

struct Args {
    port: u16,
    serve: bool,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        port: 9000,
        serve: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let port = match arg.as_str() {
            "--serve" => {
                parsed.serve = true;
                continue;
            }
            "--port" => args.next().ok_or("--port needs a value")?,
            other => match other.strip_prefix("--port=") {
                Some(port) => port.to_owned(),
                None => return Err(format!("unknown argument {other:?}")),
            },
        };
        parsed.port = port.parse().map_err(|e| format!("--port {port:?}: {e}"))?;
    }
    Ok(parsed)
}

/// The `HELP` lines: what each series means (the table in `tower_reliability::observe`).
fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "tower_reliability_attempts_total",
        "Every attempt: outcome=response (by status: what the server's dashboard counts), \
         not_sent (never reached the server), error (may have reached it)"
    );
    describe_counter!(
        "tower_reliability_retries_total",
        "Retries started, by cause"
    );
    describe_counter!(
        "tower_reliability_retry_stops_total",
        "Retryable outcomes handed back without retrying, by reason"
    );
    describe_histogram!(
        "tower_reliability_backoff_seconds",
        Unit::Seconds,
        "Waits before retries; hinted=true when the server asked for a wait"
    );
    describe_counter!(
        "tower_reliability_gate_closures_total",
        "The shared rate-limit gate closed (429, 503 with a hint, allowance spent)"
    );
    describe_histogram!(
        "tower_reliability_gate_wait_seconds",
        Unit::Seconds,
        "Time requests spent held at the rate-limit gate"
    );
    describe_counter!(
        "tower_reliability_gate_refusals_total",
        "Requests failed fast: the gate stayed closed past their deadline"
    );
    describe_counter!(
        "tower_reliability_breaker_trips_total",
        "The circuit breaker started holding requests"
    );
    describe_counter!(
        "tower_reliability_timeouts_total",
        "Timeouts by phase (deadline, attempt, body_idle)"
    );
}

fn chat(url: &str, n: usize, stream: bool) -> http::Request<Full<Bytes>> {
    let body = serde_json::json!({
        "model": DEFAULT_MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": format!("Request number {n}: say hello.")}],
    });
    http::Request::post(url)
        .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request")
}

/// How one request ended, as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    Ok,
    Status(u16),
    BodyFailed,
    Failed(&'static str),
}

async fn one(mut svc: Stack, request: http::Request<Full<Bytes>>) -> Ending {
    let response = match svc.ready().await {
        Ok(svc) => svc.call(request).await,
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => return Ending::Failed(failure(&e)),
    };
    let status = response.status();
    match response.into_body().collect().await {
        Ok(_) if status.is_success() => Ending::Ok,
        Ok(_) => Ending::Status(status.as_u16()),
        Err(_) => Ending::BodyFailed,
    }
}

fn failure(e: &Error) -> &'static str {
    match e.reached_server() {
        Some(false) if e.is_connect() => "connect (never reached the server)",
        Some(false) => "rate limited locally (never reached the server)",
        _ if e.is_timeout() => "timeout",
        _ => "other",
    }
}

/// The guide's `base * 2^n + U(0, spread)`, scaled from 1 s to 50 ms for the demo.
fn fast_backoff() -> JitteredBackoff {
    JitteredBackoff::default()
        .base(Duration::from_millis(50))
        .spread(Duration::from_millis(50))
}

async fn scrape(url: &str) -> Result<String, BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(url.parse()?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// The sum of the samples of `metric` whose line contains `needle`.
fn sum(exposition: &str, metric: &str, needle: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| line.starts_with(metric) && line.contains(needle))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\nusage: prometheus [--port PORT] [--serve]");
            std::process::exit(2);
        }
    };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let waits = [
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &waits)?
        .install()
        .map_err(|e| format!("cannot serve metrics on {listen}: {e}"))?;
    describe();
    let metrics_url = format!("http://{listen}/metrics");

    let server = FireworksServer::start(
        ServerConfig::default()
            .tokens_per_completion(8)
            .token_interval(Duration::from_millis(2))
            .fault_mix(
                FaultMix::default()
                    .status_500(0.03)
                    .status_502(0.03)
                    .status_503(0.06)
                    .status_504(0.02)
                    .reset(0.03)
                    .seed(42),
            )
            .rate_limit(RateLimitConfig::new(40.0, 10).hint(HintStyle::RetryAfterMs))
            // One stream goes silent after three events: the idle-read timeout cuts it.
            .script([Fault::StallAfterEvents(3)]),
    )
    .await?;
    let url = server.chat_url();

    let layer = fireworks::layer(Workload::Interactive)
        .timeouts(TimeoutByWorkload::new(Workload::Interactive).profile(
            Workload::Interactive,
            TimeoutProfile::new(Duration::from_secs(20)).with_idle_read(Duration::from_millis(500)),
        ))
        .backoff(fast_backoff());
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc: Stack = ServiceBuilder::new().layer(layer.clone()).service(client);

    println!(
        "sending {REQUESTS} requests ({CONCURRENCY} at a time, every 4th streamed) to {}",
        server.base_url()
    );
    let started = Instant::now();
    let mut endings: Vec<Ending> = futures::stream::iter(0..REQUESTS)
        .map(|n| one(svc.clone(), chat(&url, n, n % 4 == 0)))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    // A request to a port nobody listens on: three attempts the server's dashboard never sees.
    // (Its own stack: another host, another gate.)
    let nowhere = {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.local_addr()?
    };
    let elsewhere: Stack = ServiceBuilder::new()
        .layer(
            fireworks::layer(Workload::Interactive)
                .retry(RetryOnStatus::default().max_attempts(3))
                .backoff(fast_backoff()),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let lost = format!("http://{nowhere}/inference/v1/chat/completions");
    endings.push(one(elsewhere, chat(&lost, REQUESTS, false)).await);
    println!("done in {:.1?}", started.elapsed());

    endings.sort();
    let mut tally: Vec<(Ending, usize)> = Vec::new();
    for ending in endings {
        match tally.last_mut() {
            Some((last, count)) if *last == ending => *count += 1,
            _ => tally.push((ending, 1)),
        }
    }
    println!("\nas the caller saw them:");
    for (ending, count) in &tally {
        println!("  {count:>4}  {ending:?}");
    }

    let exposition = scrape(&metrics_url).await?;
    println!("\n{metrics_url} (tower_reliability_* only):");
    for line in exposition.lines() {
        let series = line
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        if series.starts_with("tower_reliability_") {
            println!("  {line}");
        }
    }

    let stats = server.stats();
    let attempts = "tower_reliability_attempts_total";
    let answered = sum(&exposition, attempts, r#"outcome="response""#);
    let errors = sum(&exposition, attempts, r#"outcome="error""#);
    let not_sent = sum(&exposition, attempts, r#"outcome="not_sent""#);
    println!("\nthe dashboard's view and the client's:");
    println!(
        "  server: {} requests reached it, {} answered, statuses {:?}, {} connections reset",
        stats.requests,
        stats.responses(),
        stats.statuses,
        stats.connections_reset
    );
    println!(
        "  client: {answered} attempts answered, {errors} failed after sending, \
         {not_sent} never reached the server"
    );
    let agree = answered == stats.responses() as f64 && answered + errors == stats.requests as f64;
    println!(
        "  {}",
        if agree {
            "they agree: every attempt the server saw is counted, and the ones it never saw are \
             counted apart"
        } else {
            "they DISAGREE (see the attempts_total series above)"
        }
    );

    if args.serve {
        println!("\nserving {metrics_url} (a request every 500 ms); Ctrl-C to stop");
        let trickle = async {
            for n in REQUESTS + 1.. {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = one(svc.clone(), chat(&url, n, n % 4 == 0)).await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = trickle => {}
        }
    }
    server.shutdown().await;
    Ok(())
}
