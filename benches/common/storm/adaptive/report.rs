//! The adaptive part's tables: each lane per phase, then how each came down to the new limit
//! after the halving; then why requests failed, the per-second lines and the plot.

use super::{
    lanes::Running,
    learned::{learned, Sample},
    phases::{attempts_in, phase_row, settling, share_429, OVER},
    timeline::{plot, print_learned},
};
use crate::storm::{config::StormConfig, summary::print_failure_reasons};

/// How long after the halving the 429 share is measured (or to the end of the arrivals).
const AFTER_HALVING: f64 = 10.0;

/// The bar: goodput at least this share of the limit...
const GOODPUT_TARGET: f64 = 0.9;
/// ...with at most this share of the attempts answered 429.
const SHARE_429_TARGET: f64 = 0.1;

/// Prints the tables of a run whose limit went from `first` to `second` at `halved` (seconds
/// since the start), with arrivals until `end`.
pub fn report(
    config: &StormConfig,
    running: &[Running],
    samples: &[Sample],
    halved: f64,
    (first, second): (f64, f64),
    end: f64,
) {
    let phase = config.adaptive_phase.as_secs_f64();
    println!(
        "Limit halved at {halved:.2} s (the reload done). Phase 1: [0, {halved:.1} s) at \
         {first:.0} r/s; phase 2: [{halved:.1}, {end:.0} s) at {second:.0} r/s. Goodput: \
         successes that ended in the phase, per second, over the phase's limit; sent and 429s: \
         attempts in the phase (by when they were answered); failed, timed out and time to \
         success: requests that arrived in the phase. Target: goodput ≥ {:.0} % with ≤ {:.0} % \
         of attempts answered 429.\n",
        100.0 * GOODPUT_TARGET,
        100.0 * SHARE_429_TARGET
    );
    println!("| lane | phase | goodput (of limit) | sent per s | 429s (of attempts) | target | failed | timed out | p50 to success | p99 to success | learned rate: mean (min–max) |");
    println!("|---|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|");
    let mut gated = 0;
    let mut learned_by_lane = Vec::new();
    for r in running {
        let (attempts, requests) = (r.lane.log.attempts(), r.lane.log.requests());
        let rates = if r.store.is_some() {
            gated += 1;
            learned(samples, gated - 1)
        } else {
            Vec::new()
        };
        let phases = [
            ("1", first, (0.0, halved), (0.0, phase)),
            ("2", second, (halved, end), (phase, end)),
        ];
        for (label, limit, window, arrived) in phases {
            let row = phase_row(&attempts, &requests, &rates, window, arrived, limit);
            let target = if row.goodput >= GOODPUT_TARGET && row.share_429 <= SHARE_429_TARGET {
                "✓"
            } else {
                "✗"
            };
            let learned = row.learned.map_or_else(
                || "–".to_owned(),
                |(mean, low, high)| format!("{mean:.1} ({low:.1}–{high:.1})"),
            );
            println!(
                "| {} | {label}: {limit:.0} r/s | {:.1} % | {:.1} | {:.1} % | {target} | {} | {learned} |",
                r.contender.name(),
                100.0 * row.goodput,
                row.sent,
                100.0 * row.share_429,
                row.endings.cells(),
            );
        }
        learned_by_lane.push(rates);
    }

    let after = (halved + AFTER_HALVING).min(end);
    println!(
        "\nAfter the halving, over one-second windows from it ([{halved:.1}, {:.1}), \
         [{:.1}, {:.1}), ... to {end:.0} s), counting every attempt sent; a window is *under* \
         when it holds at most {OVER} × {second:.0} = {:.0} attempts. *Back under from*: seconds \
         from the halving to the start of the first window under; *stays under from*: to the \
         start of the first window from which on every window is under (*never*: the last one \
         is over); then how many windows after the first one under are over, and the highest \
         count. 429s and sent per s over [{halved:.1}, {after:.1}) s.\n",
        halved + 1.0,
        halved + 1.0,
        halved + 2.0,
        OVER * second
    );
    println!("| lane | back under from | stays under from | windows over afterwards | most sent in a window afterwards | 429s (of attempts) | sent per s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in running {
        let attempts = r.lane.log.attempts();
        let settled = settling(&attempts, halved, end, second);
        let secs = |s: Option<usize>| s.map_or_else(|| "never".to_owned(), |s| format!("{s} s"));
        let (afterwards, highest) = match settled.first_under {
            Some(_) => (
                format!("{} of {}", settled.over_after.0, settled.over_after.1),
                settled.highest_after.to_string(),
            ),
            None => ("–".to_owned(), "–".to_owned()),
        };
        println!(
            "| {} | {} | {} | {afterwards} | {highest} | {:.1} % | {:.1} |",
            r.contender.name(),
            secs(settled.first_under),
            secs(settled.stays_under),
            100.0 * share_429(&attempts, halved, after),
            attempts_in(&attempts, halved, after).count() as f64 / (after - halved).max(1e-9),
        );
    }
    let reasons: Vec<_> = running
        .iter()
        .map(|r| (r.contender.name(), r.lane.log.failures()))
        .collect();
    print_failure_reasons(&reasons);
    print_learned(running, &learned_by_lane, end);
    plot(config, running, &learned_by_lane, halved, (first, second));
}
