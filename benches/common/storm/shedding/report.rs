//! The shedding part's numbers: per strategy, how many requests were lost, what each success
//! cost in attempts, how long callers waited, and when the last request was done.

use crate::{
    storm::summary::{seconds, wall, Endings},
    traffic::record::{AttemptRecord, Outcome, RequestRecord},
};

/// One strategy against the shedding server.
#[derive(Debug, Clone)]
pub struct ShedRow {
    pub name: &'static str,
    /// How the requests ended (lost: failed + timed out; time to success).
    pub endings: Endings,
    /// All attempts divided by all successes.
    pub attempts_per_success: f64,
    /// Attempts answered 503, as a share of all attempts.
    pub share_503: f64,
    /// Seconds from the first arrival until the last request was done.
    pub wall: Option<f64>,
}

impl ShedRow {
    /// Summarises one strategy's run.
    pub fn new(name: &'static str, attempts: &[AttemptRecord], requests: &[RequestRecord]) -> Self {
        let successes = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Success)
            .count();
        let shed = attempts.iter().filter(|a| a.status == 503).count();
        ShedRow {
            name,
            endings: Endings::of(requests.iter()),
            attempts_per_success: attempts.len() as f64 / successes.max(1) as f64,
            share_503: shed as f64 / attempts.len().max(1) as f64,
            wall: wall(requests),
        }
    }

    /// Requests that failed or timed out.
    pub fn lost(&self) -> usize {
        self.endings.failed + self.endings.timed_out
    }
}

/// Prints the shedding table.
pub fn print_shedding_table(rows: &[ShedRow]) {
    println!("| strategy | requests | lost (failed + timed out) | attempts per success | 503s (of attempts) | p50 to success | p99 to success | wall (last request done) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} ({} + {}) | {:.2} | {:.1} % | {} | {} | {} |",
            row.name,
            row.endings.requests,
            row.lost(),
            row.endings.failed,
            row.endings.timed_out,
            row.attempts_per_success,
            100.0 * row.share_503,
            seconds(row.endings.p50),
            seconds(row.endings.p99),
            seconds(row.wall),
        );
    }
}

/// The targets for our layer in this scenario (`percent`: the share shed).
pub fn print_targets(rows: &[ShedRow], percent: f64) {
    use crate::storm::strategies::Kind;
    let find = |kind: Kind| rows.iter().find(|r| r.name == kind.name());
    let (Some(ours), Some(guide)) = (find(Kind::Fireworks), find(Kind::GuideLoop)) else {
        return;
    };
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let within = |value: Option<f64>, limit: f64| value.is_some_and(|v| v <= limit);
    println!("\nTargets for fireworks::layer:");
    println!(
        "- no more lost than the guide's loop: {} vs {} — {}",
        ours.lost(),
        guide.lost(),
        verdict(ours.lost() <= guide.lost())
    );
    println!(
        "- p50 to success ≤ 0.1 s: {} — {}",
        seconds(ours.endings.p50),
        verdict(within(ours.endings.p50, 0.1))
    );
    println!(
        "- p99 to success ≤ 5 s: {} — {}",
        seconds(ours.endings.p99),
        verdict(within(ours.endings.p99, 5.0))
    );
    // Retrying every 503 until it succeeds costs 1 / (1 - share) attempts per success.
    let floor = 1.0 / (1.0 - percent / 100.0).max(f64::EPSILON);
    println!(
        "- ≤ 1.45 attempts per success: {:.2} (retrying each 503 at once until it succeeds: \
         {floor:.2}) — {}",
        ours.attempts_per_success,
        verdict(ours.attempts_per_success <= 1.45)
    );
}
