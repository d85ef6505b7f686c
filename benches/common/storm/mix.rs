//! Mixed requests for the in-process parts (the token mix, two models on one client): requests
//! that differ in body and class (a small or large prompt, model A or B), sent open-loop
//! through lanes side by side, each lane on a server of its own, and what became of each
//! request. Also the chat bodies they send and the warm-up that empties a server's token
//! bucket first.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use tokio::{task::JoinSet, time::Instant};
use tower_reliability::testing::{FireworksServer, ServerConfig};

use super::strategies::Strategy;
use crate::{
    chat::chat_request_with,
    traffic::{
        preset::hyper_client,
        record::{Outcome, RunLog},
        stats::quantile,
    },
};

/// The API key every in-process part's server wants (the one [`chat_request_with`] sends).
pub const API_KEY: &str = "bench-key";

/// A chat body for `model` whose prompt is exactly `prompt_tokens` tokens by the local
/// server's count (4 bytes a token), asking for at most `max_tokens`.
pub fn chat_body(model: &str, prompt_tokens: u64, max_tokens: u64) -> Bytes {
    let content = "tok ".repeat(usize::try_from(prompt_tokens).unwrap_or(0));
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    });
    Bytes::from(body.to_string())
}

/// One request of the mix.
#[derive(Debug, Clone)]
pub struct Job {
    /// When it arrives, seconds from the start.
    pub at: f64,
    pub body: Bytes,
    /// Which kind of request (an index into the part's classes).
    pub class: usize,
    /// What it spends of the limit that binds, in tokens.
    pub cost: u64,
}

/// How one job ended in one lane (times in seconds from the start).
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub class: usize,
    pub cost: u64,
    pub arrived: f64,
    pub finished: f64,
    pub outcome: Outcome,
}

/// A strategy, its log, the classes it is sent (all when `None`) and what became of them.
pub struct MixLane {
    pub name: &'static str,
    pub strategy: Arc<dyn Strategy>,
    pub log: Arc<RunLog>,
    pub classes: Option<Vec<usize>>,
    done: Mutex<Vec<Done>>,
}

impl MixLane {
    /// A lane of every class.
    pub fn new(name: &'static str, strategy: Arc<dyn Strategy>, log: Arc<RunLog>) -> Self {
        MixLane {
            name,
            strategy,
            log,
            classes: None,
            done: Mutex::default(),
        }
    }

    /// The same lane, sent only these classes.
    pub fn only(mut self, classes: &[usize]) -> Self {
        self.classes = Some(classes.to_vec());
        self
    }

    fn takes(&self, class: usize) -> bool {
        self.classes.as_ref().is_none_or(|c| c.contains(&class))
    }

