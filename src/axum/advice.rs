//! What a gateway tells its caller about trying again (`x-should-retry`, `Retry-After`).
//!
//! A gateway built on this crate has already retried, waited and budgeted by the time it
//! answers. The client behind it (the OpenAI SDKs retry twice by default) would otherwise
//! retry every 429 and 5xx again: each of its retries is a whole new round of the gateway's,
//! so one call costs up to `3 * 5` upstream attempts. Those SDKs obey `x-should-retry`
//! (`true` / `false`) before anything else and wait `retry-after-ms` / `Retry-After` when the
//! wait is short enough (openai-node: below 60 s; otherwise they back off 0.5 to 8 s on their
//! own). So the gateway says `false` when another try can only repeat what it did, and `true`
//! with the wait when a later try can succeed.

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::{
    context::{RetryReport, StopReason},
    error::{Error, ErrorKind},
};

/// The longest wait a caller's SDK reliably honours: openai-node takes `retry-after-ms` /
/// `Retry-After` only below 60 s (openai-python up to 60 s, newer versions 120 s), and
/// otherwise retries after its own short backoff, which would only meet the closed gate again.
pub(crate) const CALLER_MAX_WAIT: Duration = Duration::from_secs(60);

/// The header the OpenAI SDKs (and this crate's retry layer) read first.
pub(crate) const SHOULD_RETRY: &str = "x-should-retry";

/// The advice for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Advice {
    /// Whether another try can help.
    pub(crate) retry: bool,
    /// When, if known: sent as `Retry-After` (whole seconds, rounded up) and `retry-after-ms`.
    pub(crate) after: Option<Duration>,
}

impl Advice {
    const GIVE_UP: Advice = Advice {
        retry: false,
        after: None,
    };

    /// For a failure of the stack. Timeouts, connect and upstream failures come after the
    /// retry layer did all it could within the deadline: not again. A closed gate is worth
    /// another try once it opens, if the caller can wait that long.
    pub(crate) fn for_error(error: &Error) -> Advice {
        match error.kind() {
            ErrorKind::RateLimited {
                retry_after: Some(wait),
            } => Advice {
                retry: wait < CALLER_MAX_WAIT,
                after: Some(wait),
            },
            _ => Advice::GIVE_UP,
        }
    }

    /// For an upstream answer relayed to the caller, given the retry layer's report on it.
    /// `None`: nothing to add (a success, or an answer the gateway could not retry at all, so
    /// that the caller's own retry is a first retry, not a repeated round).
    ///
    /// Only a 429 or 503 whose retry was refused because its wait did not fit (the server's
    /// hint, the deadline) is worth another try, when the caller can wait the hint. Everything
    /// else is final: the attempts or the budget ran out, the server said no, or the status is
    /// not one the gateway retries (then neither should its caller).
    pub(crate) fn for_response(
        status: StatusCode,
        headers: &HeaderMap,
        report: Option<&RetryReport>,
    ) -> Option<Advice> {
        if !(status.is_client_error() || status.is_server_error()) {
            return None;
        }
        match report.and_then(|report| report.stopped) {
            Some(StopReason::BodyNotReplayable | StopReason::ResponseNotDrainable) => None,
            Some(StopReason::NextAttemptRefused) => {
                let hint = crate::headers::retry_after(headers, SystemTime::now());
                Some(match hint {
                    Some(wait) if wait < CALLER_MAX_WAIT => Advice {
                        retry: true,
                        // The upstream's own hint headers travel with the answer already.
                        after: None,
                    },
                    _ => Advice::GIVE_UP,
                })
            }
            _ => Some(Advice::GIVE_UP),
        }
    }

