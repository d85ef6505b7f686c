//! Reading the server's hints: `retry-after-ms`, `Retry-After`, `x-ratelimit-*`, `x-should-retry`.
//!
//! Every value here comes off the network, so every parser is total: a malformed, negative,
//! NaN, infinite or absurdly large value yields `None` (or is clamped to [`MAX_HINT`]) and the
//! caller falls back to its own schedule. Nothing here panics and nothing here caps waits to a
//! policy: the layers apply their own caps ([`JitteredBackoff::max_server_wait`]) on top.
//!
//! [`JitteredBackoff::max_server_wait`]: crate::JitteredBackoff::max_server_wait

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// Hints longer than this (one day) are clamped to it before any policy sees them, so that no
/// arithmetic on a hostile value can overflow.
pub const MAX_HINT: Duration = Duration::from_secs(24 * 60 * 60);

/// Unix timestamps (seconds) at or above this are read as absolute times in reset headers.
const UNIX_TIMESTAMP_FLOOR: f64 = 1_000_000_000.0;

/// The server's requested wait before the next attempt.
///
/// Read in the OpenAI SDK's order: `retry-after-ms` (milliseconds, fractions allowed), then
/// `Retry-After` as delta-seconds (fractions allowed), then `Retry-After` as an HTTP-date minus
/// `now` (a date in the past means "now": zero). Invalid values are skipped.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_reliability::headers::retry_after;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("retry-after", "2".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(2)));
/// headers.insert("retry-after-ms", "150.5".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_micros(150_500)));
/// headers.insert("retry-after-ms", "NaN".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(2)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()) {
        if let Some(d) = parse_decimal(ms).and_then(|ms| clamp_secs(ms / 1000.0)) {
            return Some(d);
        }
    }
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    if let Some(d) = parse_decimal(value).and_then(clamp_secs) {
        return Some(d);
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

/// Parses a plain non-negative decimal (`"2"`, `"0.25"`): no sign, exponent, `inf` or `NaN`,
/// which `f64::from_str` would accept.
fn parse_decimal(value: &str) -> Option<f64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    value.parse().ok()
}

fn clamp_secs(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs.min(MAX_HINT.as_secs_f64())).unwrap_or(MAX_HINT))
}

/// The `x-should-retry` override: `Some(true)` / `Some(false)` for `true` / `false`
/// (case-insensitive), `None` when absent or anything else.
pub fn should_retry(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get("x-should-retry")?.to_str().ok()?.trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The request rate-limit signals of a response (`x-ratelimit-*-requests`,
/// `x-ratelimit-over-limit`), as Fireworks and OpenAI send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitHeaders {
    /// `x-ratelimit-limit-requests`.
    pub limit_requests: Option<u64>,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: Option<u64>,
    /// `x-ratelimit-reset-requests`, as a wait from now: a Go-style duration (`1s`, `6m0s`,
    /// `250ms`), delta-seconds, or a Unix timestamp. OpenAI-compatible servers mean the time
    /// until the request bucket is *full again*, not until the next request fits (see
    /// [`Quota`](crate::rate_limit::Quota)).
    pub reset_requests: Option<Duration>,
    /// `x-ratelimit-over-limit: yes`: the server is near capacity and de-prioritised the request.
    pub over_limit: bool,
}

impl RateLimitHeaders {
    /// Reads the signals from a response's headers. Absent or malformed values are `None`.
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<u64>().ok());
        RateLimitHeaders {
            limit_requests: number("x-ratelimit-limit-requests"),
            remaining_requests: number("x-ratelimit-remaining-requests"),
            reset_requests: text("x-ratelimit-reset-requests").and_then(|v| parse_reset(v, now)),
            over_limit: text("x-ratelimit-over-limit")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes") || v.trim() == "true"),
        }
    }

    /// `true` when no signal was present (the cheap common case).
    pub fn is_empty(&self) -> bool {
        *self == RateLimitHeaders::default()
    }
}

/// Parses a reset value: a Go-style duration (`1s`, `6m0s`, `1h2m3.5s`, `250ms`; units in any
/// case, spaces allowed between parts), plain delta-seconds, or a Unix timestamp in seconds
/// (read relative to `now`). Anything else is `None`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_reliability::headers::parse_reset;
///
/// let now = SystemTime::now();
/// assert_eq!(parse_reset("6m0s", now), Some(Duration::from_secs(360)));
/// assert_eq!(parse_reset("250ms", now), Some(Duration::from_millis(250)));
/// assert_eq!(parse_reset("1.5", now), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_reset("soon", now), None);
/// ```
pub fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        if secs >= UNIX_TIMESTAMP_FLOOR {
            let since_epoch = Duration::try_from_secs_f64(secs.min(1e12)).ok()?;
            let at = SystemTime::UNIX_EPOCH.checked_add(since_epoch)?;
            return Some(
                at.duration_since(now)
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_HINT),
            );
        }
        return clamp_secs(secs);
    }
    parse_go_duration(value)
}

