//! Adaptation to a limit that is not known and that moves: nginx `limit_req` answering 429
//! without any hint, at a limit that is not the gate's fixed release pace, halved mid-run.
//!
//! The lanes run side by side on the same Poisson arrivals, each on its own nginx bucket (the
//! `adaptive` zone of `scripts/nginx.sh`, keyed by path): `fireworks::layer` with the gate's
//! adaptive rate set to CUBIC (the default), to AIMD, and off (the gate alone: a 429 closes it
//! for 100 ms, doubling, and held requests leave at the fixed `release_spacing`, 50/s), and,
//! for context, the other three strategies of the storm.
//!
//! The limit is `STORM_ADAPTIVE_RATE` (40 r/s) for one phase, then half of it for another; the
//! offered load stays at `STORM_OFFERED_FACTOR` × the first limit (80/s) throughout, so demand
//! does not fall when the server halves what it allows (the second phase is 4× overloaded).
//! 40, not the storm's 50: 50/s is exactly the gate's fixed release pace, which would let a
//! client that does not adapt look as if it did. The limit is halved by rewriting the zone's
//! rate and reloading nginx (`scripts/nginx.sh set-rate`): a reload keeps the zone's buckets
//! and applies the new rate at once.

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::time::{Instant, MissedTickBehavior};
use tower::{Layer, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{GateConfig, LocalStore, RateControl, RateLimitAware},
    retry::ReplayBody,
    ErrorKind, RetryReport, TimeoutByWorkload, TimeoutPhase, TimeoutProfile, Workload,
};

use super::{
    config::StormConfig,
    load::{drive, poisson_arrivals, Lane},
    plot::{rate_series, write_svg, Panel, Series},
    record::{AttemptRecord, CountAttempts, Outcome, RequestRecord, RunLog},
    strategies::{Kind, PendingOutcome, Strategy},
    summary::{print_failure_reasons, quantile, success_latencies},
};
use crate::chat::{chat_request, drain_body};

/// The nginx zone of this part (see `scripts/nginx.sh`).
const ZONE: &str = "adaptive";

/// How often the learned rate is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// After the halving, a one-second window with more attempts than this × the new limit is
/// "over the limit" (nginx's burst and timer jitter allow a little more than the rate).
const OVER: f64 = 1.1;

/// How long after the halving the 429 share is measured (or to the end of the arrivals).
const AFTER_HALVING: f64 = 10.0;

/// The issue's bar: goodput at least this share of the limit...
const GOODPUT_TARGET: f64 = 0.9;
/// ...with at most this share of the attempts answered 429.
const SHARE_429_TARGET: f64 = 0.1;

/// One lane of this part.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Contender {
    /// `fireworks::layer` with this rate control in its gate.
    Gate(Control),
    /// Another strategy of the storm.
    Peer(Kind),
}

/// The gate's rate controls compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Cubic,
    Aimd,
    Off,
}

impl Control {
    fn rate_control(self) -> RateControl {
        match self {
            Control::Cubic => RateControl::CUBIC,
            Control::Aimd => RateControl::AIMD,
            Control::Off => RateControl::Off,
        }
    }
}

impl Contender {
    fn all(peers: bool) -> Vec<Contender> {
        let mut all = vec![
            Contender::Gate(Control::Cubic),
            Contender::Gate(Control::Aimd),
            Contender::Gate(Control::Off),
        ];
        if peers {
            all.extend(
                Kind::ALL
                    .iter()
                    .filter(|&&kind| kind != Kind::Fireworks)
                    .map(|&kind| Contender::Peer(kind)),
            );
        }
        all
    }

    fn name(self) -> &'static str {
        match self {
            Contender::Gate(Control::Cubic) => "fireworks::layer, CUBIC (default)",
            Contender::Gate(Control::Aimd) => "fireworks::layer, AIMD",
            Contender::Gate(Control::Off) => "fireworks::layer, rate control off",
            Contender::Peer(kind) => kind.name(),
        }
    }

    /// A short name for the plot's legend.
    fn short(self) -> &'static str {
        match self {
            Contender::Gate(Control::Cubic) => "CUBIC",
            Contender::Gate(Control::Aimd) => "AIMD",
            Contender::Gate(Control::Off) => "rate control off",
            Contender::Peer(kind) => kind.name(),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Contender::Gate(Control::Cubic) => "cubic",
            Contender::Gate(Control::Aimd) => "aimd",
            Contender::Gate(Control::Off) => "off",
            Contender::Peer(kind) => kind.slug(),
        }
    }
}