    /// Writes the advice into `headers`, replacing any the upstream sent.
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        let verdict = if self.retry { "true" } else { "false" };
        headers.insert(SHOULD_RETRY, HeaderValue::from_static(verdict));
        if let Some(wait) = self.after {
            // Both rounded up and saturated, from one number, so they always agree.
            let millis = wait.as_nanos().div_ceil(1_000_000);
            let millis = u64::try_from(millis).unwrap_or(u64::MAX);
            let secs = millis.div_ceil(1000);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            headers.insert("retry-after-ms", HeaderValue::from(millis));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TimeoutPhase;

    fn report(stopped: Option<StopReason>) -> RetryReport {
        RetryReport {
            attempts: 5,
            waited: Duration::from_secs(15),
            stopped,
        }
    }

    fn hinted(secs: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        headers
    }

    #[test]
    fn failures_after_the_gateways_own_retries_are_final() {
        for error in [
            Error::timeout(TimeoutPhase::Deadline),
            Error::timeout(TimeoutPhase::Attempt),
            Error::timeout(TimeoutPhase::BodyIdle),
            Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            Error::from_inner("inner"),
            Error::rate_limited(None),
        ] {
            assert_eq!(Advice::for_error(&error), Advice::GIVE_UP, "{error}");
        }
    }

    #[test]
    fn a_closed_gate_is_worth_a_retry_only_when_the_caller_can_wait_for_it() {
        let short = Error::rate_limited(Some(Duration::from_millis(2500)));
        assert_eq!(
            Advice::for_error(&short),
            Advice {
                retry: true,
                after: Some(Duration::from_millis(2500))
            }
        );
        let long = Error::rate_limited(Some(Duration::from_secs(90)));
        assert_eq!(
            Advice::for_error(&long),
            Advice {
                retry: false,
                after: Some(Duration::from_secs(90))
            }
        );
    }

    #[test]
    fn relayed_answers() {
        let none = HeaderMap::new();
        let ok = StatusCode::OK;
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        let limited = StatusCode::TOO_MANY_REQUESTS;
        let give_up = Some(Advice::GIVE_UP);
        // Successes are left alone, retried or not.
        assert_eq!(Advice::for_response(ok, &none, None), None);
        let retried = report(None);
        assert_eq!(Advice::for_response(ok, &none, Some(&retried)), None);
        // Retries spent, budget spent, server said no: final.
        for stopped in [
            StopReason::AttemptsExhausted,
            StopReason::BudgetExhausted,
            StopReason::ServerSaidNo,
        ] {
            let r = report(Some(stopped));
            assert_eq!(Advice::for_response(unavailable, &none, Some(&r)), give_up);
        }
        // Not retryable for the gateway (no report): not for its caller either.
        let bad_request = StatusCode::BAD_REQUEST;
        assert_eq!(Advice::for_response(bad_request, &none, None), give_up);
        // Retry refused because the wait did not fit: worth it if the caller can wait.
        let refused = report(Some(StopReason::NextAttemptRefused));
        let retry = Some(Advice {
            retry: true,
            after: None,
        });
        assert_eq!(
            Advice::for_response(limited, &hinted(5), Some(&refused)),
            retry
        );
        assert_eq!(
            Advice::for_response(limited, &hinted(90), Some(&refused)),
            give_up
        );
        assert_eq!(
            Advice::for_response(unavailable, &none, Some(&refused)),
            give_up
        );
        // The gateway could not retry at all: the caller's retry is the first one.
        let once = report(Some(StopReason::BodyNotReplayable));
        assert_eq!(Advice::for_response(unavailable, &none, Some(&once)), None);
    }

    #[test]
    fn applied_advice_replaces_the_upstreams_and_rounds_the_wait_up() {
        let mut headers = HeaderMap::new();
        headers.insert(SHOULD_RETRY, HeaderValue::from_static("true"));
        Advice::GIVE_UP.apply(&mut headers);
        assert_eq!(headers[SHOULD_RETRY], "false");
        assert!(headers.get(header::RETRY_AFTER).is_none());
        Advice {
            retry: true,
            after: Some(Duration::from_millis(2500)),
        }
        .apply(&mut headers);
        assert_eq!(headers[SHOULD_RETRY], "true");
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert_eq!(headers["retry-after-ms"], "2500");
    }

    /// Any wait, however long or fine-grained, gives two headers that agree (both rounded up,
    /// both saturated), and never panics.
    #[test]
    fn waits_are_rounded_up_and_saturate_consistently() {
        let headers = |wait| {
            let mut headers = HeaderMap::new();
            Advice {
                retry: false,
                after: Some(wait),
            }
            .apply(&mut headers);
            (
                headers[header::RETRY_AFTER].to_str().unwrap().to_owned(),
                headers["retry-after-ms"].to_str().unwrap().to_owned(),
            )
        };
        assert_eq!(
            headers(Duration::from_micros(1_000_500)),
            ("2".into(), "1001".into())
        );
        assert_eq!(headers(Duration::ZERO), ("0".into(), "0".into()));
        let (secs, millis) = headers(Duration::MAX);
        assert_eq!(millis, u64::MAX.to_string());
        assert_eq!(secs, u64::MAX.div_ceil(1000).to_string());
        let response = axum::response::IntoResponse::into_response(crate::Error::rate_limited(
            Some(Duration::MAX),
        ));
        assert_eq!(
            response.headers()["retry-after-ms"],
            u64::MAX.to_string().as_str()
        );
    }
}
