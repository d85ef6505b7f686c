//! What a response says about the server's request quota.
//!
//! OpenAI-compatible servers (and Fireworks: "the limit is replenished continuously") keep a
//! bucket per account and model: `x-ratelimit-limit-requests` is its size,
//! `x-ratelimit-remaining-requests` what is left, and `x-ratelimit-reset-requests` the time
//! until it is **full again**, not a window after which everything comes back at once. With
//! 30 requests a minute and none left, `reset` says `60s` while one more request fits after
//! 2 s: the bucket refills at `limit` per window, one request every `reset / limit`.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::headers::RateLimitHeaders;

/// One reading of the server's request quota (`x-ratelimit-{limit,remaining,reset}-requests`),
/// understood as a continuously refilling bucket.
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::rate_limit::Quota;
///
/// // 30 a minute, none left, full again in 60 s: one request back every 2 s.
/// let quota = Quota::new(Some(30), 0, Some(Duration::from_secs(60)));
/// assert_eq!(quota.refill_interval(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quota {
    /// The bucket size (`x-ratelimit-limit-requests`), if sent.
    pub limit: Option<u64>,
    /// Requests left (`x-ratelimit-remaining-requests`).
    pub remaining: u64,
    /// Time until the bucket is full again (`x-ratelimit-reset-requests`), if sent.
    pub reset: Option<Duration>,
    /// For a token allowance: it counts prompt tokens only (Fireworks' `*-tokens-prompt`), so
    /// a request is charged its prompt estimate, not its output cap too.
    pub prompt_only: bool,
}

impl Quota {
    /// The window assumed when a server sends a limit but no reset: a minute, the unit of
    /// Fireworks' and OpenAI's published request limits.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

    /// A reading of these values.
    pub fn new(limit: Option<u64>, remaining: u64, reset: Option<Duration>) -> Self {
        Quota {
            limit: limit.filter(|&l| l > 0),
            remaining,
            reset,
            prompt_only: false,
        }
    }

    /// Reads a response's headers; `None` without `x-ratelimit-remaining-requests`. Malformed
    /// values count as absent.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let rl = RateLimitHeaders::parse(headers, std::time::SystemTime::now());
        Some(Quota::new(
            rl.limit_requests,
            rl.remaining_requests?,
            rl.reset_requests,
        ))
    }

    /// A token allowance below a quarter of its limit, if the headers carry one: OpenAI's
    /// `x-ratelimit-{limit,remaining,reset}-tokens`, else Fireworks' per-minute
    /// `x-ratelimit-{limit,remaining}-tokens-prompt`. `None` (after at most two lookups) when
    /// there is none or plenty is left: the success path pays nothing more.
    pub fn tokens_low(headers: &HeaderMap) -> Option<Self> {
        // Names made once (a `&str` name is parsed and hashed on every lookup).
        const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
        const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
        const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
        const REMAINING_PROMPT: HeaderName =
            HeaderName::from_static("x-ratelimit-remaining-tokens-prompt");
        const LIMIT_PROMPT: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens-prompt");
        let (limit, remaining, reset, prompt_only) = if let Some(v) = headers.get(&REMAINING) {
            (LIMIT, v, headers.get(&RESET), false)
        } else {
            (LIMIT_PROMPT, headers.get(&REMAINING_PROMPT)?, None, true)
        };
        let number = |v: &http::HeaderValue| v.to_str().ok()?.trim().parse::<u64>().ok();
        let remaining = number(remaining)?;
        let limit = headers.get(limit).and_then(number).filter(|&l| l > 0)?;
        if remaining.saturating_mul(4) >= limit {
            return None;
        }
        let reset = reset
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::headers::parse_reset(v, std::time::SystemTime::now()));
        Some(Quota {
            prompt_only,
            ..Quota::new(Some(limit), remaining, reset)
        })
    }

    /// How long the bucket takes to give one request back: what is missing from a full
    /// bucket refills in `reset`, so `reset / (limit - remaining)`; without a reset,
    /// [`DEFAULT_WINDOW`](Self::DEFAULT_WINDOW)` / limit`. Without a limit and with nothing left, `reset` itself: the
    /// next request fits by then at the latest. `None` when the reading says nothing about
    /// the rate (a full bucket, no reset and no limit, a zero reset).
    pub fn refill_interval(&self) -> Option<Duration> {
        let interval = match (self.limit, self.reset) {
            (Some(limit), Some(reset)) => {
                let missing = limit.checked_sub(self.remaining).filter(|&m| m > 0)?;
                reset.as_secs_f64() / missing as f64
            }
            (Some(limit), None) => Self::DEFAULT_WINDOW.as_secs_f64() / limit as f64,
            (None, Some(reset)) if self.remaining == 0 => reset.as_secs_f64(),
            (None, _) => return None,
        };
        // Never negative or NaN here; too large to represent saturates.
        Some(Duration::try_from_secs_f64(interval).unwrap_or(Duration::MAX))
            .filter(|d| !d.is_zero())
    }

    /// The bucket size a client can count on: the limit, or a single request without one.
    pub fn capacity(&self) -> u64 {
        self.limit.unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_interval_is_what_one_request_takes_to_come_back() {
        let q = |limit, remaining, reset| Quota::new(limit, remaining, reset).refill_interval();
        assert_eq!(q(Some(30), 0, Some(secs(60))), Some(secs(2)));
        // 20 of 30 missing, full in 10 s: one every 500 ms.
        assert_eq!(
            q(Some(30), 10, Some(secs(10))),
            Some(Duration::from_millis(500))
        );
        assert_eq!(q(Some(120), 0, None), Some(Duration::from_millis(500)));
        assert_eq!(q(None, 0, Some(secs(2))), Some(secs(2)));
        // Nothing to learn.
        assert_eq!(q(None, 3, Some(secs(2))), None);
        assert_eq!(q(None, 0, None), None);
        assert_eq!(q(Some(30), 30, Some(secs(1))), None);
        assert_eq!(q(Some(30), 99, Some(secs(1))), None);
        assert_eq!(q(Some(30), 0, Some(Duration::ZERO)), None);
        // A zero limit is no limit.
        assert_eq!(q(Some(0), 0, Some(secs(2))), Some(secs(2)));
        assert_eq!(Quota::new(Some(0), 0, None).capacity(), 1);
        // Huge values do not overflow; an interval too short to measure says nothing.
        assert_eq!(q(Some(u64::MAX), 0, Some(secs(86_400))), None);
        assert_eq!(q(Some(1), 0, Some(Duration::MAX)), Some(Duration::MAX));
    }

    #[test]
    fn reads_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(Quota::from_headers(&headers), None);
        headers.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        headers.insert("x-ratelimit-limit-requests", "600".parse().unwrap());
        headers.insert("x-ratelimit-reset-requests", "1m0s".parse().unwrap());
        assert_eq!(
            Quota::from_headers(&headers),
            Some(Quota::new(Some(600), 0, Some(secs(60))))
        );
        headers.insert("x-ratelimit-limit-requests", "lots".parse().unwrap());
        assert_eq!(
            Quota::from_headers(&headers),
            Some(Quota::new(None, 0, Some(secs(60))))
        );
    }
}
