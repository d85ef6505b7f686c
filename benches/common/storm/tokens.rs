//! A token mix against a tokens-per-minute limit: the in-process `FireworksServer` limits one
//! model to `STORM_TOKEN_LIMIT` tokens a minute (600,000 by default: 10,000 a second) and
//! requests arrive open-loop (Poisson) at `STORM_TOKEN_FACTOR` (3) × that in tokens for
//! `STORM_TOKEN_SECONDS` (30 s), each with a deadline (60 s): 80 % small prompts (240–360
//! tokens), 20 % large ones (4000–6000 tokens), `max_tokens` 50 (the server generates 50).
//!
//! Two variants, by the headers the server sends: OpenAI's (`x-ratelimit-*-tokens` for one
//! prompt + generated bucket, an exact `retry-after-ms` on 429s) and Fireworks' older
//! per-minute ones (`x-ratelimit-{limit,remaining}-tokens-prompt` for a prompt bucket, no hint
//! on 429s). Each lane has its own server, whose bucket is emptied before the run (as after a
//! minute at the limit: a fresh bucket holds a whole minute's allowance, more than a 30 s run
//! can use up).

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tower_reliability::{
    rate_limit::{GateConfig, RateLimitAware},
    testing::{FireworksHeaders, HintStyle, ModelLimits, ServerConfig, DEFAULT_MODEL},
};

use super::{
    config::StormConfig,
    mix::{
        chat_body, cost_series, drained_servers, drive, latency, served_per_second, share_429,
        ClassStats, Done, Job, MixLane, API_KEY,
    },
    openai_sdk::OpenAiSdk,
    plot::{rate_series, write_svg, Panel, Series},
    strategies::{Fireworks, Kind, Strategy},
    summary::print_failure_reasons,
};
use crate::traffic::{arrivals::poisson_arrivals, record::RunLog};

const SMALL: usize = 0;
const LARGE: usize = 1;
/// Every request's `max_tokens`, and what the server generates.
const MAX_TOKENS: u64 = 50;

/// Which limit headers the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// OpenAI's: one token bucket (prompt + generated), `retry-after-ms` on 429s.
    OpenAi,
    /// Fireworks' older per-minute headers: a prompt-token bucket, no hint on 429s.
    FireworksLegacy,
}

impl Form {
    fn limits(self, per_minute: u64) -> ModelLimits {
        match self {
            Form::OpenAi => ModelLimits::new()
                .tokens_per_minute(per_minute)
                .openai_headers(true)
                .fireworks_headers(FireworksHeaders::None)
                .hint(HintStyle::SecondsAndMs),
            Form::FireworksLegacy => ModelLimits::new()
                .prompt_tokens_per_minute(per_minute)
                .fireworks_headers(FireworksHeaders::Legacy),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Form::OpenAi => {
                "prompt + generated tokens, OpenAI's `x-ratelimit-*-tokens`, 429s with `retry-after-ms`"
            }
            Form::FireworksLegacy => {
                "prompt tokens, Fireworks' per-minute `x-ratelimit-*-tokens-prompt`, 429s without a hint"
            }
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Form::OpenAi => "openai",
            Form::FireworksLegacy => "fireworks",
        }
    }

    /// What a request of `prompt` tokens spends of the limited bucket.
    fn cost(self, prompt: u64) -> u64 {
        match self {
            Form::OpenAi => prompt + MAX_TOKENS,
            Form::FireworksLegacy => prompt,
        }
    }
}

/// The lanes, in table order.
const LANES: [&str; 4] = [
    "guide's loop (hyper-util)",
    "OpenAI SDK policy (2 retries)",
    "fireworks::layer, request pacing only",
    "fireworks::layer, token pacing",
];

/// Runs both variants.
pub async fn run(config: &StormConfig) {
    for form in [Form::OpenAi, Form::FireworksLegacy] {
        run_form(config, form).await;
    }
}

