//! A worker's one-line report (JSON on stdout), and the parent's tables built from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{FleetConfig, Mode};
use crate::traffic::{
    record::{AttemptRecord, Outcome, RequestRecord},
    stats::quantile,
};

/// The line prefix that marks a worker's report on its stdout.
pub const REPORT_PREFIX: &str = "FLEET-REPORT ";

/// What one worker process did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    pub worker: usize,
    pub store: String,
    pub offered_rps: f64,
    /// How late the worker was ready for the common start, ms (0: in time).
    pub late_start_ms: f64,
    pub requests: u64,
    pub successes: u64,
    /// Successes that ended inside the arrival window (the goodput's numerator).
    pub successes_in_window: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Why requests failed before their deadline.
    pub failures: BTreeMap<String, u64>,
    pub attempts: u64,
    pub attempts_429: u64,
    /// Attempts without a response (connection errors, abandoned in flight).
    pub attempts_no_response: u64,
    /// Time to success of every successful request, ms.
    pub latencies_ms: Vec<f64>,
    /// One-second bins from the start: successes, 429 answers, attempts.
    pub successes_per_s: Vec<u32>,
    pub throttled_per_s: Vec<u32>,
    pub attempts_per_s: Vec<u32>,
    /// The adaptive rate the gate paced by, mean over each second (`None`: not adapting).
    pub paced_per_s: Vec<Option<f64>>,
    /// For a `RedisStore`: what the process saw of the fleet.
    pub redis: Option<RedisView>,
    /// Set when the worker could not run as asked.
    pub error: Option<String>,
}

/// What a `RedisStore` worker saw of the fleet, sampled every 100 ms from the start to its end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisView {
    pub shared_at_start: bool,
    /// No sample after the start found the store unshared.
    pub stayed_shared: bool,
    pub unshared_samples: u32,
    pub members_at_start: u32,
    pub members_min: u32,
    pub members_max: u32,
}

/// Bins `times` (seconds) into one-second counts over `[0, end)`.
pub fn bins(times: impl Iterator<Item = f64>, end: f64) -> Vec<u32> {
    let mut counts = vec![0u32; end.ceil().max(1.0) as usize];
    for t in times {
        if t >= 0.0 {
            let i = (t.floor() as usize).min(counts.len() - 1);
            counts[i] += 1;
        }
    }
    counts
}

impl WorkerReport {
    /// Fills the counts from a worker's records.
    pub fn fill(
        &mut self,
        attempts: &[AttemptRecord],
        requests: &[RequestRecord],
        failures: BTreeMap<String, u64>,
        window: f64,
    ) {
        let count = |outcome| requests.iter().filter(|r| r.outcome == outcome).count() as u64;
        self.requests = requests.len() as u64;
        self.successes = count(Outcome::Success);
        self.failed = count(Outcome::Failed);
        self.timed_out = count(Outcome::TimedOut);
        self.successes_in_window = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Success && r.finished <= window)
            .count() as u64;
        self.failures = failures;
        self.attempts = attempts.len() as u64;
        self.attempts_429 = attempts.iter().filter(|a| a.status == 429).count() as u64;
        self.attempts_no_response = attempts.iter().filter(|a| a.status == 0).count() as u64;
        self.latencies_ms = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Success)
            .map(|r| (r.latency() * 1000.0 * 10.0).round() / 10.0)
            .collect();
        let end = requests
            .iter()
            .map(|r| r.finished)
            .chain(attempts.iter().map(|a| a.at))
            .fold(window, f64::max);
        let successes = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Success)
            .map(|r| r.finished);
        self.successes_per_s = bins(successes, end);
        self.throttled_per_s = bins(
            attempts.iter().filter(|a| a.status == 429).map(|a| a.at),
            end,
        );
        self.attempts_per_s = bins(attempts.iter().map(|a| a.at), end);
    }

    /// Successes per second inside the window.
    pub fn goodput_rps(&self, window: f64) -> f64 {
        self.successes_in_window as f64 / window
    }

    pub fn share_429(&self) -> f64 {
        self.attempts_429 as f64 / self.attempts.max(1) as f64
    }

    /// The paced rate in the last full second of the window.
    pub fn paced_at_window_end(&self, window: f64) -> Option<f64> {
        let last = (window.ceil() as usize).saturating_sub(1);
        self.paced_per_s.get(last).copied().flatten()
    }
}

