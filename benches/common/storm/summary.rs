//! From run logs to the numbers in the tables.

use std::collections::BTreeMap;

use crate::traffic::{
    record::{AttemptRecord, Outcome, RequestRecord},
    stats::quantile,
};

/// A duration for a table: milliseconds below a second, seconds above.
pub fn seconds(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

/// Times to success (seconds) of the successful requests among `requests`.
fn times_to_success<'a>(requests: impl Iterator<Item = &'a RequestRecord>) -> Vec<f64> {
    requests
        .filter(|r| r.outcome == Outcome::Success)
        .map(RequestRecord::latency)
        .collect()
}

/// Seconds from the start until the last of `requests` was done; `None` when there are none.
pub fn wall(requests: &[RequestRecord]) -> Option<f64> {
    requests.iter().map(|r| r.finished).reduce(f64::max)
}

/// How the requests of a table row ended: how many there were, how many of them failed or
/// timed out, and the time to success of the others.
#[derive(Debug, Clone)]
pub struct Endings {
    pub requests: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl Endings {
    /// Summarises `requests`.
    pub fn of<'a>(requests: impl Iterator<Item = &'a RequestRecord> + Clone) -> Self {
        let count = |outcome| requests.clone().filter(|r| r.outcome == outcome).count();
        let latencies = times_to_success(requests.clone());
        Endings {
            requests: requests.clone().count(),
            failed: count(Outcome::Failed),
            timed_out: count(Outcome::TimedOut),
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
        }
    }

    /// The row's cells: failed and timed out (each with its share of the requests), p50 and p99
    /// to success.
    pub fn cells(&self) -> String {
        let share = |n: usize| 100.0 * n as f64 / self.requests.max(1) as f64;
        format!(
            "{} ({:.1} %) | {} ({:.1} %) | {} | {}",
            self.failed,
            share(self.failed),
            self.timed_out,
            share(self.timed_out),
            seconds(self.p50),
            seconds(self.p99),
        )
    }
}

/// One strategy under the rate limiter.
#[derive(Debug, Clone)]
pub struct StormRow {
    pub name: &'static str,
    /// Successes that ended inside the arrival window, per second, divided by the limit.
    pub goodput: f64,
    /// Attempts answered 429, as a share of all attempts.
    pub share_429: f64,
    /// All attempts divided by all successes.
    pub attempts_per_success: f64,
    /// How all the requests ended.
    pub endings: Endings,
}

impl StormRow {
    /// Summarises one strategy's run: arrivals over `window` seconds against `limit` per second.
    pub fn new(
        name: &'static str,
        attempts: &[AttemptRecord],
        requests: &[RequestRecord],
        window: f64,
        limit: f64,
    ) -> Self {
        let successes = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Success)
            .count();
        let in_window = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Success && r.finished <= window)
            .count();
        let throttled = attempts.iter().filter(|a| a.status == 429).count();
        StormRow {
            name,
            goodput: in_window as f64 / window / limit,
            share_429: throttled as f64 / attempts.len().max(1) as f64,
            attempts_per_success: attempts.len() as f64 / successes.max(1) as f64,
            endings: Endings::of(requests.iter()),
        }
    }
}

/// Prints the rate-limiter table.
pub fn print_storm_table(rows: &[StormRow]) {
    println!("| strategy | requests | goodput (of limit) | 429s (of attempts) | attempts per success | failed | timed out | p50 to success | p99 to success |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.1} % | {:.1} % | {:.2} | {} |",
            row.name,
            row.endings.requests,
            100.0 * row.goodput,
            100.0 * row.share_429,
            row.attempts_per_success,
            row.endings.cells(),
        );
    }
}

/// One strategy through the outage.
#[derive(Debug, Clone)]
pub struct OutageRow {
    pub name: &'static str,
    pub requests: usize,
    /// Requests that arrived during the outage.
    pub outage_requests: usize,
    /// Attempts the server saw during the outage.
    pub outage_attempts: u64,
    pub failed: usize,
    pub timed_out: usize,
    /// Seconds from the end of the outage to the start of the first one-second window with
    /// successes at 90 % of the arrival rate or more; `None` if that never happened.
    pub recovery: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Time to success of every request, outage or not.
    pub p50_all: Option<f64>,
    pub p99_all: Option<f64>,
    /// Seconds from the first arrival until the last request was done.
    pub wall: Option<f64>,
}

impl OutageRow {
    /// Attempts per request that arrived during the outage.
    pub fn attempts_per_request(&self) -> f64 {
        self.outage_attempts as f64 / self.outage_requests.max(1) as f64
    }
}

/// Seconds from `recovered_at` to the start of the first one-second window (starting at or
/// after it, in 50 ms steps) holding at least `0.9 * rate` successful completions.
pub fn recovery_time(requests: &[RequestRecord], recovered_at: f64, rate: f64) -> Option<f64> {
    let mut done: Vec<f64> = requests
        .iter()
        .filter(|r| r.outcome == Outcome::Success && r.finished >= recovered_at)
        .map(|r| r.finished)
        .collect();
    done.sort_by(f64::total_cmp);
    let needed = (0.9 * rate).ceil() as usize;
    let last = *done.last()?;
    let mut start = recovered_at;
    while start <= last {
        let from = done.partition_point(|&t| t < start);
        let to = done.partition_point(|&t| t < start + 1.0);
        if to - from >= needed {
            return Some(start - recovered_at);
        }
        start += 0.05;
    }
    None
}

/// Latencies of the successful requests that arrived in `[from, to)`.
pub fn success_latencies(requests: &[RequestRecord], from: f64, to: f64) -> Vec<f64> {
    times_to_success(
        requests
            .iter()
            .filter(|r| r.arrived >= from && r.arrived < to),
    )
}

/// Prints the outage table.
pub fn print_outage_table(rows: &[OutageRow]) {
    println!("| strategy | requests | attempts per request during the outage | lost (failed + timed out) | recovery after the outage | p50 / p99 to success (outage arrivals) | p50 / p99 to success (all) | wall (last request done) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let recovery = row
            .recovery
            .map_or_else(|| "never".to_owned(), |s| format!("{s:.2} s"));
        println!(
            "| {} | {} | {:.3} ({} attempts / {} requests) | {} ({} + {}) | {} | {} / {} | {} / {} | {} |",
            row.name,
            row.requests,
            row.attempts_per_request(),
            row.outage_attempts,
            row.outage_requests,
            row.failed + row.timed_out,
            row.failed,
            row.timed_out,
            recovery,
            seconds(row.p50),
            seconds(row.p99),
            seconds(row.p50_all),
            seconds(row.p99_all),
            seconds(row.wall),
        );
    }
}

/// Prints why requests failed, per strategy (`(name, reason -> count)`).
pub fn print_failure_reasons(rows: &[(&str, BTreeMap<String, u64>)]) {
    println!("\nWhy requests failed (before their deadline):\n");
    for (name, reasons) in rows {
        let list: Vec<String> = reasons
            .iter()
            .map(|(reason, count)| format!("{count} × {reason}"))
            .collect();
        let list = if list.is_empty() {
            "none".to_owned()
        } else {
            list.join("; ")
        };
        println!("- {name}: {list}");
    }
}