/// A lane and, for the gated ones, the store whose learned rate is sampled.
struct Running {
    contender: Contender,
    lane: Lane,
    store: Option<Arc<LocalStore>>,
}

fn hyper_client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// `fireworks::layer(Workload::Interactive)` with its total deadline set to the run's and its
/// gate on `store` (the same as the storm's `Kind::Fireworks`, with the gate swapped).
struct Gated {
    service:
        fireworks::FireworksService<CountAttempts<Client<HttpConnector, ReplayBody<Full<Bytes>>>>>,
    uri: Uri,
    log: Arc<RunLog>,
}

impl Gated {
    fn build(url: &str, deadline: Duration, log: Arc<RunLog>, store: Arc<LocalStore>) -> Self {
        let interactive = Workload::Interactive;
        let timeouts = TimeoutByWorkload::new(interactive).profile(
            interactive,
            TimeoutProfile::new(deadline).with_idle_read(Duration::from_secs(30)),
        );
        let layer = fireworks::layer(interactive)
            .timeouts(timeouts)
            .rate_limit(RateLimitAware::with_store(store));
        Gated {
            service: layer.layer(CountAttempts::new(hyper_client(), log.clone())),
            uri: url.parse().expect("a valid URL"),
            log,
        }
    }
}

fn failed(log: &RunLog, reason: String) -> Outcome {
    log.failure(reason);
    Outcome::Failed
}

impl Strategy for Gated {
    fn send(&self) -> PendingOutcome {
        let (service, uri, log) = (self.service.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            match service.oneshot(chat_request(&uri)).await {
                Ok(response) => {
                    let status = response.status();
                    let stopped = response
                        .extensions()
                        .get::<RetryReport>()
                        .and_then(|report| report.stopped)
                        .map_or_else(String::new, |reason| format!(", {reason:?}"));
                    let read = drain_body(response.into_body()).await;
                    match (status.is_success(), read) {
                        (true, Ok(_)) => Outcome::Success,
                        (true, Err(_)) => failed(&log, "response body broke off".to_owned()),
                        (false, _) => failed(&log, format!("final {}{stopped}", status.as_u16())),
                    }
                }
                Err(error) => match error.kind() {
                    ErrorKind::Timeout(TimeoutPhase::Deadline) => Outcome::TimedOut,
                    ErrorKind::RateLimited { .. } => failed(
                        &log,
                        "refused: the rate-limit gate's wait would pass the deadline".to_owned(),
                    ),
                    kind => failed(&log, format!("error {kind:?}: {error}")),
                },
            }
        })
    }
}