/// A duration in ms for a table: milliseconds below a second, seconds above.
fn millis(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) => format!("{:.2} s", ms / 1000.0),
    }
}

/// One mode's run: its workers' reports (or why it did not run).
#[derive(Debug, Clone)]
pub struct ModeRun {
    pub mode: Mode,
    pub workers: Vec<WorkerReport>,
}

impl ModeRun {
    fn sum(&self, pick: impl Fn(&WorkerReport) -> u64) -> u64 {
        self.workers.iter().map(pick).sum()
    }

    /// The fleet's successes per second inside the window, as a fraction of the limit.
    pub fn goodput(&self, config: &FleetConfig) -> f64 {
        let window = config.window.as_secs_f64();
        self.sum(|w| w.successes_in_window) as f64 / window / config.limit_rps
    }

    pub fn share_429(&self) -> f64 {
        self.sum(|w| w.attempts_429) as f64 / self.sum(|w| w.attempts).max(1) as f64
    }

    pub fn attempts_per_success(&self) -> f64 {
        self.sum(|w| w.attempts) as f64 / self.sum(|w| w.successes).max(1) as f64
    }

    fn latencies(&self) -> Vec<f64> {
        self.workers
            .iter()
            .flat_map(|w| w.latencies_ms.iter().copied())
            .collect()
    }

    /// Adds up the workers' per-second series.
    fn series(&self, pick: impl Fn(&WorkerReport) -> &Vec<u32>) -> Vec<u32> {
        let len = self
            .workers
            .iter()
            .map(|w| pick(w).len())
            .max()
            .unwrap_or(0);
        let mut total = vec![0u32; len];
        for worker in &self.workers {
            for (slot, value) in total.iter_mut().zip(pick(worker)) {
                *slot += value;
            }
        }
        total
    }

    /// The fleet's paced rate per second: the sum over the workers that were adapting.
    fn paced_series(&self) -> Vec<Option<f64>> {
        let len = self
            .workers
            .iter()
            .map(|w| w.paced_per_s.len())
            .max()
            .unwrap_or(0);
        (0..len)
            .map(|i| {
                let rates: Vec<f64> = self
                    .workers
                    .iter()
                    .filter_map(|w| w.paced_per_s.get(i).copied().flatten())
                    .collect();
                (!rates.is_empty()).then(|| rates.iter().sum())
            })
            .collect()
    }
}

/// The main table: one row per mode.
pub fn print_fleet_table(config: &FleetConfig, runs: &[ModeRun]) {
    println!("| mode | processes | requests | goodput (of limit) | 429s (of attempts) | attempts per success | failed or timed out | p50 / p99 to success |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for run in runs {
        let requests = run.sum(|w| w.requests);
        let failed = run.sum(|w| w.failed);
        let timed_out = run.sum(|w| w.timed_out);
        let latencies = run.latencies();
        println!(
            "| {} | {} | {} | {:.1} % | {:.1} % | {:.2} | {:.1} % ({} failed, {} timed out) | {} / {} |",
            run.mode.name(),
            run.workers.len(),
            requests,
            100.0 * run.goodput(config),
            100.0 * run.share_429(),
            run.attempts_per_success(),
            100.0 * (failed + timed_out) as f64 / requests.max(1) as f64,
            failed,
            timed_out,
            millis(quantile(&latencies, 0.5)),
            millis(quantile(&latencies, 0.99)),
        );
    }
}

