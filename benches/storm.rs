//! Goodput in bad weather: four ways of calling an LLM API compared under a real rate limiter,
//! against a server shedding load, through an outage, under a token limit, and with two models
//! on one client.
//!
//! Strategies (see `common/storm/strategies.rs`): the Fireworks guide's own retry loop over a
//! hyper-util client; reqwest + reqwest-middleware + reqwest-retry with its documented setup;
//! tower 0.5's `Retry` with `ExponentialBackoffMaker` and `TpsBudget`; and
//! `fireworks::layer(Workload::Interactive)` over a hyper-util client.
//!
//! 1. **Rate limiter** (needs nginx: `STORM_NGINX_URL`, set by `scripts/storm.sh`): open-loop
//!    Poisson arrivals at twice nginx's `limit_req` rate, once with `Retry-After: 1` on the
//!    429s and once without any hint. Reported per strategy: goodput as a fraction of the
//!    limit, the share of attempts answered 429, attempts per success, requests failed or
//!    timed out, and time to success (p50, p99); plots of successes and 429s over time.
//! 2. **Adaptive rate** (needs nginx and `STORM_NGINX_DIR`, set by `scripts/storm.sh`): the
//!    429s carry no hint and the limit is 40 r/s (not 50, the gate's fixed release pace), then
//!    halved to 20 r/s mid-run by reloading nginx, while Poisson arrivals stay at 80/s.
//!    `fireworks::layer` with the gate's adaptive rate set to CUBIC, AIMD and off, and the other
//!    strategies for context. Reported per lane and phase: goodput as a fraction of the phase's
//!    limit, attempts sent per second, the share answered 429, requests failed or timed out,
//!    time to success; after the halving, how long until the lane sends under the new limit
//!    and the 429 share in the 10 s after; the learned rate over time, and a plot.
//! 3. **Load shedding** (needs nginx): no rate limit, but 30 % of requests, at random, answered
//!    `503 Service Overloaded` without any hint; steady arrivals at 50/s for 20 s, each
//!    request driven to success or give-up (60 s deadline). Reported per strategy: requests
//!    lost, attempts per success, time to success (p50, p99) and when the last request was
//!    done; a plot of successes and attempts over time.
//! 4. **Outage** (in process): the `testing::FireworksServer` answers 503 to everything for
//!    20 s while requests keep arriving at 50/s (5 s before, 15 s after; 60 s deadline), the
//!    server's capacity far above that. Reported: attempts per request during the outage (what
//!    the strategy inflicts on a server that is down), requests lost, how long after the
//!    recovery goodput is back (the first one-second window with successes at 90 % of the
//!    arrival rate), time to success and when the last request was done; a plot of successes
//!    and attempts over time.
//! 5. **Token mix** (in process): `testing::FireworksServer` limits one model to 600,000 tokens
//!    a minute, its bucket emptied first; Poisson arrivals offer 3 × that for 30 s (80 % of
//!    prompts ~300 tokens, 20 % ~5000, `max_tokens` 50), 60 s deadline; once with OpenAI's
//!    token headers and `retry-after-ms`, once with Fireworks' per-minute prompt-token headers
//!    and no hint. Lanes: the guide's loop, the OpenAI SDK's default policy
//!    (`common/storm/openai_sdk.rs`), `fireworks::layer` with request pacing only
//!    (`GateConfig::token_pacing: false`) and with token pacing. Reported per lane: tokens
//!    served per second against the limit, the share of attempts answered 429, requests lost,
//!    time to success (p50, p99) for small and large prompts apart, how many large prompts were
//!    served; a plot of tokens served and 429s over time.
//! 6. **Two models** (in process): one preset client sends to model A, limited hard (worth 10
//!    requests a second, offered 3 ×), and to unlimited model B (20 requests a second,
//!    steady). Lanes: B alone; A and B with per-model scopes (the default); A and B with every
//!    request in `Scope::global()` (one client-wide gate). Reported: B's goodput, p50 and p99
//!    against B alone (goal: within 5 %), A's goodput and 429 share.
//!
//! 7. **Priority** (in process): the `testing::FireworksServer` with a request quota (20 r/s,
//!    burst 5), batch submissions at twice it and interactive requests at a tenth of it through
//!    one preset; weighted fair queueing (the default) against first come, first served, and
//!    the interactive traffic alone. Reported: interactive p50/p99, batch served per second.
//!
//! Run with `scripts/storm.sh` (starts and stops nginx), or
//! `cargo bench --bench storm --features testing` (the in-process parts only, unless
//! `STORM_NGINX_URL` is set). Arguments `nginx`, `adaptive`, `shedding`, `outage`, `tokens`,
//! `models` or `priority` run only those parts (`scripts/storm.sh shedding outage`: the two
//! parts with server faults; `scripts/storm.sh tokens models priority` needs no nginx). Durations and rates
//! come from environment variables: see `common/storm/config.rs` (`STORM_SECONDS=3` is a smoke
//! run).

