//! The numbers of one lane: over a phase (goodput, attempts, 429s, failures, time to success,
//! the learned rate), and how its sent rate came down after the halving.

use crate::{
    storm::summary::Endings,
    traffic::record::{AttemptRecord, Outcome, RequestRecord},
};

/// After the halving, a one-second window with more attempts than this × the new limit is
/// "over the limit" (nginx's burst and timer jitter allow a little more than the rate).
pub const OVER: f64 = 1.1;

/// One lane in one phase.
#[derive(Debug, Clone)]
pub struct PhaseRow {
    /// Successes that ended in the phase, per second, divided by the phase's limit.
    pub goodput: f64,
    /// Attempts in the phase, per second.
    pub sent: f64,
    /// Attempts in the phase answered 429, as a share of the phase's attempts.
    pub share_429: f64,
    /// How the requests that arrived in the phase ended.
    pub endings: Endings,
    /// The learned rate over the phase: mean, lowest, highest (of the 250 ms samples).
    pub learned: Option<(f64, f64, f64)>,
}

/// Attempts (by when their answer came) in `[from, to)`.
pub fn attempts_in(
    attempts: &[AttemptRecord],
    from: f64,
    to: f64,
) -> impl Iterator<Item = &AttemptRecord> {
    attempts.iter().filter(move |a| a.at >= from && a.at < to)
}

/// The share of the attempts in `[from, to)` answered 429.
pub fn share_429(attempts: &[AttemptRecord], from: f64, to: f64) -> f64 {
    let (mut all, mut throttled) = (0usize, 0usize);
    for attempt in attempts_in(attempts, from, to) {
        all += 1;
        throttled += usize::from(attempt.status == 429);
    }
    throttled as f64 / all.max(1) as f64
}

/// Summarises one lane over a phase: server-side counts (attempts, successes by the time they
/// ended) over `[from, to)`, requests by arrival over `[arrived_from, arrived_to)`.
#[allow(clippy::too_many_arguments)]
pub fn phase_row(
    attempts: &[AttemptRecord],
    requests: &[RequestRecord],
    learned: &[(f64, Option<f64>)],
    (from, to): (f64, f64),
    (arrived_from, arrived_to): (f64, f64),
    limit: f64,
) -> PhaseRow {
    let length = (to - from).max(1e-9);
    let successes = requests
        .iter()
        .filter(|r| r.outcome == Outcome::Success && r.finished >= from && r.finished < to)
        .count();
    let arrived = requests
        .iter()
        .filter(|r| r.arrived >= arrived_from && r.arrived < arrived_to);
    let rates: Vec<f64> = learned
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .filter_map(|(_, rate)| *rate)
        .collect();
    let learned = (!rates.is_empty()).then(|| {
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let high = rates.iter().copied().fold(0.0, f64::max);
        (mean, low, high)
    });
    PhaseRow {
        goodput: successes as f64 / length / limit,
        sent: attempts_in(attempts, from, to).count() as f64 / length,
        share_429: share_429(attempts, from, to),
        endings: Endings::of(arrived),
        learned,
    }
}

/// How the sent rate came down to a new limit: over consecutive one-second windows from the
/// halving (`[h, h + 1)`, `[h + 1, h + 2)`, ... up to the end of the arrivals), counting every
/// attempt sent (by when its answer came: a few ms after sending, on loopback). A window is
/// *under* when it holds at most `OVER × limit` attempts.
#[derive(Debug, Clone, Copy)]
pub struct Settling {
    /// Seconds from the halving to the start of the first window under.
    pub first_under: Option<usize>,
    /// Seconds from the halving to the start of the first window from which on every window
    /// is under (`None`: the last window is over).
    pub stays_under: Option<usize>,
    /// Windows over after the first one under, and how many windows that is.
    pub over_after: (usize, usize),
    /// The most attempts in one window after the first one under.
    pub highest_after: usize,
}

pub fn settling(attempts: &[AttemptRecord], halved: f64, end: f64, limit: f64) -> Settling {
    let windows = (end - halved).floor().max(0.0) as usize;
    let mut counts = vec![0usize; windows];
    for attempt in attempts {
        let k = (attempt.at - halved).floor();
        if k >= 0.0 && (k as usize) < windows {
            counts[k as usize] += 1;
        }
    }
    let under = |c: usize| c as f64 <= OVER * limit;
    let first_under = counts.iter().position(|&c| under(c));
    let stays_under = match counts.iter().rposition(|&c| !under(c)) {
        None => Some(0),
        Some(k) if k + 1 < windows => Some(k + 1),
        Some(_) => None,
    };
    let after = first_under.map_or(&[][..], |k| &counts[k + 1..]);
    Settling {
        first_under,
        stays_under,
        over_after: (after.iter().filter(|&&c| !under(c)).count(), after.len()),
        highest_after: after.iter().copied().max().unwrap_or(0),
    }
}
