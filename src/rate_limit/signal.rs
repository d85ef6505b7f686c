//! What one response or error says about the server's capacity.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::Quota;
use crate::{
    classify::{Policy, Standard},
    error::Error,
};

const REMAINING_REQUESTS: http::HeaderName =
    http::HeaderName::from_static("x-ratelimit-remaining-requests");

/// What an outcome tells the shared rate-limit state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// The server answered normally.
    Healthy,
    /// The server answered, and said its request quota is spent for now
    /// (`x-ratelimit-remaining-requests: 0` with a limit or a reset): it comes back one
    /// request per [`refill_interval`](Quota::refill_interval), not all at once at `reset`.
    Exhausted(Quota),
    /// The server answered, and its token allowance is running low: under a quarter of its
    /// limit is left (OpenAI's `x-ratelimit-{limit,remaining,reset}-tokens`, or Fireworks'
    /// per-minute `x-ratelimit-{limit,remaining}-tokens-prompt`). A [`Quota`] of tokens: the
    /// gate mirrors it and charges every request its estimated tokens.
    TokensLow(Quota),
    /// The server answered, above its guaranteed limit: `x-ratelimit-over-limit: yes`
    /// (Fireworks serves such requests at lower priority, and answers 429 far above). The
    /// adaptive rate is trimmed and stops growing before any 429 comes.
    OverLimit,
    /// Throttled: a 429, or a 503 carrying a hint. Hold everyone for the hint, or for a
    /// backoff when there is none.
    Throttled {
        /// The server's `retry-after-ms` / `Retry-After`, if any.
        hint: Option<Duration>,
    },
    /// Overloaded or down with no hint: a 5xx, a connection that failed or broke, an attempt
    /// that timed out. A run of these trips the circuit breaker.
    Failing,
    /// Nothing to learn (a 4xx that is the request's own fault, an application error).
    Neutral,
}

const OVER_LIMIT: http::HeaderName = http::HeaderName::from_static("x-ratelimit-over-limit");

/// `x-ratelimit-over-limit: yes` (or `true`), any case.
fn over_limit(headers: &HeaderMap) -> bool {
    headers.get(&OVER_LIMIT).is_some_and(|v| {
        let v = v.as_bytes().trim_ascii();
        v.eq_ignore_ascii_case(b"yes") || v.eq_ignore_ascii_case(b"true")
    })
}

impl Signal {
    /// Reads a response head, as [`Standard`] judges it (with the rate-limit headers of a
    /// success read in full).
    pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Signal {
        Signal::read(
            Standard::new().classify_response(status, headers).gate,
            headers,
            true,
        )
    }

    /// Refines what a [`Policy`](crate::classify::Policy) said of a response: a
    /// [`Healthy`](Signal::Healthy) answer is read for the server's rate-limit headers; the
    /// early signals (a low token allowance, the over-limit flag: three more header lookups)
    /// only if `early`. The layer reads them on every response while the gate is restricted,
    /// and on one in 16 otherwise: they describe a trend, and the success path stays at one
    /// lookup. Any other judgement is kept as it is.
    pub(crate) fn read(judged: Signal, headers: &HeaderMap, early: bool) -> Signal {
        if judged != Signal::Healthy {
            return judged;
        }
        // The cheap common case: three header lookups, no parsing.
        match headers.get(&REMAINING_REQUESTS) {
            Some(v) if v.as_bytes() == b"0" => match Quota::from_headers(headers) {
                Some(quota) if quota.refill_interval().is_some() => Signal::Exhausted(quota),
                _ => Signal::Healthy,
            },
            _ if !early => Signal::Healthy,
            _ => match Quota::tokens_low(headers) {
                Some(tokens) => Signal::TokensLow(tokens),
                None if over_limit(headers) => Signal::OverLimit,
                None => Signal::Healthy,
            },
        }
    }

    /// Reads an error of an attempt, as [`Standard`] judges it.
    pub fn from_error(error: &Error) -> Signal {
        Standard::new().classify_error(error).gate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TimeoutPhase;

    use crate::headers::test_headers as h;

    #[test]
    fn reads_statuses_and_hints() {
        let s = |code, headers: &HeaderMap| {
            Signal::from_response(StatusCode::from_u16(code).unwrap(), headers)
        };
        assert_eq!(s(200, &h(&[])), Signal::Healthy);
        assert_eq!(s(404, &h(&[])), Signal::Neutral);
        assert_eq!(s(429, &h(&[])), Signal::Throttled { hint: None });
        assert_eq!(
            s(429, &h(&[("retry-after", "3")])),
            Signal::Throttled {
                hint: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(s(503, &h(&[])), Signal::Failing);
        assert_eq!(
            s(503, &h(&[("retry-after-ms", "1500")])),
            Signal::Throttled {
                hint: Some(Duration::from_millis(1500))
            }
        );
        assert_eq!(s(502, &h(&[])), Signal::Failing);
        assert_eq!(
            s(
                200,
                &h(&[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "2s")
                ])
            ),
            Signal::Exhausted(Quota::new(None, 0, Some(Duration::from_secs(2))))
        );
        assert_eq!(
            s(
                200,
                &h(&[
                    ("x-ratelimit-limit-requests", "30"),
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "1m0s")
                ])
            ),
            Signal::Exhausted(Quota::new(Some(30), 0, Some(Duration::from_secs(60))))
        );
        assert_eq!(
            s(
                200,
                &h(&[
                    ("x-ratelimit-limit-requests", "30"),
                    ("x-ratelimit-remaining-requests", "0")
                ])
            ),
            Signal::Exhausted(Quota::new(Some(30), 0, None))
        );
        assert_eq!(
            s(
                200,
                &h(&[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "0s")
                ])
            ),
            Signal::Healthy
        );
        assert_eq!(
            s(200, &h(&[("x-ratelimit-remaining-requests", "0")])),
            Signal::Healthy
        );
        assert_eq!(
            s(200, &h(&[("x-ratelimit-remaining-requests", "5")])),
            Signal::Healthy
        );
    }

    #[test]
    fn reads_errors() {
        let refused =
            Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(Signal::from_error(&refused), Signal::Failing);
        assert_eq!(
            Signal::from_error(&Error::from_inner("bad input")),
            Signal::Neutral
        );
        assert_eq!(
            Signal::from_error(&Error::timeout(TimeoutPhase::Attempt)),
            Signal::Failing
        );
    }
}