#[path = "common/chat.rs"]
mod chat;
#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/storm/mod.rs"]
mod storm;
#[path = "common/tower_retry.rs"]
mod tower_retry;
#[path = "common/traffic/mod.rs"]
mod traffic;

use storm::{
    adaptive,
    config::StormConfig,
    models,
    nginx::{self, Variant},
    outage, priority, shedding, tokens,
};

/// The parts, in the order they run.
const PARTS: [&str; 7] = [
    "nginx", "adaptive", "shedding", "outage", "tokens", "models", "priority",
];

fn main() {
    // `cargo test --benches` runs this binary without `--bench`: a storm takes minutes, so it
    // only runs under `cargo bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "storm: run with `cargo bench --bench storm --features testing` (or scripts/storm.sh)"
        );
        return;
    }
    let config = StormConfig::from_env();
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| PARTS.contains(&arg.as_str()))
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if let Err(error) = std::fs::create_dir_all(&config.out_dir) {
        eprintln!("storm: cannot create {}: {error}", config.out_dir.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "# Storm: limit {} r/s, offered {}×, {:.0} s per nginx variant, deadline {:.0} s, \
         adaptive limit {} → {} r/s ({:.0} s each), shedding {} % at {} req/s for {:.0} s, \
         outage {:.0} s at {} req/s, deadline with faults {:.0} s, seed {}",
        config.limit_rps,
        config.offered_factor,
        config.window.as_secs_f64(),
        config.deadline.as_secs_f64(),
        config.adaptive_rps,
        (config.adaptive_rps / 2.0).round(),
        config.adaptive_phase.as_secs_f64(),
        config.shed_percent,
        config.shed_rps,
        config.shed_window.as_secs_f64(),
        config.outage.as_secs_f64(),
        config.outage_rps,
        config.fault_deadline.as_secs_f64(),
        config.seed
    );
    runtime.block_on(async {
        if wants("nginx") {
            match &config.nginx_url {
                Some(base) if nginx::reachable(base).await => {
                    for variant in [Variant::Hint, Variant::NoHint] {
                        nginx::run(&config, base, variant).await;
                    }
                }
                Some(base) => println!(
                    "\nSkipping the rate-limiter part: nginx does not answer at {base}/ok."
                ),
                None => println!(
                    "\nSkipping the rate-limiter part: STORM_NGINX_URL is not set \
                     (scripts/storm.sh starts nginx and sets it)."
                ),
            }
        }
        if wants("adaptive") {
            match (&config.nginx_url, &config.nginx_dir) {
                (Some(base), Some(dir)) if nginx::reachable(base).await => {
                    adaptive::run(&config, base, dir).await;
                }
                (Some(base), Some(_)) => {
                    println!("\nSkipping the adaptive part: nginx does not answer at {base}/ok.")
                }
                _ => println!(
                    "\nSkipping the adaptive part: STORM_NGINX_URL and STORM_NGINX_DIR are not \
                     both set (scripts/storm.sh starts nginx and sets them)."
                ),
            }
        }
        if wants("shedding") {
            match &config.nginx_url {
                Some(base) if nginx::reachable(base).await => {
                    shedding::run(&config, base).await;
                }
                Some(base) => {
                    println!("\nSkipping the shedding part: nginx does not answer at {base}/ok.")
                }
                None => println!(
                    "\nSkipping the shedding part: STORM_NGINX_URL is not set \
                     (scripts/storm.sh starts nginx and sets it)."
                ),
            }
        }
        if wants("outage") {
            outage::run(&config).await;
        }
        if wants("tokens") {
            tokens::run(&config).await;
        }
        if wants("models") {
            models::run(&config).await;
        }
        if wants("priority") {
            priority::run(&config).await;
        }
    });
}
