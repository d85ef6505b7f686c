//! One classification of outcomes, read by both the retry layer and the rate-limit gate.
//!
//! A response or an error of an attempt is judged once, by a [`Policy`], into a
//! [`Classification`] with two parts:
//! - [`retry`](Classification::retry): whether [`RetryOnStatus`](crate::RetryOnStatus) tries
//!   again ([`RetryDecision`]);
//! - [`gate`](Classification::gate): what the shared gate of
//!   [`RateLimitAware`](crate::RateLimitAware) learns ([`Signal`]: healthy, throttled with the
//!   server's hint, a failure for the circuit breaker, or nothing).
//!
//! [`Standard`] is the Fireworks guide, exactly what both layers did before this module
//! existed; the combinators of [`Policy`] adjust it without a fork, in the spirit of
//! tower-http's `classify` and `follow_redirect::policy`. Give the same policy to both layers
//! ([`FireworksLayer::classify`](crate::fireworks::FireworksLayer::classify) does it once for
//! the preset), or a different one to each.
//!
//! Retry 408 but don't count it for the breaker, in one line:
//!
//! ```
//! use http::StatusCode;
//! use tower_reliability::{classify::{Policy, Standard}, fireworks, Workload};
//!
//! let layer = fireworks::layer(Workload::Interactive)
//!     .classify(Standard::new().retry_also(StatusCode::REQUEST_TIMEOUT).not_for_breaker(408));
//! # let _ = layer;
//! ```
//!
//! A policy is generic, not boxed: [`Standard`] and its combinators are plain values, and the
//! healthy path (a 2xx) is decided with no header lookup, no allocation, no dynamic dispatch.
//! The gate still reads its rate-limit headers (`x-ratelimit-*`) from a response the policy
//! calls [`Healthy`](Signal::Healthy): those measure capacity, they do not judge the outcome.

mod combinators;
mod standard;
mod status_set;

use http::{HeaderMap, StatusCode};

pub use combinators::{NeverRetry, NotForBreaker, RetryAlso};
pub use standard::Standard;
pub use status_set::StatusSet;

pub use crate::rate_limit::Signal;
use crate::Error;

/// Judges the outcome of one attempt, for the retry layer and for the rate-limit gate.
///
/// Implement it for a policy of your own, or adjust [`Standard`] with the combinators below.
/// It is called once per outcome by each layer that holds it, on the response head (before
/// any body is read), so it must be quick and must not block.
pub trait Policy: Clone + Send + Sync + 'static {
    /// Judges a response head.
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Classification;

    /// Judges an attempt's error (see [`Error::kind`] and [`Error::not_sent_reason`]).
    fn classify_error(&self, error: &Error) -> Classification;

    /// Also retries responses with these statuses (and no `x-should-retry: false`). What the
    /// gate learns from them stays as this policy says (under [`Standard`], a 4xx teaches it
    /// nothing and a 5xx counts for the circuit breaker).
    fn retry_also(self, statuses: impl Into<StatusSet>) -> RetryAlso<Self>
    where
        Self: Sized,
    {
        RetryAlso::new(self, statuses.into())
    }

    /// Never retries responses with these statuses.
    fn never_retry(self, statuses: impl Into<StatusSet>) -> NeverRetry<Self>
    where
        Self: Sized,
    {
        NeverRetry::new(self, statuses.into())
    }

    /// Responses with these statuses never count as failures for the circuit breaker: where
    /// this policy says [`Failing`](Signal::Failing), the gate learns
    /// [`Neutral`](Signal::Neutral) instead. Whether they are retried is unchanged.
    fn not_for_breaker(self, statuses: impl Into<StatusSet>) -> NotForBreaker<Self>
    where
        Self: Sized,
    {
        NotForBreaker::new(self, statuses.into())
    }
}

/// The judgement of one outcome: what the retry layer does, and what the gate learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// Whether another attempt can help.
    pub retry: RetryDecision,
    /// What the shared rate-limit gate learns. For a response, one of
    /// [`Healthy`](Signal::Healthy), [`Throttled`](Signal::Throttled),
    /// [`Failing`](Signal::Failing) or [`Neutral`](Signal::Neutral); the gate refines a
    /// `Healthy` one with the response's rate-limit headers.
    pub gate: Signal,
}

impl Classification {
    /// A success: nothing to retry, the server is healthy.
    pub const HEALTHY: Classification = Classification::new(RetryDecision::Final, Signal::Healthy);

    /// Nothing to retry, nothing for the gate to learn.
    pub const NEUTRAL: Classification = Classification::new(RetryDecision::Final, Signal::Neutral);

    /// The two parts.
    pub const fn new(retry: RetryDecision, gate: Signal) -> Self {
        Classification { retry, gate }
    }
}

/// Whether the retry layer tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Hand the outcome to the caller: nothing to retry.
    Final,
    /// Retryable, for this cause.
    Retry(RetryCause),
    /// Retryable by status, but the server said `x-should-retry: false`: handed to the caller,
    /// with [`StopReason::ServerSaidNo`](crate::context::StopReason::ServerSaidNo) in its report.
    ServerSaidNo,
}

impl RetryDecision {
    /// Whether this says to retry.
    pub fn is_retry(self) -> bool {
        matches!(self, RetryDecision::Retry(_))
    }
}

/// Why an outcome is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryCause {
    /// A retryable status (429, 5xx, or one you configured).
    Status(StatusCode),
    /// The request never reached the server.
    Connect,
    /// The connection failed after the request may have been sent, before a response.
    Transport,
    /// The per-attempt timeout fired.
    AttemptTimeout,
}

impl RetryCause {
    /// A short, stable name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::Status(s) if s == StatusCode::TOO_MANY_REQUESTS => "429",
            RetryCause::Status(s) if s.is_server_error() => "5xx",
            RetryCause::Status(_) => "status",
            RetryCause::Connect => "connect",
            RetryCause::Transport => "transport",
            RetryCause::AttemptTimeout => "attempt_timeout",
        }
    }
}