/// The mix: Poisson arrivals at the offered token rate, each small or large at random (seeded).
fn jobs(config: &StormConfig, form: Form) -> Vec<Job> {
    let mean_cost = 0.8 * form.cost(300) as f64 + 0.2 * form.cost(5000) as f64;
    let rate = config.token_factor * config.token_limit / 60.0 / mean_cost;
    let mut rng = fastrand::Rng::with_seed(config.seed.wrapping_add(17));
    poisson_arrivals(rate, config.token_window, config.seed)
        .into_iter()
        .map(|at| {
            let (class, prompt) = if rng.f64() < 0.2 {
                (LARGE, rng.u64(4000..=6000))
            } else {
                (SMALL, rng.u64(240..=360))
            };
            Job {
                at,
                body: chat_body(DEFAULT_MODEL, prompt, MAX_TOKENS),
                class,
                cost: form.cost(prompt),
            }
        })
        .collect()
}

/// How many of `jobs` a FIFO server at exactly `rate` cost per second, starting empty, could
/// not finish within `deadline` (those it gives up on spend nothing): what the deadline
/// allows to lose.
fn fifo_losses(jobs: &[Job], rate: f64, deadline: f64) -> usize {
    let (mut free_at, mut lost) = (0.0_f64, 0);
    for job in jobs {
        let finish = free_at.max(job.at) + job.cost as f64 / rate;
        if finish - job.at > deadline {
            lost += 1;
        } else {
            free_at = finish;
        }
    }
    lost
}

