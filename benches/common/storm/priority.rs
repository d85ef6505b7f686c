//! Priority by workload: a batch flood at twice a request quota plus interactive traffic at a
//! tenth of it, through one preset (one shared gate), weighted (the default) against first
//! come, first served; and the interactive traffic alone, for its unloaded latency.
//!
//! The in-process `FireworksServer` enforces the quota as a continuously refilling bucket
//! (burst 5) and says so in `x-ratelimit-*-requests` headers, so the gate paces by it.
//! Batch requests carry no workload (the preset's default, `BatchSubmit`); interactive ones
//! carry `Workload::Interactive`. Every request has a deadline long enough to be served.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{sync::Mutex, task::JoinSet, time::Instant};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{GateConfig, Priority},
    retry::ReplayBody,
    testing::{FireworksServer, HintStyle, RateLimitConfig, ServerConfig},
    RateLimitAware, TimeoutByWorkload, Workload,
};

use super::config::StormConfig;
use crate::{
    chat::{chat_request, drain_body},
    traffic::stats::quantile,
};

/// One lane's figures.
struct Row {
    lane: &'static str,
    interactive: Vec<f64>,
    interactive_lost: usize,
    batch_served: usize,
    batch_lost: usize,
    batch_offered: usize,
}

/// Runs the three lanes one after the other (each with its own server) and prints the table.
pub async fn run(config: &StormConfig) {
    let limit = config.priority_rps;
    let window = config.priority_window;
    println!(
        "\n## Priority: batch at 2 × a {limit:.0} r/s quota, interactive at 10 % of it, for \
         {:.0} s\n",
        window.as_secs_f64()
    );
    let lanes: [(&'static str, Priority, bool); 3] = [
        ("interactive alone", Priority::default(), false),
        ("preset, weighted (default)", Priority::default(), true),
        ("preset, first come first served", Priority::Fifo, true),
    ];
    let mut rows = Vec::new();
    for (lane, priority, flood) in lanes {
        rows.push(run_lane(lane, priority, flood, limit, window).await);
    }
    println!(
        "| lane | interactive p50 | interactive p99 | interactive lost | batch served / s (% of \
         quota) | batch lost |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let p = |q: f64| {
            quantile(&row.interactive, q).map_or("—".to_owned(), |s| format!("{:.0} ms", s * 1e3))
        };
        let batch = if row.batch_offered == 0 {
            "—".to_owned()
        } else {
            let rate = row.batch_served as f64 / window.as_secs_f64();
            format!("{rate:.1} ({:.0} %)", 100.0 * rate / limit)
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.lane,
            p(0.5),
            p(0.99),
            row.interactive_lost,
            batch,
            row.batch_lost
        );
    }
}

type Body = ReplayBody<Full<Bytes>>;

async fn run_lane(
    lane: &'static str,
    priority: Priority,
    flood: bool,
    limit: f64,
    window: Duration,
) -> Row {
    let quota = RateLimitConfig::new(limit, 5).hint(HintStyle::SecondsAndMs);
    let server = FireworksServer::start(
        ServerConfig::default()
            .api_key("bench-key")
            .rate_limit(quota),
    )
    .await
    .expect("start the in-process server");
    let uri: Uri = server.chat_url().parse().expect("the server's URL");
    // Long enough for every request of the run to be served.
    let total = window * 4 + Duration::from_secs(60);
    let mut timeouts = TimeoutByWorkload::new(Workload::BatchSubmit);
    for workload in [Workload::Interactive, Workload::BatchSubmit] {
        timeouts = timeouts.profile(workload, Workload::Interactive.profile().with_total(total));
    }
    let layer = fireworks::layer(Workload::BatchSubmit)
        .timeouts(timeouts)
        .rate_limit(RateLimitAware::with_config(
            GateConfig::default().with_priority(priority),
        ));
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let service = ServiceBuilder::new().layer(layer).service(client);
    let results = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    // Batch at twice the quota, interactive at a tenth of it.
    let batch_every = Duration::from_secs_f64(1.0 / (2.0 * limit));
    let interactive_every = Duration::from_secs_f64(1.0 / (0.1 * limit));
    let mut schedule: Vec<(Duration, bool)> = Vec::new();
    if flood {
        let mut at = Duration::ZERO;
        while at < window {
            schedule.push((at, false));
            at += batch_every;
        }
    }
    // Interactive from a second in, once the backlog has formed.
    let mut at = Duration::from_secs(1);
    while at < window {
        schedule.push((at, true));
        at += interactive_every;
    }
    schedule.sort_by_key(|(at, _)| *at);
    let mut tasks = JoinSet::new();
    for (at, interactive) in schedule {
        tokio::time::sleep_until(start + at).await;
        let mut service = service.clone();
        let mut request = chat_request(&uri);
        if interactive {
            request.extensions_mut().insert(Workload::Interactive);
        }
        let results = results.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            let ok = match service.ready().await {
                Ok(ready) => match ready.call(request).await {
                    Ok(response) => {
                        response.status() == 200 && drain_body(response.into_body()).await.is_ok()
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            };
            let done = Instant::now();
            results
                .lock()
                .await
                .push((interactive, ok, (done - sent).as_secs_f64(), done));
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let end = start + window;
    let results = results.lock().await;
    let mut row = Row {
        lane,
        interactive: Vec::new(),
        interactive_lost: 0,
        batch_served: 0,
        batch_lost: 0,
        batch_offered: 0,
    };
    for &(interactive, ok, took, done) in results.iter() {
        match (interactive, ok) {
            (true, true) => row.interactive.push(took),
            (true, false) => row.interactive_lost += 1,
            (false, ok) => {
                row.batch_offered += 1;
                // Batch progress counts within the offered spell (the backlog drains after).
                if ok && done <= end {
                    row.batch_served += 1;
                }
                if !ok {
                    row.batch_lost += 1;
                }
            }
        }
    }
    row
}
