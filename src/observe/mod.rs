//! One place where the layers report what they do: `tracing` events (target
//! `tower_reliability`, level `debug`) and, with the `metrics` feature, counters and histograms
//! through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `tower_reliability_attempts_total` | counter | `outcome` = `response` / `not_sent` / `error`, `status` | every attempt; `response` ones are what the server's dashboard counts, `not_sent` ones it never sees |
//! | `tower_reliability_retries_total` | counter | `cause` (`429`, `5xx`, `connect`, `transport`, `attempt_timeout`) | retries started |
//! | `tower_reliability_retry_stops_total` | counter | `reason` | retryable outcomes handed back without retrying |
//! | `tower_reliability_backoff_seconds` | histogram | `hinted` | waits before retries |
//! | `tower_reliability_gate_closures_total` | counter | `hinted` | the shared gate closed (429, 503 with hint, allowance spent) |
//! | `tower_reliability_gate_wait_seconds` | histogram | | time requests spent held at the gate |
//! | `tower_reliability_gate_refusals_total` | counter | | requests failed fast: the gate stayed closed past their deadline |
//! | `tower_reliability_breaker_trips_total` | counter | | the circuit breaker started holding requests |
//! | `tower_reliability_rate_cuts_total` | counter | | the adaptive sending rate was cut (once per wave of throttles) |
//! | `tower_reliability_paced_rate` | gauge | | the adaptive sending rate after the last cut, requests per second (0 once forgotten) |
//! | `tower_reliability_fleet_store_fallbacks_total` | counter | | a fleet store (Redis) was unreachable or slow: the process runs on its local state |
//! | `tower_reliability_timeouts_total` | counter | `phase` | timeouts by phase |
//!
//! No event or metric carries a header value, a URL or a body: nothing an API key could hide in.
//!
//! Call [`register_metrics`] once after installing a recorder: it describes every series and
//! creates them at zero, so a scraper's first sample is 0 and the first burst is counted.

#[cfg(feature = "metrics")]
mod series;
#[cfg(feature = "metrics")]
pub use series::register_metrics;

use std::time::Duration;

use http::StatusCode;

use crate::{
    context::StopReason,
    error::{Error, TimeoutPhase},
    retry::RetryCause,
};

const TARGET: &str = "tower_reliability";

/// An attempt got a response.
pub(crate) fn attempt_response(attempt: u32, status: StatusCode) {
    tracing::trace!(target: TARGET, attempt, status = status.as_u16(), "attempt answered");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_attempts_total", "outcome" => "response", "status" => status_label(status)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = status;
}

/// An attempt failed; `error.reached_server()` says whether the server can have seen it.
pub(crate) fn attempt_error(attempt: u32, error: &Error) {
    tracing::trace!(target: TARGET, attempt, error = %error, "attempt failed");
    #[cfg(feature = "metrics")]
    {
        let outcome = if error.reached_server() == Some(false) {
            "not_sent"
        } else {
            "error"
        };
        let kind = match error.kind() {
            crate::ErrorKind::Timeout(phase) => phase.as_str(),
            crate::ErrorKind::Connect => "connect",
            crate::ErrorKind::RateLimited { .. } => "rate_limited",
            _ => "inner",
        };
        metrics::counter!("tower_reliability_attempts_total", "outcome" => outcome, "status" => kind).increment(1);
    }
}

/// An attempt was dropped before its outcome (the deadline fired, or the caller went away).
/// The server may well have seen it.
pub(crate) fn attempt_abandoned(attempt: u32) {
    tracing::trace!(target: TARGET, attempt, "attempt abandoned");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_attempts_total", "outcome" => "error", "status" => "abandoned").increment(1);
}

/// A retryable response will be retried (a decision: the retry may still be refused before
/// it is sent).
pub(crate) fn retry_response(attempt: u32, status: StatusCode, hint: Option<Duration>) {
    tracing::debug!(
        target: TARGET,
        attempt,
        status = status.as_u16(),
        server_hint_ms = hint.map(|h| h.as_millis() as u64),
        "retryable response"
    );
}

/// A failed attempt will be retried (a decision, as above).
pub(crate) fn retry_error(attempt: u32, cause: RetryCause, error: &Error) {
    tracing::debug!(target: TARGET, attempt, cause = cause.as_str(), error = %error, "retrying after error");
}

/// A retry was made: its attempt has an outcome (or was abandoned in flight). Counted here,
/// not at the decision, so `attempts = requests + retries` holds even when a retry is refused
/// before it is sent.
pub(crate) fn retry_made(cause: RetryCause) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_retries_total", "cause" => cause.as_str()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = cause;
}

/// A retryable outcome is handed back without retrying.
pub(crate) fn retry_stopped(attempt: u32, reason: StopReason) {
    match reason {
        StopReason::BodyNotReplayable => tracing::warn!(
            target: TARGET,
            attempt,
            "retryable outcome not retried: the request body was larger than the replay cap"
        ),
        StopReason::NextAttemptRefused => {
            tracing::debug!(target: TARGET, attempt, "retry refused before sending")
        }
        _ => tracing::debug!(target: TARGET, attempt, ?reason, "not retrying"),
    }
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_retry_stops_total", "reason" => stop_label(reason))
        .increment(1);
}

