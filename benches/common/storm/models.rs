//! Two models on one client: the in-process `FireworksServer` limits model A hard (a token
//! limit worth `STORM_MODELS_A_RATE` requests a second, 10 by default, OpenAI's headers, 429s
//! without a hint) and leaves model B unlimited. One preset stack (one shared rate-limit
//! state) sends A's requests (Poisson, 3 × its limit) and B's (steady, `STORM_MODELS_B_RATE`,
//! 20/s) for `STORM_MODELS_SECONDS` (30 s), each with the token part's deadline.
//!
//! Lanes, each on its own server (A's bucket emptied first): B alone; A and B with the
//! preset's default scopes (one gate per model); A and B with every request put in
//! `Scope::global()` (one client-wide gate: how the gate worked before scopes).

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tower_reliability::{
    rate_limit::{RateLimitAware, Scope},
    testing::{FireworksHeaders, ModelLimits, ServerConfig},
};

use super::{
    config::StormConfig,
    load::steady_arrivals,
    mix::{chat_body, drained_servers, drive, latency, ClassStats, Job, MixLane, API_KEY},
    strategies::Fireworks,
    summary::print_failure_reasons,
};
use crate::traffic::{arrivals::poisson_arrivals, record::RunLog};

const MODEL_A: &str = "accounts/fireworks/models/llama-v3p1-8b-instruct";
const MODEL_B: &str = "accounts/fireworks/models/qwen2p5-72b-instruct";
const A: usize = 0;
const B: usize = 1;
/// Every request: 350 prompt tokens and 50 generated.
const PROMPT: u64 = 350;
const GENERATED: u64 = 50;

/// The lanes, in table order.
const LANES: [&str; 3] = [
    "B alone",
    "A + B, per-model scopes (default)",
    "A + B, one client-wide scope (before)",
];

/// A's requests (Poisson at 3 × its limit) and B's (steady), in arrival order.
fn jobs(config: &StormConfig) -> Vec<Job> {
    let job = |class, model, at| Job {
        at,
        body: chat_body(model, PROMPT, GENERATED),
        class,
        cost: PROMPT + GENERATED,
    };
    let a = poisson_arrivals(3.0 * config.models_a_rps, config.models_window, config.seed);
    let b = steady_arrivals(config.models_b_rps, config.models_window);
    let mut jobs: Vec<Job> = a.into_iter().map(|at| job(A, MODEL_A, at)).collect();
    jobs.extend(b.into_iter().map(|at| job(B, MODEL_B, at)));
    jobs.sort_by(|x, y| x.at.total_cmp(&y.at));
    jobs
}