async fn run_form(config: &StormConfig, form: Form) {
    let per_minute = config.token_limit.round() as u64;
    let rate = per_minute as f64 / 60.0;
    let jobs = jobs(config, form);
    let window = config.token_window.as_secs_f64();
    let deadline = config.token_deadline;
    let offered: u64 = jobs.iter().map(|j| j.cost).sum();
    println!("\n## Token mix: {}\n", form.describe());
    println!(
        "Limit {per_minute} tokens a minute ({rate:.0}/s) on one model, its bucket emptied \
         first. {} requests in {window:.0} s (Poisson; 80 % of 240–360 prompt tokens, 20 % of \
         4000–6000; max_tokens {MAX_TOKENS}) offering {:.0} tokens/s = {:.1} × the limit, \
         deadline {:.0} s each; lanes side by side, one server each.\n",
        jobs.len(),
        offered as f64 / window,
        offered as f64 / window / rate,
        deadline.as_secs_f64()
    );
    let server_config = || {
        ServerConfig::default()
            .api_key(API_KEY)
            .tokens_per_completion(MAX_TOKENS as usize)
            .token_interval(Duration::from_millis(1))
            .model_limits(form.limits(per_minute))
    };
    let servers = drained_servers(LANES.len(), server_config, DEFAULT_MODEL, per_minute).await;
    let start = Instant::now() + Duration::from_millis(200);
    let lanes: Vec<Arc<MixLane>> = LANES
        .iter()
        .zip(&servers)
        .enumerate()
        .map(|(i, (&name, server))| {
            let log = RunLog::new(start);
            let url = server.chat_url();
            let uri: http::Uri = url.parse().expect("a valid URL");
            let gate = |token_pacing| {
                RateLimitAware::with_config(GateConfig::default().with_token_pacing(token_pacing))
            };
            let strategy: Arc<dyn Strategy> = match i {
                0 => Kind::GuideLoop.build(&url, deadline, log.clone()),
                1 => Arc::new(OpenAiSdk::new(uri, log.clone())),
                2 => Arc::new(Fireworks::new(uri, deadline, log.clone(), gate(false))),
                _ => Arc::new(Fireworks::new(uri, deadline, log.clone(), gate(true))),
            };
            Arc::new(MixLane::new(name, strategy, log))
        })
        .collect();
    drive(&lanes, &jobs, start, deadline).await;
    for server in &servers {
        server.shutdown().await;
    }

    let allowed = fifo_losses(&jobs, rate, deadline.as_secs_f64());
    println!(
        "| lane | tokens/s served (of the limit) | attempts 429 | lost | small p50 / p99 | \
         large p50 / p99 | large served |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut ours = None;
    for lane in &lanes {
        let done = lane.done();
        let served = served_per_second(&done, None, window);
        let (share, attempts) = share_429(&lane.log);
        let (small, large) = (ClassStats::of(&done, SMALL), ClassStats::of(&done, LARGE));
        let lost = small.lost + large.lost;
        let timed_out = small.timed_out + large.timed_out;
        println!(
            "| {} | {served:.0} ({:.0} %) | {:.1} % of {attempts} | {lost} of {} ({timed_out} timed out) | {} / {} | \
             {} / {} | {} of {} |",
            lane.name,
            100.0 * served / rate,
            100.0 * share,
            done.len(),
            latency(small.p50),
            latency(small.p99),
            latency(large.p50),
            latency(large.p99),
            large.served,
            large.requests,
        );
        // The last lane is the token-paced preset.
        ours = Some((served / rate, share, lost, large));
    }
    println!(
        "\nTokens served: successes that ended within the {window:.0} s of arrivals. A FIFO \
         server at exactly the limit would have to give up {allowed} of {} requests to meet \
         the deadline.",
        jobs.len()
    );
    let reasons: Vec<_> = lanes
        .iter()
        .map(|lane| (lane.name, lane.log.failures()))
        .collect();
    print_failure_reasons(&reasons);
    if let Some((served, share, lost, large)) = ours {
        print_targets(served, share, lost, allowed, large);
    }
    plot(config, form, &lanes, rate);
}

/// The goals for the token-paced preset.
fn print_targets(served: f64, share: f64, lost: usize, allowed: usize, large: ClassStats) {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!("\nTargets for fireworks::layer with token pacing:");
    println!(
        "- ≥ 95 % of the token limit: {:.1} % — {}",
        100.0 * served,
        verdict(served >= 0.95)
    );
    println!(
        "- ≤ 5 % of attempts answered 429: {:.1} % — {}",
        100.0 * share,
        verdict(share <= 0.05)
    );
    println!(
        "- nothing lost that the deadline allows (a FIFO at the limit loses {allowed}): {lost} — {}",
        verdict(lost <= allowed)
    );
    println!(
        "- large prompts served: {} of {} — {}",
        large.served,
        large.requests,
        verdict(large.served > 0 && large.lost <= large.requests / 20)
    );
}

fn plot(config: &StormConfig, form: Form, lanes: &[Arc<MixLane>], rate: f64) {
    let dones: Vec<Vec<Done>> = lanes.iter().map(|lane| lane.done()).collect();
    let end = dones
        .iter()
        .flatten()
        .map(|d| d.finished)
        .fold(config.token_window.as_secs_f64(), f64::max)
        .ceil();
    let tokens = lanes
        .iter()
        .zip(&dones)
        .map(|(lane, done)| Series {
            name: lane.name,
            points: cost_series(done, 1.0, end),
        })
        .collect();
    let throttled = lanes
        .iter()
        .map(|lane| Series {
            name: lane.name,
            points: rate_series(
                lane.log
                    .attempts()
                    .iter()
                    .filter(|a| a.status == 429)
                    .map(|a| a.at),
                1.0,
                end,
            ),
        })
        .collect();
    let panels = [
        Panel {
            y_label: "tokens served per second",
            series: tokens,
            reference: Some((rate, "limit")),
            shade: None,
        },
        Panel {
            y_label: "429s per second",
            series: throttled,
            reference: None,
            shade: None,
        },
    ];
    let path = config
        .out_dir
        .join(format!("storm-tokens-{}.svg", form.slug()));
    let caption = format!(
        "Token mix at {:.0} × a {:.0} tokens/minute limit",
        config.token_factor, config.token_limit
    );
    match write_svg(&path, &caption, &panels, end) {
        Ok(()) => println!("\nPlot: {}", path.display()),
        Err(error) => eprintln!("storm: could not write {}: {error}", path.display()),
    }
}