/// Sets the rate of the `adaptive` zone of the nginx in `dir` and waits for the reload.
fn set_rate(dir: &Path, rate: f64) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nginx.sh");
    let output = Command::new(script)
        .arg("set-rate")
        .arg(dir)
        .arg(format!("{rate:.0}"))
        .arg(ZONE)
        .output()
        .map_err(|error| format!("cannot run {script}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{script} set-rate failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The burst of the `adaptive` zone, read from the running configuration (0: none).
fn burst(dir: &Path) -> Option<u32> {
    let config = std::fs::read_to_string(dir.join("nginx.conf")).ok()?;
    let rest = config
        .split(&format!("limit_req zone={ZONE}"))
        .nth(1)?
        .trim_start();
    if rest.starts_with(';') {
        return Some(0);
    }
    let digits = rest.strip_prefix("burst=")?;
    digits
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A lane's learned rate over time: `(seconds since the start, rate)`, `None` while not
/// adapting.
type Learned = Vec<(f64, Option<f64>)>;

/// One sample of the learned rates, per gated lane (in lane order; `None`: not adapting).
#[derive(Debug, Clone)]
struct Sample {
    at: f64,
    rates: Vec<Option<f64>>,
}

/// One lane in one phase.
#[derive(Debug, Clone)]
struct PhaseRow {
    /// Successes that ended in the phase, per second, divided by the phase's limit.
    goodput: f64,
    /// Attempts in the phase, per second.
    sent: f64,
    /// Attempts in the phase answered 429, as a share of the phase's attempts.
    share_429: f64,
    /// Requests that arrived in the phase, and how many of them failed or timed out.
    requests: usize,
    failed: usize,
    timed_out: usize,
    p50: Option<f64>,
    p99: Option<f64>,
    /// The learned rate over the phase: mean, lowest, highest (of the 250 ms samples).
    learned: Option<(f64, f64, f64)>,
}

/// Attempts (by when their answer came) in `[from, to)`.
fn attempts_in(
    attempts: &[AttemptRecord],
    from: f64,
    to: f64,
) -> impl Iterator<Item = &AttemptRecord> {
    attempts.iter().filter(move |a| a.at >= from && a.at < to)
}

/// The share of the attempts in `[from, to)` answered 429.
fn share_429(attempts: &[AttemptRecord], from: f64, to: f64) -> f64 {
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
fn phase_row(
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
    let arrived: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.arrived >= arrived_from && r.arrived < arrived_to)
        .collect();
    let count = |outcome| arrived.iter().filter(|r| r.outcome == outcome).count();
    let latencies = success_latencies(requests, arrived_from, arrived_to);
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
        requests: arrived.len(),
        failed: count(Outcome::Failed),
        timed_out: count(Outcome::TimedOut),
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        learned,
    }
}

/// How the sent rate came down to a new limit: over consecutive one-second windows from the
/// halving (`[h, h + 1)`, `[h + 1, h + 2)`, ... up to the end of the arrivals), counting every
/// attempt sent (by when its answer came: a few ms after sending, on loopback). A window is
/// *under* when it holds at most `OVER × limit` attempts.
#[derive(Debug, Clone, Copy)]
struct Settling {
    /// Seconds from the halving to the start of the first window under.
    first_under: Option<usize>,
    /// Seconds from the halving to the start of the first window from which on every window
    /// is under (`None`: the last window is over).
    stays_under: Option<usize>,
    /// Windows over after the first one under, and how many windows that is.
    over_after: (usize, usize),
    /// The most attempts in one window after the first one under.
    highest_after: usize,
}

fn settling(attempts: &[AttemptRecord], halved: f64, end: f64, limit: f64) -> Settling {
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

/// A duration for a table: milliseconds below a second, seconds above.
fn seconds(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

/// Runs this part against the nginx at `base`, whose directory is `dir`.
pub async fn run(config: &StormConfig, base: &str, dir: &Path) {
    let first = config.adaptive_rps;
    let second = (first / 2.0).round();
    let phase = config.adaptive_phase.as_secs_f64();
    let offered = first * config.offered_factor;
    if let Err(error) = set_rate(dir, first) {
        println!("\nSkipping the adaptive part: {error}");
        return;
    }
    let burst = burst(dir).map_or_else(|| "?".to_owned(), |b| b.to_string());
    let arrivals = poisson_arrivals(offered, 2 * config.adaptive_phase, config.seed);
    println!(
        "\n## Adaptive rate: nginx `limit_req` {first:.0} → {second:.0} r/s (halved mid-run), \
         burst {burst} nodelay, 429 without any hint\n"
    );
    println!(
        "{} requests per lane in 2 × {phase:.0} s (Poisson, {offered:.0}/s throughout: \
         {:.1} × the first limit, {:.1} × the second), deadline {:.0} s each; lanes run side \
         by side, each on its own nginx bucket. The limit is halved at {phase:.0} s by \
         rewriting the zone's rate and reloading nginx.\n",
        arrivals.len(),
        offered / first,
        offered / second,
        config.deadline.as_secs_f64()
    );

    let start = Instant::now() + Duration::from_millis(200);
    let running: Vec<Running> = Contender::all(config.adaptive_peers)
        .into_iter()
        .map(|contender| {
            let log = RunLog::new(start);
            let url = format!("{base}/nohint/{ZONE}/{}", contender.slug());
            let (strategy, store): (Arc<dyn Strategy>, _) = match contender {
                Contender::Gate(control) => {
                    let store = Arc::new(LocalStore::new(GateConfig {
                        rate_control: control.rate_control(),
                        ..GateConfig::default()
                    }));
                    let gated = Gated::build(&url, config.deadline, log.clone(), store.clone());
                    (Arc::new(gated), Some(store))
                }
                Contender::Peer(kind) => (kind.build(&url, config.deadline, log.clone()), None),
            };
            Running {
                contender,
                lane: Lane { strategy, log },
                store,
            }
        })
        .collect();

    // The learned rates, every 250 ms, until every request has ended.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stores: Vec<Arc<LocalStore>> = running.iter().filter_map(|r| r.store.clone()).collect();
    let sampler = tokio::spawn({
        let samples = samples.clone();
        async move {
            let mut tick = tokio::time::interval_at(start, SAMPLE_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                let now = tick.tick().await;
                let sample = Sample {
                    at: now.saturating_duration_since(start).as_secs_f64(),
                    rates: stores
                        .iter()
                        .map(|s| s.paced_rate(Instant::now()))
                        .collect(),
                };
                if let Ok(mut samples) = samples.lock() {
                    samples.push(sample);
                }
            }
        }
    });
    // The halving, once the first phase's arrivals are over: `halved` is when the reload is
    // done (the new worker runs), seconds since the start.
    let halving = tokio::spawn({
        let dir = dir.to_owned();
        let at = start + config.adaptive_phase;
        async move {
            tokio::time::sleep_until(at).await;
            let done = tokio::task::spawn_blocking(move || set_rate(&dir, second)).await;
            let halved = Instant::now()
                .saturating_duration_since(start)
                .as_secs_f64();
            done.map_err(|error| format!("set-rate panicked: {error}"))?
                .map(|()| halved)
        }
    });
    let lanes: Vec<Lane> = running
        .iter()
        .map(|r| Lane {
            strategy: r.lane.strategy.clone(),
            log: r.lane.log.clone(),
        })
        .collect();
    drive(&lanes, &arrivals, start, config.deadline).await;
    sampler.abort();
    let halved = match halving
        .await
        .map_err(|error| error.to_string())
        .and_then(|h| h)
    {
        Ok(halved) => halved,
        Err(error) => {
            println!("The limit could not be halved: {error}. No table.");
            return;
        }
    };
    // Leave nginx as it started.
    if let Err(error) = set_rate(dir, first) {
        eprintln!("storm: could not restore the adaptive zone's rate: {error}");
    }
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let end = 2.0 * phase;
    report(config, &running, &samples, halved, (first, second), end);
}

/// The learned rate of lane `index` among the gated ones, over time.
fn learned(samples: &[Sample], index: usize) -> Learned {
    samples
        .iter()
        .map(|s| (s.at, s.rates.get(index).copied().flatten()))
        .collect()
}

fn report(
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
            let share = |n: usize| 100.0 * n as f64 / row.requests.max(1) as f64;
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
                "| {} | {label}: {limit:.0} r/s | {:.1} % | {:.1} | {:.1} % | {target} | {} ({:.1} %) | {} ({:.1} %) | {} | {} | {learned} |",
                r.contender.name(),
                100.0 * row.goodput,
                row.sent,
                100.0 * row.share_429,
                row.failed,
                share(row.failed),
                row.timed_out,
                share(row.timed_out),
                seconds(row.p50),
                seconds(row.p99),
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

/// Ten numbers to a line, each line headed by the second of its first number.
fn print_rows(label: &str, cells: &[String]) {
    println!("{label}:");
    for (row, chunk) in cells.chunks(10).enumerate() {
        println!("  {:>3} s: {}", 10 * row, chunk.join(" "));
    }
}

/// For the `fireworks::layer` lanes, per second: the learned rate at each whole second and the
/// attempts sent in each second.
fn print_learned(running: &[Running], learned: &[Learned], end: f64) {
    println!(
        "\nPer second since the start, for the `fireworks::layer` lanes: the learned rate \
         (`LocalStore::paced_rate`, r/s) at each whole second (– : not adapting), and the \
         attempts sent in each second.\n"
    );
    println!("```text");
    let seconds = end.ceil() as usize;
    for (r, rates) in running.iter().zip(learned) {
        let Contender::Gate(control) = r.contender else {
            continue;
        };
        if control != Control::Off {
            let cells: Vec<String> = (0..seconds)
                .map(|s| {
                    rates
                        .iter()
                        .find(|(at, _)| *at >= s as f64 - 1e-6)
                        .and_then(|(_, rate)| *rate)
                        .map_or_else(|| format!("{:>5}", "–"), |rate| format!("{rate:>5.1}"))
                })
                .collect();
            print_rows(&format!("{}, learned rate", r.contender.short()), &cells);
        }
        let mut sent = vec![0u32; seconds];
        for attempt in r.lane.log.attempts() {
            if attempt.at >= 0.0 && (attempt.at as usize) < seconds {
                sent[attempt.at as usize] += 1;
            }
        }
        let cells: Vec<String> = sent.iter().map(|n| format!("{n:>5}")).collect();
        print_rows(&format!("{}, attempts sent", r.contender.short()), &cells);
    }
    println!("```");
}

fn plot(
    config: &StormConfig,
    running: &[Running],
    learned: &[Learned],
    halved: f64,
    (first, second): (f64, f64),
) {
    let end = running
        .iter()
        .flat_map(|r| r.lane.log.requests())
        .map(|r| r.finished)
        .fold(2.0 * config.adaptive_phase.as_secs_f64(), f64::max)
        .ceil();
    let bin = if config.adaptive_phase >= Duration::from_secs(20) {
        1.0
    } else {
        0.5
    };
    // The limit is the first line of every panel, so each lane keeps its colour throughout.
    let limit = || Series {
        name: "nginx limit",
        points: vec![
            (0.0, first),
            (halved, first),
            (halved, second),
            (end, second),
        ],
    };
    let gated: Vec<(&Running, &Learned)> = running
        .iter()
        .zip(learned)
        .filter(|(r, _)| r.store.is_some())
        .collect();
    let series = |pick: &dyn Fn(&Running) -> Vec<f64>| {
        std::iter::once(limit())
            .chain(gated.iter().map(|(r, _)| Series {
                name: r.contender.short(),
                points: rate_series(pick(r).into_iter(), bin, end),
            }))
            .collect::<Vec<_>>()
    };
    let successes = series(&|r| {
        r.lane
            .log
            .requests()
            .iter()
            .filter(|q| q.outcome == Outcome::Success)
            .map(|q| q.finished)
            .collect()
    });
    let sent = series(&|r| r.lane.log.attempts().iter().map(|a| a.at).collect());
    let rates: Vec<Series> = std::iter::once(limit())
        .chain(
            gated
                .iter()
                .filter(|(r, _)| r.contender != Contender::Gate(Control::Off))
                .map(|(r, rates)| Series {
                    name: r.contender.short(),
                    points: rates
                        .iter()
                        .filter_map(|&(at, rate)| rate.map(|rate| (at, rate)))
                        .collect(),
                }),
        )
        .collect();
    let panels = [
        Panel {
            y_label: "successes per second",
            series: successes,
            reference: None,
            shade: None,
        },
        Panel {
            y_label: "attempts sent per second",
            series: sent,
            reference: None,
            shade: None,
        },
        Panel {
            y_label: "learned rate (r/s)",
            series: rates,
            reference: None,
            shade: None,
        },
    ];
    let path = config.out_dir.join("storm-adaptive.svg");
    let caption = format!(
        "{:.0} r/s offered to an nginx limit of {first:.0} r/s, halved to {second:.0} r/s at \
         {halved:.0} s; 429 without any hint",
        first * config.offered_factor
    );
    match write_svg(&path, &caption, &panels, end) {
        Ok(()) => println!("\nPlot: {}", path.display()),
        Err(error) => eprintln!("storm: could not write {}: {error}", path.display()),
    }
}
