//! The crate's series, described (`HELP` lines) and created at zero before any traffic.
//!
//! A series an exporter has never shown starts at its first increment: Prometheus' first
//! sample of it is already 1 (or 30, after a burst), and `rate()` / `increase()` cannot see
//! what happened before that sample. Creating every series at 0 when the process starts lets
//! the first scrape record the zeros, so a dashboard's `increase()` over a window that covers
//! the start counts the first burst too. The label values are those of the table in
//! [`observe`](super).

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram, Unit};

/// `status` of `attempts_total{outcome="response"}`: the exact codes the crate labels, then
/// the classes.
const STATUSES: [&str; 16] = [
    "400", "401", "403", "404", "408", "409", "422", "429", "500", "502", "503", "504", "2xx",
    "3xx", "4xx", "5xx",
];
/// `status` of `attempts_total{outcome="not_sent"}`: what stopped it before the server.
const NOT_SENT: [&str; 2] = ["connect", "rate_limited"];
/// `status` of `attempts_total{outcome="error"}`: the failure, or `abandoned` (cut in flight).
const ERRORS: [&str; 5] = ["deadline", "attempt", "body_idle", "inner", "abandoned"];
const CAUSES: [&str; 6] = [
    "429",
    "5xx",
    "status",
    "connect",
    "transport",
    "attempt_timeout",
];
const STOP_REASONS: [&str; 7] = [
    "attempts_exhausted",
    "budget_exhausted",
    "body_not_replayable",
    "response_not_drainable",
    "next_attempt_refused",
    "server_said_no",
    "deadline_reached",
];
const PHASES: [&str; 3] = ["deadline", "attempt", "body_idle"];
const BOOLS: [&str; 2] = ["true", "false"];

/// Describes every series (`HELP` lines) and creates the counters and histograms at zero.
///
/// Call it once, after installing your recorder (a Prometheus exporter) and before traffic:
/// without it, the first increment of each counter is invisible to `rate()` and `increase()`.
///
/// ```
/// // With a recorder installed (metrics-exporter-prometheus, ...):
/// tower_reliability::observe::register_metrics();
/// ```
pub fn register_metrics() {
    describe();
    let attempts = "tower_reliability_attempts_total";
    for status in STATUSES {
        counter!(attempts, "outcome" => "response", "status" => status).increment(0);
    }
    for status in NOT_SENT {
        counter!(attempts, "outcome" => "not_sent", "status" => status).increment(0);
    }
    for status in ERRORS {
        counter!(attempts, "outcome" => "error", "status" => status).increment(0);
    }
    for cause in CAUSES {
        counter!("tower_reliability_retries_total", "cause" => cause).increment(0);
    }
    for reason in STOP_REASONS {
        counter!("tower_reliability_retry_stops_total", "reason" => reason).increment(0);
    }
    for hinted in BOOLS {
        counter!("tower_reliability_gate_closures_total", "hinted" => hinted).increment(0);
        // A histogram handle is enough: the exporter shows it with empty buckets.
        let _ = histogram!("tower_reliability_backoff_seconds", "hinted" => hinted);
    }
    for phase in PHASES {
        counter!("tower_reliability_timeouts_total", "phase" => phase).increment(0);
    }
    for name in [
        "tower_reliability_gate_refusals_total",
        "tower_reliability_breaker_trips_total",
        "tower_reliability_rate_cuts_total",
        "tower_reliability_fleet_store_fallbacks_total",
    ] {
        counter!(name).increment(0);
    }
    let _ = histogram!("tower_reliability_gate_wait_seconds");
}

/// The `HELP` lines: what each series means (the table in `tower_reliability::observe`).
fn describe() {
    describe_counter!(
        "tower_reliability_attempts_total",
        "Every attempt: outcome=response (by status: what the server's dashboard counts), \
         not_sent (never reached the server), error (may have reached it)"
    );
    describe_counter!(
        "tower_reliability_retries_total",
        "Retries started, by cause"
    );
    describe_counter!(
        "tower_reliability_retry_stops_total",
        "Retryable outcomes handed back without retrying, by reason"
    );
    describe_histogram!(
        "tower_reliability_backoff_seconds",
        Unit::Seconds,
        "Waits before retries; hinted=true when the server asked for a wait"
    );
    describe_counter!(
        "tower_reliability_gate_closures_total",
        "The shared rate-limit gate closed (429, 503 with a hint, allowance spent)"
    );
    describe_histogram!(
        "tower_reliability_gate_wait_seconds",
        Unit::Seconds,
        "Time requests spent held at the rate-limit gate"
    );
    describe_counter!(
        "tower_reliability_gate_refusals_total",
        "Requests failed fast: the gate stayed closed past their deadline"
    );
    describe_counter!(
        "tower_reliability_breaker_trips_total",
        "The circuit breaker started holding requests"
    );
    describe_counter!(
        "tower_reliability_rate_cuts_total",
        "The adaptive sending rate was cut (once per wave of throttles)"
    );
    describe_gauge!(
        "tower_reliability_paced_rate",
        "The adaptive sending rate after the last cut, requests per second (0: not pacing)"
    );
    describe_counter!(
        "tower_reliability_fleet_store_fallbacks_total",
        "A fleet store (Redis) was unreachable or slow: the process ran on its local state"
    );
    describe_counter!(
        "tower_reliability_timeouts_total",
        "Timeouts by phase (deadline, attempt, body_idle)"
    );
}