/// Per worker: goodput (fairness), 429 share, the paced rate it ended the window on.
pub fn print_worker_table(config: &FleetConfig, runs: &[ModeRun]) {
    let window = config.window.as_secs_f64();
    println!("| mode | successes/s per process | slowest / fastest | 429s per process | paced rate at the window's end, per process (sum) | fleet seen through Redis |");
    println!("|---|---|---:|---|---|---|");
    for run in runs {
        let goodputs: Vec<f64> = run.workers.iter().map(|w| w.goodput_rps(window)).collect();
        let (min, max) = goodputs
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &g| {
                (lo.min(g), hi.max(g))
            });
        let list = |values: Vec<String>| values.join(" / ");
        let paced: Vec<Option<f64>> = run
            .workers
            .iter()
            .map(|w| w.paced_at_window_end(window))
            .collect();
        let paced_sum: f64 = paced.iter().flatten().sum();
        let paced_text = if paced.iter().all(Option::is_none) {
            "not adapting".to_owned()
        } else {
            format!(
                "{} ({paced_sum:.1})",
                list(
                    paced
                        .iter()
                        .map(|p| p.map_or_else(|| "–".to_owned(), |r| format!("{r:.1}")))
                        .collect()
                )
            )
        };
        let fleet = redis_view_text(run);
        println!(
            "| {} | {} | {:.2} | {} | {} | {} |",
            run.mode.slug(),
            list(goodputs.iter().map(|g| format!("{g:.1}")).collect()),
            if max > 0.0 { min / max } else { 0.0 },
            list(
                run.workers
                    .iter()
                    .map(|w| format!("{:.1} %", 100.0 * w.share_429()))
                    .collect()
            ),
            paced_text,
            fleet,
        );
    }
}

fn redis_view_text(run: &ModeRun) -> String {
    let views: Vec<&RedisView> = run
        .workers
        .iter()
        .filter_map(|w| w.redis.as_ref())
        .collect();
    if views.is_empty() {
        return "–".to_owned();
    }
    let members_min = views.iter().map(|v| v.members_min).min().unwrap_or(0);
    let members_max = views.iter().map(|v| v.members_max).max().unwrap_or(0);
    let at_start: Vec<String> = views
        .iter()
        .map(|v| v.members_at_start.to_string())
        .collect();
    let all_shared = views.iter().all(|v| v.stayed_shared && v.shared_at_start);
    let unshared: u32 = views.iter().map(|v| v.unshared_samples).sum();
    format!(
        "members {members_min}–{members_max} (at start {}); {}",
        at_start.join("/"),
        if all_shared {
            "shared throughout".to_owned()
        } else {
            format!("NOT shared in {unshared} samples of 100 ms")
        }
    )
}

/// The fleet's successes, 429s and summed paced rate, second by second.
pub fn print_timelines(config: &FleetConfig, runs: &[ModeRun]) {
    let window = config.window.as_secs_f64().ceil() as usize;
    for run in runs {
        let successes = run.series(|w| &w.successes_per_s);
        let throttled = run.series(|w| &w.throttled_per_s);
        let paced = run.paced_series();
        let join = |values: Vec<String>| values.join(" ");
        println!(
            "- `{}`, second by second (the window is {window} s):",
            run.mode.slug()
        );
        println!(
            "  - successes: {}",
            join(successes.iter().map(u32::to_string).collect())
        );
        println!(
            "  - 429s: {}",
            join(throttled.iter().map(u32::to_string).collect())
        );
        if paced.iter().any(Option::is_some) {
            println!(
                "  - summed paced rate: {}",
                join(
                    paced
                        .iter()
                        .map(|p| p.map_or_else(|| "–".to_owned(), |r| format!("{r:.0}")))
                        .collect()
                )
            );
        }
    }
}

/// Why requests failed, per mode (summed over the workers).
pub fn print_failure_reasons(runs: &[ModeRun]) {
    for run in runs {
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for worker in &run.workers {
            for (reason, count) in &worker.failures {
                *reasons.entry(reason.clone()).or_insert(0) += count;
            }
        }
        let no_response = run.sum(|w| w.attempts_no_response);
        let mut list: Vec<String> = reasons
            .iter()
            .map(|(reason, count)| format!("{count} × {reason}"))
            .collect();
        if list.is_empty() {
            list.push("none".to_owned());
        }
        let late = run
            .workers
            .iter()
            .map(|w| w.late_start_ms)
            .fold(0.0f64, f64::max);
        println!(
            "- `{}`: {}; attempts without a response: {no_response}{}",
            run.mode.slug(),
            list.join("; "),
            if late > 50.0 {
                format!("; a worker started {late:.0} ms late")
            } else {
                String::new()
            }
        );
    }
}
