//! Small adjustments to a [`Policy`], made by its provided methods.

use http::{HeaderMap, StatusCode};

use super::{Classification, Policy, RetryCause, RetryDecision, Signal, StatusSet};
use crate::{headers, Error};

/// A policy that also retries some statuses: made by [`Policy::retry_also`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAlso<P> {
    inner: P,
    statuses: StatusSet,
}

impl<P> RetryAlso<P> {
    pub(super) fn new(inner: P, statuses: StatusSet) -> Self {
        RetryAlso { inner, statuses }
    }
}

impl<P: Policy> Policy for RetryAlso<P> {
    #[inline]
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Classification {
        let mut class = self.inner.classify_response(status, headers);
        if class.retry == RetryDecision::Final && self.statuses.contains(status) {
            class.retry = match headers::should_retry(headers) {
                Some(false) => RetryDecision::ServerSaidNo,
                _ => RetryDecision::Retry(RetryCause::Status(status)),
            };
        }
        class
    }

    fn classify_error(&self, error: &Error) -> Classification {
        self.inner.classify_error(error)
    }
}

/// A policy that never retries some statuses: made by [`Policy::never_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeverRetry<P> {
    inner: P,
    statuses: StatusSet,
}

impl<P> NeverRetry<P> {
    pub(super) fn new(inner: P, statuses: StatusSet) -> Self {
        NeverRetry { inner, statuses }
    }
}

impl<P: Policy> Policy for NeverRetry<P> {
    #[inline]
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Classification {
        let mut class = self.inner.classify_response(status, headers);
        if self.statuses.contains(status) {
            class.retry = RetryDecision::Final;
        }
        class
    }

    fn classify_error(&self, error: &Error) -> Classification {
        self.inner.classify_error(error)
    }
}

/// A policy whose failures with some statuses do not count for the circuit breaker: made by
/// [`Policy::not_for_breaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotForBreaker<P> {
    inner: P,
    statuses: StatusSet,
}

impl<P> NotForBreaker<P> {
    pub(super) fn new(inner: P, statuses: StatusSet) -> Self {
        NotForBreaker { inner, statuses }
    }
}

impl<P: Policy> Policy for NotForBreaker<P> {
    #[inline]
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Classification {
        let mut class = self.inner.classify_response(status, headers);
        if class.gate == Signal::Failing && self.statuses.contains(status) {
            class.gate = Signal::Neutral;
        }
        class
    }

    fn classify_error(&self, error: &Error) -> Classification {
        self.inner.classify_error(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Standard;

    fn classify<P: Policy>(policy: &P, code: u16, should_retry: Option<&str>) -> Classification {
        let mut headers = HeaderMap::new();
        if let Some(v) = should_retry {
            headers.insert("x-should-retry", v.parse().unwrap());
        }
        policy.classify_response(StatusCode::from_u16(code).unwrap(), &headers)
    }

    #[test]
    fn retry_also_adds_statuses_and_leaves_the_gate_alone() {
        let policy = Standard::new().retry_also(StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            classify(&policy, 408, None),
            Classification::new(
                RetryDecision::Retry(RetryCause::Status(StatusCode::REQUEST_TIMEOUT)),
                Signal::Neutral
            )
        );
        assert_eq!(
            classify(&policy, 408, Some("false")).retry,
            RetryDecision::ServerSaidNo
        );
        assert_eq!(
            classify(&policy, 404, None),
            classify(&Standard::new(), 404, None)
        );
        assert_eq!(classify(&policy, 200, None), Classification::HEALTHY);
        let with_520 = Standard::new().retry_also(520);
        assert_eq!(classify(&with_520, 520, None).gate, Signal::Failing);
        assert!(classify(&with_520, 520, None).retry.is_retry());
    }

    #[test]
    fn never_retry_removes_statuses() {
        let policy = Standard::new().never_retry(StatusSet::EMPTY.with(500).with(409));
        assert_eq!(classify(&policy, 500, None).retry, RetryDecision::Final);
        assert_eq!(classify(&policy, 500, None).gate, Signal::Failing);
        assert_eq!(
            classify(&policy, 409, Some("true")).retry,
            RetryDecision::Final
        );
        assert!(classify(&policy, 502, None).retry.is_retry());
    }

    #[test]
    fn not_for_breaker_turns_failures_neutral_only() {
        let policy = Standard::new().not_for_breaker(StatusSet::EMPTY.with(500).with(429));
        assert_eq!(
            classify(&policy, 500, None),
            Classification::new(
                RetryDecision::Retry(RetryCause::Status(StatusCode::INTERNAL_SERVER_ERROR)),
                Signal::Neutral
            ),
            "still retried"
        );
        assert_eq!(
            classify(&policy, 429, None).gate,
            Signal::Throttled { hint: None },
            "a throttle is not a breaker failure"
        );
        assert_eq!(classify(&policy, 502, None).gate, Signal::Failing);
    }

    #[test]
    fn the_issues_example_in_one_line() {
        let policy = Standard::new()
            .retry_also(StatusCode::REQUEST_TIMEOUT)
            .not_for_breaker(408);
        let class = classify(&policy, 408, None);
        assert!(class.retry.is_retry());
        assert_eq!(class.gate, Signal::Neutral);
    }

    #[test]
    fn errors_pass_through() {
        let policy = Standard::new()
            .retry_also(408)
            .never_retry(500)
            .not_for_breaker(502);
        let refused =
            Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            policy.classify_error(&refused),
            Standard::new().classify_error(&refused)
        );
    }
}
