//! Submit a batch job, then wait for its results: the guide's "batch job submission: 60 s,
//! results are async", and its "reconnect and wait" for jobs that outlive a client.
//!
//! Runs against the crate's local Fireworks-compatible server (no API key, no network):
//!
//! 1. the job is created through `fireworks::layer(Workload::BatchSubmit)`; the server answers
//!    the first try with a 503, which the preset retries;
//! 2. a `JobPoller` waits for it through the same preset, while the server answers a 503 and
//!    then resets the connection: with two attempts per poll both hit the same poll, the stack
//!    gives up on it, and the poller tolerates the failure and polls again later;
//! 3. half-way, the wait is dropped, as if the process had restarted, and a new poller for the
//!    same job name resumes where the job is.
//!
//! Polls use `Workload::BatchSubmit` too: a status read is a quick metadata call like a
//! submission, so its profile fits (60 s per poll, 20 s per attempt, so a hung poll is cut and
//! retried), while the poller's own deadline bounds the whole wait.
//!
//! ```text
//! cargo run --example batch_job --features testing
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{
    header::{AUTHORIZATION, CONTENT_TYPE},
    HeaderMap, HeaderValue, Uri,
};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    jobs::{fireworks_json, get_request, JobPoller, JobStatus},
    retry::ReplayBody,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    RetryOnStatus, RetryReport, Workload,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The layers' and the poller's decisions (retries, tolerated poll failures) are `debug`
    // events: show them alongside the progress lines.
    tracing_subscriber::fmt()
        .with_env_filter("tower_reliability=debug")
        .without_time()
        .with_ansi(false)
        .with_target(false)
        .compact()
        .init();
    let server = FireworksServer::start(ServerConfig::default()).await?;
    server.set_job_duration(Duration::from_secs(8));
    let started = Instant::now();
    let at = move || started.elapsed().as_secs_f64();

    // One preset per API key. Polls share its rate-limit gate and retry budget, with two
    // attempts per poll: the poller is the outer loop, so a poll need not try five times.
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let submit_layer = fireworks::layer(Workload::BatchSubmit);
    let budget = submit_layer.retry_layer().current_budget().clone();
    let poll_layer = submit_layer
        .clone()
        .retry(RetryOnStatus::default().max_attempts(2).budget(budget));
    let mut submit = ServiceBuilder::new()
        .layer(submit_layer)
        .service(client.clone());
    let mut polls = ServiceBuilder::new().layer(poll_layer).service(client);

    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {DEFAULT_API_KEY}"))?,
    );

    // 1. Submit.
    server.push_script([Fault::Status(503)]);
    let body = serde_json::json!({
        "model": DEFAULT_MODEL,
        "displayName": "nightly-eval",
        "inputDatasetId": "accounts/acme/datasets/prompts",
    });
    let mut request = http::Request::post(server.batch_jobs_url("acme"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    request.headers_mut().extend(headers.clone());
    let response = submit.ready().await?.call(request).await?;
    let attempts = response
        .extensions()
        .get::<RetryReport>()
        .map_or(1, |report| report.attempts);
    let created: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    let name = created["name"]
        .as_str()
        .ok_or("no job name in the answer")?;
    println!("{:>5.1}s  submitted {name} ({attempts} attempts)", at());

    // The name is all a restarted process needs to resume: keep it somewhere durable.
    let status_uri = Uri::try_from(format!("{}/v1/{name}", server.base_url()))?;
    let show = move |status: &JobStatus| {
        let progress = status
            .progress
            .map_or(String::new(), |p| format!("{p:>3.0} %"));
        println!("{:>5.1}s  {:<20} {progress}", at(), status.raw_state);
    };

    // 2. Wait, through a 503 and a reset on the same poll; the process "restarts" after 4 s.
    server.push_script([Fault::Status(503), Fault::ResetBeforeResponse]);
    let mut poller = JobPoller::new(
        get_request(status_uri.clone(), headers.clone()),
        fireworks_json,
    )
    .max_interval(Duration::from_secs(2))
    .deadline(Duration::from_secs(120))
    .on_progress(show);
    let first = tokio::time::timeout(Duration::from_secs(4), poller.poll_until_done(&mut polls));
    if first.await.is_err() {
        println!("{:>5.1}s  -- wait dropped (simulated restart) --", at());
    }

    // 3. Resume: a new poller for the same job, as a new process would build it.
    let mut poller = JobPoller::new(get_request(status_uri, headers), fireworks_json)
        .max_interval(Duration::from_secs(2))
        .deadline(Duration::from_secs(120))
        .on_progress(show);
    let status = poller.poll_until_done(&mut polls).await?;

    println!(
        "{:>5.1}s  final: {} ({})",
        at(),
        status.state,
        status.raw_state
    );
    println!("         body: {}", String::from_utf8_lossy(&status.body));
    let stats = server.stats();
    println!(
        "         server saw {} requests: statuses {:?}, {} connection reset",
        stats.requests, stats.statuses, stats.connections_reset
    );
    Ok(())
}