/// Parses a Go `time.Duration` string such as `1h2m3.5s` or `250ms`, clamped to [`MAX_HINT`].
///
/// Lenient with what other OpenAI-compatible servers send: units in any case (`2S`) and spaces
/// between a number and its unit or between parts (`1m 30s`). Every part still needs a number
/// and a unit.
fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim_start();
    let mut total = 0.0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        total += number * unit_scale(&rest[..unit_len])?;
        rest = rest[unit_len..].trim_start();
    }
    clamp_secs(total)
}

/// Seconds per unit of a Go duration (`h`, `m`, `s`, `ms`, `us` / `µs`, `ns`), any case.
fn unit_scale(unit: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 8] = [
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
        ("ms", 1e-3),
        ("us", 1e-6),
        ("\u{b5}s", 1e-6),
        ("\u{3bc}s", 1e-6),
        ("ns", 1e-9),
    ];
    UNITS
        .iter()
        .find(|(name, _)| unit.eq_ignore_ascii_case(name))
        .map(|&(_, scale)| scale)
}

/// A header map from `(name, value)` pairs, for the unit tests of every module that reads
/// headers.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, value.parse().expect("a valid test header value"));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_headers as headers;

    #[test]
    fn http_date_in_the_future_and_past() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &later)]), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", &earlier)]), now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn hostile_values_are_ignored_or_clamped() {
        let now = SystemTime::now();
        for bad in [
            "-1", "NaN", "inf", "1e9999", "", "  ", "soon", "1,5", "0x10", "-0.5",
        ] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", bad)]), now),
                None,
                "{bad:?}"
            );
            assert_eq!(
                retry_after(&headers(&[("retry-after-ms", bad)]), now),
                None,
                "{bad:?}"
            );
        }
        let huge = "99999999999999999999999999999999";
        assert_eq!(
            retry_after(&headers(&[("retry-after", huge)]), now),
            Some(MAX_HINT)
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", huge)]), now),
            Some(MAX_HINT)
        );
        assert_eq!(parse_reset("9999999h", now), Some(MAX_HINT));
        assert_eq!(parse_reset("1x", now), None);
        assert_eq!(parse_reset("s", now), None);
    }

    #[test]
    fn ms_wins_over_seconds() {
        let h = headers(&[("retry-after", "10"), ("retry-after-ms", "20")]);
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(20))
        );
    }

    #[test]
    fn reset_as_unix_timestamp() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_reset("1700000005", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_reset("1600000000", now), Some(Duration::ZERO));
        assert_eq!(
            parse_reset("1h2m3.5s", now),
            Some(Duration::from_millis(3_723_500))
        );
    }

    #[test]
    fn reset_values_as_servers_send_them() {
        let now = SystemTime::now();
        let ms = Duration::from_millis;
        for (value, expected) in [
            ("1s", ms(1000)),
            ("6m0s", ms(360_000)),
            ("20ms", ms(20)),
            ("1m30.5s", ms(90_500)),
            ("60", ms(60_000)),
            ("0.5", ms(500)),
            ("1h", ms(3_600_000)),
            ("500us", Duration::from_micros(500)),
            ("500\u{b5}s", Duration::from_micros(500)),
            ("0s", Duration::ZERO),
            // Not Go's own output, but seen from other servers: any case, spaces between parts.
            ("2S", ms(2000)),
            ("1M30S", ms(90_000)),
            ("1m 30s", ms(90_000)),
            ("2 s", ms(2000)),
            ("250 MS", ms(250)),
        ] {
            assert_eq!(parse_reset(value, now), Some(expected), "{value:?}");
        }
        for bad in [
            "-1s", "1.2.3s", "s1", "1x", "", "ms", ".s", "1e3s", "1 2s", "2s s", "NaN",
        ] {
            assert_eq!(parse_reset(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn rate_limit_headers_and_should_retry() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "600"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-over-limit", "yes"),
            ("x-should-retry", "FALSE"),
        ]);
        let rl = RateLimitHeaders::parse(&h, SystemTime::now());
        assert_eq!(rl.limit_requests, Some(600));
        assert_eq!(rl.remaining_requests, Some(0));
        assert_eq!(rl.reset_requests, Some(Duration::from_secs(2)));
        assert!(rl.over_limit);
        assert_eq!(should_retry(&h), Some(false));
        assert!(RateLimitHeaders::parse(&HeaderMap::new(), SystemTime::now()).is_empty());
        assert_eq!(should_retry(&headers(&[("x-should-retry", "maybe")])), None);
    }
}
