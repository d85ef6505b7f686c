//! The guide's classification.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};

use super::{Classification, Policy, RetryCause, RetryDecision, Signal, StatusSet};
use crate::{
    error::{is_transport_failure, Error, ErrorKind, TimeoutPhase},
    headers,
};

/// The Fireworks guide's classification: what [`RetryOnStatus`](crate::RetryOnStatus) and
/// [`RateLimitAware`](crate::RateLimitAware) do unless told otherwise.
///
/// | outcome | retried | the gate learns |
/// |---|---|---|
/// | 2xx | no | [`Healthy`](Signal::Healthy) (refined by its `x-ratelimit-*` headers) |
/// | 429 | yes | [`Throttled`](Signal::Throttled), with `retry-after-ms` / `Retry-After` |
/// | 503 | yes | `Throttled` with a hint, else [`Failing`](Signal::Failing) |
/// | 500, 502, 504 | yes | `Failing` |
/// | other 5xx | no | `Failing` |
/// | 4xx (400, 401, 404, 408, 422, ...) | no | [`Neutral`](Signal::Neutral) |
/// | `x-should-retry: true` / `false` | overrides the status ([`RetryDecision::ServerSaidNo`]) | as the status says |
/// | connect failure | yes | `Failing` |
/// | transport failure (reset, closed before a response) | yes | `Failing` |
/// | per-attempt timeout | yes | `Failing` |
/// | any other error (deadline, not sent, application) | no | `Neutral` |
///
/// The retried statuses and what counts as a retryable error are configurable here; the
/// gate's column is the guide's and is adjusted with the [`Policy`] combinators.
///
/// ```
/// use tower_reliability::classify::{Standard, StatusSet};
///
/// let standard = Standard::new()
///     .statuses(StatusSet::GUIDE.with(520))
///     .retry_transport_errors(false);
/// # let _ = standard;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standard {
    statuses: StatusSet,
    honour_should_retry: bool,
    retry_connect: bool,
    retry_transport: bool,
    retry_attempt_timeout: bool,
}

impl Default for Standard {
    /// [`Standard::new`]: the guide.
    fn default() -> Self {
        Standard::new()
    }
}

impl Standard {
    /// The guide: [`StatusSet::GUIDE`], `x-should-retry` honoured, connect and transport
    /// failures and attempt timeouts retried.
    pub const fn new() -> Self {
        Standard {
            statuses: StatusSet::GUIDE,
            honour_should_retry: true,
            retry_connect: true,
            retry_transport: true,
            retry_attempt_timeout: true,
        }
    }

    /// The statuses to retry (default [`StatusSet::GUIDE`]). What the gate learns from each
    /// status does not change.
    pub const fn statuses(mut self, statuses: StatusSet) -> Self {
        self.statuses = statuses;
        self
    }

    /// Whether a response's `x-should-retry: true|false` overrides the status (default `true`).
    pub const fn honour_should_retry(mut self, honour: bool) -> Self {
        self.honour_should_retry = honour;
        self
    }

    /// Whether to retry failures that never reached the server (default `true`).
    pub const fn retry_connect_errors(mut self, retry: bool) -> Self {
        self.retry_connect = retry;
        self
    }

    /// Whether to retry connections lost after sending, before a response (default `true`, as
    /// the OpenAI SDK does; the server may have seen the request).
    pub const fn retry_transport_errors(mut self, retry: bool) -> Self {
        self.retry_transport = retry;
        self
    }

    /// Whether to retry per-attempt timeouts (default `true`).
    pub const fn retry_attempt_timeouts(mut self, retry: bool) -> Self {
        self.retry_attempt_timeout = retry;
        self
    }

    /// The statuses retried.
    pub const fn retried_statuses(&self) -> StatusSet {
        self.statuses
    }

    /// The retry half of a non-success response.
    fn retry_response(&self, status: StatusCode, headers: &HeaderMap) -> RetryDecision {
        let by_status = self.statuses.contains(status);
        match (self.honour_should_retry, by_status) {
            (true, _) => match (headers::should_retry(headers), by_status) {
                (Some(true), _) | (None, true) => RetryDecision::Retry(RetryCause::Status(status)),
                (Some(false), true) => RetryDecision::ServerSaidNo,
                _ => RetryDecision::Final,
            },
            (false, true) => RetryDecision::Retry(RetryCause::Status(status)),
            (false, false) => RetryDecision::Final,
        }
    }
}

