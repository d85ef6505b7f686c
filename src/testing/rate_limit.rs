//! The token bucket behind [`RateLimitConfig`] and the headers it puts on answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
// Tokio's clock: under paused time (`start_paused`) the quota refills in virtual time.
use tokio::time::Instant;

use super::config::{HintStyle, RateLimitConfig};

/// The longest wait the server ever announces (for a bucket that never refills).
const MAX_WAIT: Duration = Duration::from_secs(3600);

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// A token bucket, full when created.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    config: RateLimitConfig,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            tokens: f64::from(config.burst),
            updated: Instant::now(),
        }
    }

    /// Takes one token. `Ok` carries the headers for the admitted request's answer, `Err` the
    /// headers of the `429` answer.
    pub(crate) fn acquire(&mut self) -> Result<HeaderMap, HeaderMap> {
        self.refill(Instant::now());
        let burst = f64::from(self.config.burst);
        let mut headers = HeaderMap::new();
        headers.insert(LIMIT, HeaderValue::from(self.config.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if !self.config.headers {
                return Ok(HeaderMap::new());
            }
            headers.insert(REMAINING, HeaderValue::from(self.tokens.floor() as u64));
            insert_go_duration(&mut headers, self.wait_for(burst - self.tokens));
            return Ok(headers);
        }
        if !self.config.headers {
            headers.clear();
        }
        if self.config.headers {
            headers.insert(REMAINING, HeaderValue::from(0u32));
            insert_go_duration(&mut headers, self.wait_for(burst - self.tokens));
        }
        let retry = self.wait_for(1.0 - self.tokens);
        insert_hint(&mut headers, self.config.hint, retry);
        Err(headers)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        let rate = self.config.requests_per_second;
        if rate > 0.0 && elapsed > 0.0 {
            self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.config.burst));
        }
    }

    /// How long until `missing` tokens have been added back.
    fn wait_for(&self, missing: f64) -> Duration {
        let rate = self.config.requests_per_second;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        if rate.is_nan() || rate <= 0.0 {
            return MAX_WAIT;
        }
        Duration::try_from_secs_f64(missing / rate)
            .map(|wait| wait.min(MAX_WAIT))
            .unwrap_or(MAX_WAIT)
    }
}

fn insert_go_duration(headers: &mut HeaderMap, wait: Duration) {
    if let Ok(value) = HeaderValue::from_str(&go_duration(wait)) {
        headers.insert(RESET, value);
    }
}

pub(crate) fn insert_hint(headers: &mut HeaderMap, hint: HintStyle, wait: Duration) {
    let millis = ceil_millis(wait).max(1);
    let seconds = millis.div_ceil(1000);
    match hint {
        HintStyle::None => {}
        HintStyle::RetryAfterSeconds => {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        HintStyle::RetryAfterMs => {
            headers.insert(RETRY_AFTER_MS, HeaderValue::from(millis));
        }
        HintStyle::SecondsAndMs => {
            headers.insert(RETRY_AFTER_MS, HeaderValue::from(millis));
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        HintStyle::RetryAfterHttpDate => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            // A date has whole seconds: round the moment up so the client never comes early.
            let due = (now + Duration::from_millis(millis)).as_secs() + 1;
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(due));
            if let Ok(value) = HeaderValue::from_str(&date) {
                headers.insert(RETRY_AFTER, value);
            }
        }
    }
}

fn ceil_millis(wait: Duration) -> u64 {
    let nanos = wait.as_nanos();
    u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Formats a duration the way Go's `time.Duration` prints it, to millisecond precision
/// (rounded up): `0s`, `250ms`, `1s`, `1.5s`, `1m30s`, `1h0m0s`.
pub(crate) fn go_duration(wait: Duration) -> String {
    let millis = ceil_millis(wait);
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let hours = millis / 3_600_000;
    let minutes = (millis / 60_000) % 60;
    let second_millis = millis % 60_000;
    let mut seconds = format!("{}", second_millis / 1000);
    let fraction = second_millis % 1000;
    if fraction != 0 {
        let digits = format!("{fraction:03}");
        seconds.push('.');
        seconds.push_str(digits.trim_end_matches('0'));
    }
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_micros(1), "1ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(2987), "2.987s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(3_723_400), "1h2m3.4s"),
        ];
        for (wait, text) in cases {
            assert_eq!(go_duration(wait), text, "{wait:?}");
        }
    }

    #[test]
    fn bucket_never_refilling_announces_the_cap() {
        let mut bucket = TokenBucket::new(RateLimitConfig::new(0.0, 1));
        assert!(bucket.acquire().is_ok());
        let denied = bucket.acquire().err();
        let retry = denied.as_ref().and_then(|h| h.get(RETRY_AFTER));
        assert_eq!(retry, Some(&HeaderValue::from(3600u64)));
    }

    #[test]
    fn nan_rate_does_not_panic() {
        let mut bucket = TokenBucket::new(RateLimitConfig::new(f64::NAN, 0));
        assert!(bucket.acquire().is_err());
    }
}
