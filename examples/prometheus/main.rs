//! The crate's metrics, exposed to Prometheus.
//!
//! Installs `metrics-exporter-prometheus` with its HTTP listener, creates every series of the
//! crate at zero (`observe::register_metrics`: so Prometheus' first sample is 0), starts the crate's local
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
//! sending `--rate` requests a second (default 2; above the server's 40 they meet its rate
//! limit), until Ctrl-C. Backoff waits are scaled down (50 ms instead of
//! the guide's 1 s) so the demo takes a few seconds; everything else is the preset as shipped.
//!
//! `--prometheus URL` checks the dashboard against a real Prometheus that scrapes this
//! process (`scripts/prometheus.sh check` starts one, scraping every second): the load waits
//! until Prometheus has scraped every series at zero, and after it one more scrape; then the
//! example asks Prometheus the queries of `docs/grafana-dashboard.json` and the raw totals,
//! prints them next to the run's own counts (what reached the HTTP client, what the server
//! saw, the gate's waits from the `tracing` events) and exits with an error if any disagree.
//!
//! ```text
//! eval "$(scripts/prometheus.sh start 127.0.0.1:9100)"
//! cargo run --example prometheus --features metrics,testing -- --port 9100 --prometheus "$PROMETHEUS_URL"
//! scripts/prometheus.sh stop
//! ```

mod args;
mod check;
mod dashboard;
mod promql;
mod truth;

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant, SystemTime},
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
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stack =
    fireworks::FireworksService<truth::Counted<Client<HttpConnector, ReplayBody<Full<Bytes>>>>>;

const REQUESTS: usize = 100;
const CONCURRENCY: usize = 8;

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

/// A request the local gate refused before its first attempt.
const REFUSED: &str = "rate limited locally (never reached the server)";

fn failure(e: &Error) -> &'static str {
    match e.reached_server() {
        Some(false) if e.is_connect() => "connect (never reached the server)",
        Some(false) => REFUSED,
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

/// The upper bounds of the `_seconds` histograms' buckets.
const WAIT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    let gate_log = truth::GateLog::default();
    tracing_subscriber::registry().with(gate_log.clone()).init();

    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let installed = SystemTime::now();
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &WAIT_BUCKETS)?
        .install()
        .map_err(|e| format!("cannot serve metrics on {listen}: {e}"))?;
    tower_reliability::observe::register_metrics();
    let registered = SystemTime::now();
    let metrics_url = format!("http://{listen}/metrics");

    // With a Prometheus to check against: no traffic before it has scraped the zeros.
    let prometheus = args.prometheus.as_deref().map(promql::Prometheus::new);
    let instance = listen.to_string();
    let job = match &prometheus {
        Some(prometheus) => {
            let (_, job) = scrape_after(prometheus, &instance, registered).await?;
            println!("Prometheus scrapes {instance} (job {job:?}): every series is there at zero");
            Some(job)
        }
        None => None,
    };

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
    let transport = truth::Transport::default();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc: Stack = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(transport.clone())
        .service(client);

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
        .layer(transport.clone())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let lost = format!("http://{nowhere}/inference/v1/chat/completions");
    endings.push(one(elsewhere, chat(&lost, REQUESTS, false)).await);
    let load_ended = SystemTime::now();
    println!("done in {:.1?}", started.elapsed());

    endings.sort();
    let mut tally: Vec<(Ending, usize)> = Vec::new();
    for ending in &endings {
        match tally.last_mut() {
            Some((last, count)) if last == ending => *count += 1,
            _ => tally.push((*ending, 1)),
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

    if let (Some(prometheus), Some(job)) = (&prometheus, &job) {
        let (end, _) = scrape_after(prometheus, &instance, load_ended).await?;
        let refused = endings
            .iter()
            .filter(|e| **e == Ending::Failed(REFUSED))
            .count() as u64;
        let counts = &transport.0;
        let get = truth::TransportCounts::get;
        let (gate_waits_ms, breaker_trips) = match gate_log.0.lock() {
            Ok(log) => (log.waits_ms.clone(), log.breaker_trips),
            Err(_) => return Err("the gate log's lock is poisoned".into()),
        };
        let truth = check::Truth {
            requests: endings.len() as u64,
            attempts: get(&counts.calls) + refused,
            acknowledged: stats.responses(),
            status_429: stats.count(429),
            never_sent: get(&counts.connect_errors) + refused,
            after_sending: get(&counts.other_errors) + get(&counts.dropped),
            breaker_trips,
            gate_waits_ms,
        };
        let scope = check::Scope {
            job,
            instance: &instance,
            // A second before the exporter existed: before its first (zero) sample.
            start: promql::unix_seconds(installed) - 1.0,
            end,
            buckets: &WAIT_BUCKETS,
        };
        let failures = check::run(prometheus, &scope, &truth).await?;
        server.shutdown().await;
        if failures > 0 {
            return Err(format!("{failures} of Prometheus' answers disagree with the run").into());
        }
        println!("\nPrometheus agrees with the run on every count.");
        return Ok(());
    }

    if args.serve {
        println!(
            "\nserving {metrics_url} ({} requests a second); Ctrl-C to stop",
            args.rate
        );
        let trickle = async {
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
            for n in REQUESTS + 1.. {
                every.tick().await;
                tokio::spawn(one(svc.clone(), chat(&url, n, n % 4 == 0)));
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

/// Waits for a successful scrape of `instance` that started after `after`; returns its time
/// (Unix seconds) and the `job` Prometheus files the target under.
async fn scrape_after(
    prometheus: &promql::Prometheus,
    instance: &str,
    after: SystemTime,
) -> Result<(f64, String), BoxError> {
    let after = promql::unix_seconds(after);
    let up = format!(r#"up{{instance="{instance}"}}"#);
    let when = format!("timestamp({up})");
    let patience = Duration::from_secs(30);
    let until = Instant::now() + patience;
    loop {
        let scrape = prometheus
            .wait_for(&when, patience, |s| s.value > after)
            .await?;
        // `up` is 0 for a scrape that failed (the exporter not listening yet, a timeout).
        if let [sample] = prometheus.query(&up, Some(scrape.value)).await?.as_slice() {
            if sample.value == 1.0 {
                let job = sample.labels.get("job").cloned().unwrap_or_default();
                return Ok((scrape.value, job));
            }
        }
        if Instant::now() >= until {
            return Err(format!("no successful scrape of {instance} within {patience:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