    /// Every ended request so far.
    pub fn done(&self) -> Vec<Done> {
        self.done.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// At each job's time after `start`, sends it through every lane that takes its class, each on
/// its own task bounded by `deadline`; returns when every request has ended.
pub async fn drive(lanes: &[Arc<MixLane>], jobs: &[Job], start: Instant, deadline: Duration) {
    let mut tasks = JoinSet::new();
    for job in jobs {
        tokio::time::sleep_until(start + Duration::from_secs_f64(job.at)).await;
        for lane in lanes.iter().filter(|lane| lane.takes(job.class)) {
            let (lane, request) = (lane.clone(), lane.strategy.send_body(job.body.clone()));
            let (class, cost) = (job.class, job.cost);
            tasks.spawn(async move {
                let arrived = lane.log.now();
                let outcome = tokio::time::timeout(deadline, request)
                    .await
                    .unwrap_or(Outcome::TimedOut);
                lane.log.request(arrived, outcome);
                let finished = lane.log.now();
                if let Ok(mut done) = lane.done.lock() {
                    done.push(Done {
                        class,
                        cost,
                        arrived,
                        finished,
                        outcome,
                    });
                }
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// A latency for a table: with a tenth of a millisecond below 10 ms (the in-process server
/// answers in less than one), else as [`seconds`](super::summary::seconds).
pub fn latency(value: Option<f64>) -> String {
    match value {
        Some(s) if s < 0.01 => format!("{:.1} ms", s * 1000.0),
        other => super::summary::seconds(other),
    }
}

/// What became of one class of requests in one lane.
#[derive(Debug, Clone, Copy)]
pub struct ClassStats {
    pub requests: usize,
    pub served: usize,
    /// Failed or timed out.
    pub lost: usize,
    /// Timed out (the rest of the lost failed: a final error status, a refusal to wait).
    pub timed_out: usize,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl ClassStats {
    /// Summarises the requests of `class` among `done`.
    pub fn of(done: &[Done], class: usize) -> Self {
        let mine: Vec<&Done> = done.iter().filter(|d| d.class == class).collect();
        let latencies: Vec<f64> = mine
            .iter()
            .filter(|d| d.outcome == Outcome::Success)
            .map(|d| d.finished - d.arrived)
            .collect();
        ClassStats {
            requests: mine.len(),
            served: latencies.len(),
            lost: mine.len() - latencies.len(),
            timed_out: mine
                .iter()
                .filter(|d| d.outcome == Outcome::TimedOut)
                .count(),
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
        }
    }
}

/// The cost of the successes of `class` (any when `None`) that ended within `window` seconds
/// of the start, per second.
pub fn served_per_second(done: &[Done], class: Option<usize>, window: f64) -> f64 {
    let cost: u64 = done
        .iter()
        .filter(|d| class.is_none_or(|c| d.class == c))
        .filter(|d| d.outcome == Outcome::Success && d.finished <= window)
        .map(|d| d.cost)
        .sum();
    cost as f64 / window
}

/// The share of a lane's attempts answered 429, and how many attempts it made.
pub fn share_429(log: &RunLog) -> (f64, usize) {
    let attempts = log.attempts();
    let throttled = attempts.iter().filter(|a| a.status == 429).count();
    (
        throttled as f64 / attempts.len().max(1) as f64,
        attempts.len(),
    )
}

/// The cost of the successes among `done`, summed in bins of `bin` seconds from 0 to `end`, per
/// second, as `(bin middle, rate)` points.
pub fn cost_series(done: &[Done], bin: f64, end: f64) -> Vec<(f64, f64)> {
    let bins = (end / bin).ceil().max(1.0) as usize;
    let mut sums = vec![0.0; bins];
    for d in done.iter().filter(|d| d.outcome == Outcome::Success) {
        if d.finished >= 0.0 && d.finished < end {
            sums[((d.finished / bin) as usize).min(bins - 1)] += d.cost as f64;
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, sum)| ((i as f64 + 0.5) * bin, sum / bin))
        .collect()
}

/// One in-process server per lane (`lanes` of them), each started from `config()` with
/// `model`'s bucket (`capacity` tokens) spent first (see [`drain`]).
pub async fn drained_servers(
    lanes: usize,
    config: impl Fn() -> ServerConfig,
    model: &str,
    capacity: u64,
) -> Vec<FireworksServer> {
    let mut servers = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let server = FireworksServer::start(config())
            .await
            .expect("start the in-process server");
        drain(&server, model, capacity).await;
        servers.push(server);
    }
    servers
}

/// Spends `model`'s token bucket on `server` (its size `capacity` tokens) down to less than
/// one small request, outside any lane: the run then starts as after a minute at the limit,
/// instead of on a full minute's allowance. Returns the tokens it spent.
pub async fn drain(server: &FireworksServer, model: &str, capacity: u64) -> u64 {
    let client = hyper_client::<Full<Bytes>>();
    let Ok(uri) = server.chat_url().parse::<http::Uri>() else {
        return 0;
    };
    let (mut size, mut spent) = ((capacity / 8).max(1), 0);
    while size >= 50 {
        let request = chat_request_with(&uri, chat_body(model, size, 1));
        let status = match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                let _ = response.into_body().collect().await;
                status
            }
            Err(_) => return spent,
        };
        if status == StatusCode::OK {
            spent += size + 1;
        } else {
            size /= 2;
        }
    }
    spent
}