/// The gate half of a non-success response: throttled, failing, or nothing to learn.
pub(crate) fn gate_response(status: StatusCode, headers: &HeaderMap) -> Signal {
    let hint = || headers::retry_after(headers, SystemTime::now());
    match status {
        StatusCode::TOO_MANY_REQUESTS => Signal::Throttled { hint: hint() },
        StatusCode::SERVICE_UNAVAILABLE => match hint() {
            Some(hint) => Signal::Throttled { hint: Some(hint) },
            None => Signal::Failing,
        },
        s if s.is_server_error() => Signal::Failing,
        _ => Signal::Neutral,
    }
}

impl Policy for Standard {
    #[inline]
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Classification {
        // 2xx is by far the most common answer: decide it without a header lookup.
        if status.is_success() {
            return Classification::HEALTHY;
        }
        Classification::new(
            self.retry_response(status, headers),
            gate_response(status, headers),
        )
    }

    fn classify_error(&self, error: &Error) -> Classification {
        let failing = |cause, retry| {
            let retry = match retry {
                true => RetryDecision::Retry(cause),
                false => RetryDecision::Final,
            };
            Classification::new(retry, Signal::Failing)
        };
        match error.kind() {
            ErrorKind::Connect => failing(RetryCause::Connect, self.retry_connect),
            ErrorKind::Timeout(TimeoutPhase::Attempt) => {
                failing(RetryCause::AttemptTimeout, self.retry_attempt_timeout)
            }
            ErrorKind::Inner => match std::error::Error::source(error) {
                Some(source) if is_transport_failure(source) => {
                    failing(RetryCause::Transport, self.retry_transport)
                }
                _ => Classification::NEUTRAL,
            },
            _ => Classification::NEUTRAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(standard: Standard, code: u16, should_retry: Option<&str>) -> Classification {
        let mut headers = HeaderMap::new();
        if let Some(v) = should_retry {
            headers.insert("x-should-retry", v.parse().unwrap());
        }
        standard.classify_response(StatusCode::from_u16(code).unwrap(), &headers)
    }

    fn retry(code: u16, should_retry: Option<&str>) -> RetryDecision {
        classify(Standard::new(), code, should_retry).retry
    }

    #[test]
    fn the_guides_table() {
        for code in [429, 500, 502, 503, 504] {
            assert!(retry(code, None).is_retry(), "{code}");
        }
        for code in [200, 201, 400, 401, 403, 404, 408, 409, 422, 501, 505] {
            assert_eq!(retry(code, None), RetryDecision::Final, "{code}");
        }
    }

    #[test]
    fn the_gates_column() {
        let gate = |code| classify(Standard::new(), code, None).gate;
        assert_eq!(gate(200), Signal::Healthy);
        assert_eq!(gate(429), Signal::Throttled { hint: None });
        assert_eq!(gate(503), Signal::Failing);
        assert_eq!(gate(501), Signal::Failing);
        for code in [400, 404, 408, 422] {
            assert_eq!(gate(code), Signal::Neutral, "{code}");
        }
        // The retried statuses do not move the gate's column.
        let narrow = Standard::new().statuses(StatusSet::EMPTY);
        assert_eq!(classify(narrow, 502, None).gate, Signal::Failing);
        assert_eq!(classify(narrow, 502, None).retry, RetryDecision::Final);
    }

    #[test]
    fn x_should_retry_overrides_both_ways() {
        assert_eq!(retry(503, Some("false")), RetryDecision::ServerSaidNo);
        assert!(retry(409, Some("true")).is_retry());
        assert_eq!(retry(200, Some("true")), RetryDecision::Final);
        let ignore = Standard::new().honour_should_retry(false);
        assert!(classify(ignore, 502, Some("false")).retry.is_retry());
    }

    #[test]
    fn errors() {
        let c = Standard::new();
        let connect =
            Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let reset = Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let other = Error::from_inner("some application error");
        let cause = |e: &Error| match c.classify_error(e).retry {
            RetryDecision::Retry(cause) => Some(cause),
            _ => None,
        };
        assert_eq!(cause(&connect), Some(RetryCause::Connect));
        assert_eq!(cause(&reset), Some(RetryCause::Transport));
        assert_eq!(cause(&other), None);
        assert_eq!(
            cause(&Error::timeout(TimeoutPhase::Attempt)),
            Some(RetryCause::AttemptTimeout)
        );
        assert_eq!(cause(&Error::timeout(TimeoutPhase::Deadline)), None);
        assert_eq!(cause(&Error::rate_limited(None)), None);
        assert_eq!(c.classify_error(&reset).gate, Signal::Failing);
        assert_eq!(c.classify_error(&other).gate, Signal::Neutral);
        let off = Standard::new().retry_connect_errors(false);
        assert_eq!(
            off.classify_error(&connect),
            Classification::new(RetryDecision::Final, Signal::Failing),
            "not retried, still a failure for the breaker"
        );
    }
}
