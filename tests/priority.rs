//! Priority by workload: when the server's limit binds, an interactive request does not wait
//! behind a flood of batch submissions, and the batch work still progresses.
//!
//! The preset against the in-process test server with a request quota of 60 a minute (one
//! back every second), on paused time: batch submissions arrive at twice the quota, and an
//! interactive request every 10 s (a tenth of it). Weighted (the default) against first come,
//! first served.
mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::chat::{chat_request, one_token_chat};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::{body_bytes, call};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    fireworks,
    rate_limit::{Admission, Demand, GateConfig, LocalStore, Priority, RateLimitStore, Scope},
    rate_limit::{Quota, Signal, Ticket},
    retry::ReplayBody,
    testing::{FireworksServer, HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY},
    RateLimitAware, TimeoutByWorkload, Workload,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The queue orders a newcomer by its workload: an interactive request asking while a batch
/// backlog waits gets a slot one spacing away, not behind the backlog; under FIFO it is last.
#[test]
fn an_interactive_newcomer_is_slotted_ahead_of_a_batch_backlog() {
    for (priority, expect_ahead) in [(Priority::default(), true), (Priority::Fifo, false)] {
        let store = LocalStore::new(GateConfig::default().with_priority(priority));
        let scope = Scope::named("m");
        let t0 = Instant::now();
        // A spent quota of 60 a minute: one request a second.
        let spent = Signal::Exhausted(Quota::new(Some(60), 0, Some(secs(60))));
        store.record_in(t0, &scope, spent, None, None);
        let batch = Demand::new(&scope).workload(Workload::BatchSubmit);
        for _ in 0..20 {
            assert!(matches!(
                store.admit_in(t0, &batch, Ticket::New),
                Admission::Wait(_)
            ));
        }
        let chat = Demand::new(&scope).workload(Workload::Interactive);
        let Admission::Wait(slot) = store.admit_in(t0, &chat, Ticket::New) else {
            panic!("the gate is paced: the newcomer waits");
        };
        let wait = slot.at() - t0;
        if expect_ahead {
            assert!(wait <= secs(1), "weighted: slotted ahead, {wait:?}");
        } else {
            assert!(wait >= secs(20), "fifo: behind the backlog, {wait:?}");
        }
    }
}

type Body = ReplayBody<Full<Bytes>>;

/// The preset with a deadline long enough for every request of the run, for every workload.
fn preset(priority: Priority) -> fireworks::FireworksLayer {
    let mut timeouts = TimeoutByWorkload::new(Workload::BatchSubmit);
    for workload in [Workload::Interactive, Workload::BatchSubmit] {
        timeouts = timeouts.profile(
            workload,
            Workload::Interactive.profile().with_total(secs(600)),
        );
    }
    fireworks::layer(Workload::BatchSubmit)
        .timeouts(timeouts)
        .rate_limit(RateLimitAware::with_config(
            GateConfig::default().with_priority(priority),
        ))
}

fn chat(server: &FireworksServer, workload: Option<Workload>) -> http::Request<Full<Bytes>> {
    let mut request = chat_request(&server.chat_url(), DEFAULT_API_KEY, one_token_chat());
    if let Some(workload) = workload {
        request.extensions_mut().insert(workload);
    }
    request
}

/// What the run measured: interactive times to success, and batch requests served.
struct Run {
    interactive: Vec<Duration>,
    interactive_failed: usize,
    batch_served: usize,
}

/// Batch at 2 a second (no extension: the preset's default, `BatchSubmit`) and one
/// interactive request every 10 s, for `seconds`.
async fn flood(priority: Priority, seconds: u64) -> Run {
    let quota = RateLimitConfig::new(1.0, 5).hint(HintStyle::SecondsAndMs);
    let server = FireworksServer::start(
        ServerConfig::default()
            .token_interval(Duration::from_millis(1))
            .tokens_per_completion(1)
            .rate_limit(quota),
    )
    .await
    .expect("the test server starts");
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let svc = ServiceBuilder::new()
        .layer(preset(priority))
        .service(client);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for tick in 0..seconds * 2 {
        tokio::time::sleep_until(start + Duration::from_millis(500) * tick as u32).await;
        // Interactive every 10 s, from 5 s on (once the batch backlog has formed).
        let interactive = tick % 20 == 10;
        let workload = interactive.then_some(Workload::Interactive);
        let mut svc = svc.clone();
        let request = chat(&server, workload);
        tasks.push(tokio::spawn(async move {
            let arrived = Instant::now();
            let ok = match call(&mut svc, request).await {
                Ok(response) => response.status() == 200 && body_bytes(response).await.is_ok(),
                Err(_) => false,
            };
            (interactive, ok, arrived.elapsed(), Instant::now() - start)
        }));
    }
    // Batch progress is counted within the offered spell (the backlog drains after it).
    let end = start + secs(seconds);
    let mut run = Run {
        interactive: Vec::new(),
        interactive_failed: 0,
        batch_served: 0,
    };
    for task in tasks {
        let (interactive, ok, took, done) = task.await.expect("the request task");
        match (interactive, ok) {
            (true, true) => run.interactive.push(took),
            (true, false) => run.interactive_failed += 1,
            (false, true) if start + done <= end => run.batch_served += 1,
            (false, _) => {}
        }
    }
    run
}

#[tokio::test(start_paused = true)]
async fn under_a_batch_flood_interactive_requests_wait_about_one_pacing_interval() {
    let weighted = flood(Priority::default(), 60).await;
    let fifo = flood(Priority::Fifo, 60).await;
    let worst = |run: &Run| {
        run.interactive
            .iter()
            .max()
            .copied()
            .unwrap_or(Duration::MAX)
    };
    println!(
        "weighted: interactive worst {:?} ({} served, {} failed), batch served {}; \
         fifo: interactive worst {:?}, batch served {}",
        worst(&weighted),
        weighted.interactive.len(),
        weighted.interactive_failed,
        weighted.batch_served,
        worst(&fifo),
        fifo.batch_served,
    );
    assert_eq!(weighted.interactive_failed, 0);
    assert_eq!(weighted.interactive.len(), 6);
    // Unloaded it takes a few ms; the pacing interval is 1 s: within about two intervals.
    assert!(
        worst(&weighted) <= Duration::from_millis(2500),
        "weighted: an interactive request waited {:?}",
        worst(&weighted)
    );
    // First come, first served puts it behind the backlog (tens of seconds).
    assert!(
        worst(&fifo) >= secs(10),
        "fifo: interactive worst {:?}",
        worst(&fifo)
    );
    // Batch still progresses at about the quota (60 s at one a second, minus what went to
    // interactive and the first moments before the quota was learned).
    assert!(
        weighted.batch_served >= 45,
        "batch served {} in 60 s",
        weighted.batch_served
    );
}