/// A backoff wait starts.
pub(crate) fn backoff(attempt: u32, wait: Duration, hint: Option<Duration>) {
    tracing::debug!(
        target: TARGET,
        attempt,
        wait_ms = wait.as_millis() as u64,
        server_hint_ms = hint.map(|h| h.as_millis() as u64),
        "backing off before retry"
    );
    #[cfg(feature = "metrics")]
    metrics::histogram!("tower_reliability_backoff_seconds", "hinted" => bool_label(hint.is_some())).record(wait.as_secs_f64());
}

/// The backoff layer refused a retry (its wait cannot be made).
pub(crate) fn backoff_refused(attempt: u32, reason: &Error) {
    tracing::debug!(target: TARGET, attempt, reason = %reason, "backoff refused the retry");
}

/// A first attempt through `JitteredBackoff` came back after retries made below it: the
/// backoff is above the retry layer and spaced none of them. Warned once per process.
pub(crate) fn backoff_above_retry(attempts: u32) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            target: TARGET,
            attempts,
            "JitteredBackoff is above RetryOnStatus: retries are made below it and go out with \
             no wait. Put JitteredBackoff inside RetryOnStatus (as the fireworks preset does)"
        );
    }
}

/// The shared gate closed.
pub(crate) fn gate_closed(wait: Duration, hinted: bool) {
    tracing::debug!(target: TARGET, wait_ms = wait.as_millis() as u64, hinted, "rate-limit gate closed");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_gate_closures_total", "hinted" => bool_label(hinted))
        .increment(1);
}

/// The adaptive sending rate was cut: the fleet's (or process's) rate at the cut was `w_max`,
/// this process now paces at `rate` requests per second.
pub(crate) fn rate_cut(w_max: f64, rate: f64) {
    tracing::debug!(target: TARGET, w_max, rate, "adaptive sending rate cut");
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("tower_reliability_rate_cuts_total").increment(1);
        metrics::gauge!("tower_reliability_paced_rate").set(rate);
    }
}

/// The server has been quiet and the adaptive rate held nobody back: pacing is off again.
pub(crate) fn rate_forgotten() {
    tracing::debug!(target: TARGET, "adaptive sending rate forgotten: no throttling seen");
    #[cfg(feature = "metrics")]
    metrics::gauge!("tower_reliability_paced_rate").set(0.0);
}

/// A fleet store could not be reached in time; the process decides on its local state.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn fleet_store_fallback(reason: &dyn std::fmt::Display) {
    tracing::warn!(target: TARGET, %reason, "fleet rate-limit store unavailable: using local state");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_fleet_store_fallbacks_total").increment(1);
}

/// A fleet store answers again after a fallback.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn fleet_store_recovered() {
    tracing::info!(target: TARGET, "fleet rate-limit store reachable again: sharing state");
}

/// A held request was released by the gate after `waited`.
pub(crate) fn gate_released(waited: Duration, probe: bool) {
    tracing::debug!(target: TARGET, probe, waited_ms = waited.as_millis() as u64, "released by the rate-limit gate");
    #[cfg(feature = "metrics")]
    metrics::histogram!("tower_reliability_gate_wait_seconds").record(waited.as_secs_f64());
}

/// A request failed fast: the gate stays closed past its deadline.
pub(crate) fn gate_refused(wait: Option<Duration>) {
    tracing::debug!(
        target: TARGET,
        wait_ms = wait.map(|w| w.as_millis() as u64),
        "gate closed past the deadline: failing fast"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_gate_refusals_total").increment(1);
}

/// The circuit breaker started holding requests.
pub(crate) fn breaker_tripped(streak: u32) {
    tracing::debug!(target: TARGET, streak, "circuit breaker holds new requests");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_breaker_trips_total").increment(1);
}

/// A timeout fired.
pub(crate) fn timeout(phase: TimeoutPhase) {
    let message = match phase {
        TimeoutPhase::Deadline => "request timed out",
        TimeoutPhase::Attempt => "attempt timed out",
        TimeoutPhase::BodyIdle => "response body idle timeout",
    };
    tracing::debug!(target: TARGET, phase = phase.as_str(), "{}", message);
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_reliability_timeouts_total", "phase" => phase.as_str()).increment(1);
}

#[cfg(feature = "metrics")]
#[allow(clippy::match_overlapping_arm)] // the exact codes first, then their classes
fn status_label(status: StatusCode) -> &'static str {
    // `as_str` borrows: keep label values static (and the label set small).
    match status.as_u16() {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        409 => "409",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(feature = "metrics")]
fn stop_label(reason: StopReason) -> &'static str {
    match reason {
        StopReason::AttemptsExhausted => "attempts_exhausted",
        StopReason::BudgetExhausted => "budget_exhausted",
        StopReason::BodyNotReplayable => "body_not_replayable",
        StopReason::ResponseNotDrainable => "response_not_drainable",
        StopReason::NextAttemptRefused => "next_attempt_refused",
        StopReason::ServerSaidNo => "server_said_no",
        StopReason::DeadlineReached => "deadline_reached",
    }
}

#[cfg(feature = "metrics")]
fn bool_label(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}