/// Runs the lanes and prints the table.
pub async fn run(config: &StormConfig) {
    let a_per_minute = (config.models_a_rps * (PROMPT + GENERATED) as f64 * 60.0).round() as u64;
    let window = config.models_window.as_secs_f64();
    let deadline = config.token_deadline;
    let jobs = jobs(config);
    println!("\n## Two models on one client\n");
    println!(
        "Model A limited to {a_per_minute} tokens a minute ({:.0} requests of {} tokens a \
         second; OpenAI's headers, 429s without a hint), its bucket emptied first, offered \
         {:.0} requests/s (Poisson); model B unlimited, offered {:.0} requests/s (steady); \
         {window:.0} s, deadline {:.0} s each. One preset client per lane, one server each.\n",
        config.models_a_rps,
        PROMPT + GENERATED,
        3.0 * config.models_a_rps,
        config.models_b_rps,
        deadline.as_secs_f64()
    );
    let limits = ModelLimits::new()
        .tokens_per_minute(a_per_minute)
        .openai_headers(true)
        .fireworks_headers(FireworksHeaders::None);
    let server_config = || {
        ServerConfig::default()
            .api_key(API_KEY)
            .models([MODEL_A, MODEL_B])
            .limits_for(MODEL_A, limits)
            .tokens_per_completion(GENERATED as usize)
            .token_interval(Duration::from_millis(1))
    };
    let servers = drained_servers(LANES.len(), server_config, MODEL_A, a_per_minute).await;
    let start = Instant::now() + Duration::from_millis(200);
    let lanes: Vec<Arc<MixLane>> = LANES
        .iter()
        .zip(&servers)
        .enumerate()
        .map(|(i, (&name, server))| {
            let log = RunLog::new(start);
            let uri: http::Uri = server.chat_url().parse().expect("a valid URL");
            let preset = Fireworks::new(uri, deadline, log.clone(), RateLimitAware::new());
            match i {
                0 => MixLane::new(name, Arc::new(preset), log).only(&[B]),
                1 => MixLane::new(name, Arc::new(preset), log),
                _ => MixLane::new(name, Arc::new(preset.with_scope(Scope::global())), log),
            }
        })
        .map(Arc::new)
        .collect();
    drive(&lanes, &jobs, start, deadline).await;
    let a_stats: Vec<_> = servers.iter().map(|s| s.stats().model(MODEL_A)).collect();
    for server in &servers {
        server.shutdown().await;
    }

    println!(
        "| lane | B served/s (vs alone) | B p50 | B p99 | B lost | A served/s (of its limit) | \
         A attempts 429 | A lost |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut alone: Option<(f64, ClassStats)> = None;
    let mut verdicts = Vec::new();
    for (lane, a_server) in lanes.iter().zip(&a_stats) {
        let done = lane.done();
        let in_window = |class| {
            done.iter()
                .filter(|d| d.class == class && d.finished <= window)
                .filter(|d| d.outcome == crate::traffic::record::Outcome::Success)
                .count() as f64
                / window
        };
        let (b, b_rate) = (ClassStats::of(&done, B), in_window(B));
        let (a, a_rate) = (ClassStats::of(&done, A), in_window(A));
        let versus = alone.map_or_else(
            || "–".to_owned(),
            |(rate, _)| format!("{:+.1} %", 100.0 * (b_rate / rate - 1.0)),
        );
        let a_cells = if a.requests == 0 {
            "– | – | –".to_owned()
        } else {
            let share = a_server.rate_limited as f64 / a_server.requests.max(1) as f64;
            format!(
                "{a_rate:.1} ({:.0} %) | {:.1} % of {} | {} of {}",
                100.0 * a_rate / config.models_a_rps,
                100.0 * share,
                a_server.requests,
                a.lost,
                a.requests
            )
        };
        println!(
            "| {} | {b_rate:.1} ({versus}) | {} | {} | {} of {} | {a_cells} |",
            lane.name,
            latency(b.p50),
            latency(b.p99),
            b.lost,
            b.requests,
        );
        match alone {
            None => alone = Some((b_rate, b)),
            Some((rate, base)) => verdicts.push((lane.name, within(rate, b_rate, &base, &b))),
        }
    }
    println!(
        "\nServed/s: successes that ended within the {window:.0} s of arrivals. A's attempts: \
         as the server counted them."
    );
    let reasons: Vec<_> = lanes
        .iter()
        .map(|lane| (lane.name, lane.log.failures()))
        .collect();
    print_failure_reasons(&reasons);
    println!(
        "\nTarget: B's goodput, p50 and p99 within 5 % of B alone (latencies: or within \
         {:.0} ms, below which the in-process server's answers are scheduling noise):",
        NOISE * 1000.0
    );
    for (name, (met, detail)) in verdicts {
        println!(
            "- {name}: {detail} — {}",
            if met { "met" } else { "MISSED" }
        );
    }
}

/// Latency differences below this many seconds are noise (the local server answers B in well
/// under a millisecond; the runtime's timers and two shared cores move it by as much).
const NOISE: f64 = 0.001;

/// Whether B's goodput, p50 and p99 in a lane are within 5 % of B alone (a latency also when
/// within [`NOISE`] of it), and the figures.
fn within(rate: f64, b_rate: f64, alone: &ClassStats, b: &ClassStats) -> (bool, String) {
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => x <= 1.05 * y || x - y <= NOISE,
        _ => false,
    };
    let goodput = b_rate / rate.max(f64::MIN_POSITIVE);
    let met = goodput >= 0.95 && close(b.p50, alone.p50) && close(b.p99, alone.p99);
    let detail = format!(
        "goodput {:.1} %, p50 {} vs {}, p99 {} vs {}",
        100.0 * goodput,
        latency(b.p50),
        latency(alone.p50),
        latency(b.p99),
        latency(alone.p99)
    );
    (met, detail)
}
