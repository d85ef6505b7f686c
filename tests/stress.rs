//! Stress: thousands of concurrent requests through ONE Fireworks preset (one shared gate, one
//! retry budget, one connection pool) against the in-process server with a rate limit and a
//! fault mix, on a multi-threaded runtime.
//!
//! Every request must end — a response read to its end, or an error — within its own total
//! deadline; none may hang (a global guard); and the outcomes must reconcile with the number
//! of requests. This also exercises the gate's wake-up path (`Notify`) under real thread
//! concurrency, which loom cannot check: a lost wake-up shows up as a request stuck past its
//! deadline (held requests recheck at the latest at their deadline, so a request "saved" by
//! its recheck still had to wait at most its deadline; the deadline bound catches a stuck one).

mod common;
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::fast_backoff;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    backoff::Jitter,
    error::TimeoutPhase,
    fireworks,
    rate_limit::GateConfig,
    retry::ReplayBody,
    testing::{
        FaultMix, FireworksServer, HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY,
        DEFAULT_MODEL,
    },
    ErrorKind, RateLimitAware, TimeoutByWorkload, TimeoutProfile, Workload,
};

const REQUESTS: usize = 3000;
const TOTAL: Duration = Duration::from_secs(8);
const IDLE: Duration = Duration::from_secs(2);
/// Scheduling slack on a loaded two-worker runtime: the deadline fires on the timer wheel
/// (1 ms resolution) and the task must then be polled.
const SLACK: Duration = Duration::from_millis(250);
/// Nothing may still be running after this: the global hang guard.
const GUARD: Duration = Duration::from_secs(40);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Status(u16),
    Failed(String),
}

fn outcome_of_error(e: &tower_reliability::Error) -> String {
    match e.kind() {
        ErrorKind::Timeout(TimeoutPhase::Deadline) => "timeout:deadline".into(),
        ErrorKind::Timeout(TimeoutPhase::Attempt) => "timeout:attempt".into(),
        ErrorKind::Timeout(TimeoutPhase::BodyIdle) => "timeout:body_idle".into(),
        ErrorKind::RateLimited { .. } => "rate_limited".into(),
        ErrorKind::Connect => "connect".into(),
        ErrorKind::Inner => "inner".into(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_requests_through_one_preset_all_end_within_their_deadline() {
    let server = FireworksServer::start(
        ServerConfig::default()
            .tokens_per_completion(4)
            .token_interval(Duration::from_millis(1))
            .rate_limit(RateLimitConfig::new(500.0, 50).hint(HintStyle::RetryAfterMs))
            .fault_mix(FaultMix::default().status_503(0.04).reset(0.02).seed(7)),
    )
    .await
    .expect("server starts");
    let url = server.chat_url();

    let profile = TimeoutProfile::new(TOTAL).with_idle_read(IDLE);
    let preset = fireworks::layer(Workload::Interactive)
        .timeouts(
            TimeoutByWorkload::new(Workload::Interactive).profile(Workload::Interactive, profile),
        )
        .backoff(fast_backoff(Jitter::Full, 20).max_delay(Duration::from_millis(500)))
        // Release held requests at about the server's rate (500/s), not the default 50/s.
        .rate_limit(RateLimitAware::with_config(
            GateConfig::default().with_release_spacing(Duration::from_millis(2)),
        ));
    let budget = preset.retry_layer().current_budget().clone();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc = ServiceBuilder::new().layer(preset).service(client);

    let body = Bytes::from(
        serde_json::json!({
            "model": DEFAULT_MODEL,
            "messages": [{ "role": "user", "content": "stress" }],
        })
        .to_string(),
    );

    let wall = Instant::now();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let mut svc = svc.clone();
            let request = http::Request::post(&url)
                .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .expect("a request");
            tokio::spawn(async move {
                let start = Instant::now();
                let outcome = match svc.ready().await {
                    Err(e) => Outcome::Failed(outcome_of_error(&e)),
                    Ok(svc) => match svc.call(request).await {
                        Err(e) => Outcome::Failed(outcome_of_error(&e)),
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.into_body().collect().await {
                                Ok(_) if status == 200 => Outcome::Ok,
                                Ok(_) => Outcome::Status(status),
                                Err(e) => Outcome::Failed(format!("body:{}", outcome_of_error(&e))),
                            }
                        }
                    },
                };
                (outcome, start.elapsed())
            })
        })
        .collect();

    let results = tokio::time::timeout(GUARD, futures::future::join_all(tasks))
        .await
        .unwrap_or_else(|_| panic!("some request hung past the {GUARD:?} guard"));
    let wall = wall.elapsed();

    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for result in results {
        let (outcome, elapsed) = result.expect("no task panicked");
        *counts.entry(outcome).or_default() += 1;
        latencies.push(elapsed);
    }
    latencies.sort();
    let max = *latencies.last().expect("some requests");
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    let ok = counts.get(&Outcome::Ok).copied().unwrap_or(0);
    let failed: usize = counts
        .iter()
        .filter(|(o, _)| **o != Outcome::Ok)
        .map(|(_, n)| n)
        .sum();
    let stats = server.stats();
    println!(
        "stress: {REQUESTS} requests in {wall:?}: {ok} ok, {failed} failed; \
         latency p50 {p50:?} p99 {p99:?} max {max:?} (deadline {TOTAL:?}); outcomes {counts:?}; \
         server saw {} requests {:?}, {} resets, {} connections; budget {}/{}",
        stats.requests,
        stats.statuses,
        stats.connections_reset,
        stats.connections_accepted,
        budget.available(),
        budget.max(),
    );

    assert_eq!(ok + failed, REQUESTS, "every request is accounted for");
    assert!(
        max <= TOTAL + SLACK,
        "a request took {max:?}, past its {TOTAL:?} deadline"
    );
    // Under this load and a 500/s limit most requests must get through within 8 s; the
    // faults and the limit make some fail, cleanly.
    assert!(
        ok >= REQUESTS / 2,
        "only {ok} of {REQUESTS} succeeded: {counts:?}"
    );
    // The server's view reconciles: every success is one 200 it sent, and every attempt that
    // reached it is counted once (resets included).
    assert!(stats.count(200) >= ok as u64, "{stats:?}");
    let answered: u64 = stats.statuses.values().sum();
    assert_eq!(
        stats.requests,
        answered + stats.connections_reset,
        "every request the server received was answered or reset: {stats:?}"
    );
    assert!(wall < Duration::from_secs(30), "took {wall:?}");
}
