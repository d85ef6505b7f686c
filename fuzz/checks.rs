//! Invariant checks shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and the corpus replay
//! test (`tests/fuzz_corpus.rs`), both of which include this file with `#[path]`.
//!
//! Every `check_*` function takes arbitrary bytes and panics when an invariant is broken.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use tower_reliability::{
    backoff::Jitter,
    context::Deadline,
    headers::{self, RateLimitHeaders, MAX_HINT},
    jobs::{self, JobState},
    JitteredBackoff,
};

/// A check: panics when an invariant is broken on this input.
pub type Check = fn(&[u8]);

/// Every fuzz target, by name: `fuzz/corpus/<name>/` holds its corpus.
pub const TARGETS: &[(&str, Check)] = &[
    ("retry_after", check_retry_after),
    ("parse_reset", check_parse_reset),
    ("rate_limit_headers", check_rate_limit_headers),
    ("should_retry", check_should_retry),
    ("fireworks_json", check_fireworks_json),
];

/// The `now`s every time-relative parser is checked at, in increasing order.
fn nows() -> [SystemTime; 4] {
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    [
        SystemTime::UNIX_EPOCH,
        fixed,
        fixed + Duration::from_millis(1500),
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
    ]
}

/// The input split into lines; line `i` becomes a value of header `names[i % names.len()]`
/// (appended, so a name can carry several values). Lines that are not valid header values are
/// skipped.
pub fn header_map(data: &[u8], names: &[&'static str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            map.append(HeaderName::from_static(names[i % names.len()]), value);
        }
    }
    map
}

fn assert_hint(d: Option<Duration>, what: &str) {
    if let Some(d) = d {
        assert!(d <= MAX_HINT, "{what}: {d:?} exceeds MAX_HINT");
    }
}

/// A time-relative reading must not grow as `now` advances, and must not appear or vanish.
fn assert_monotonic(readings: &[Option<Duration>], what: &str) {
    for pair in readings.windows(2) {
        assert_eq!(
            pair[0].is_some(),
            pair[1].is_some(),
            "{what}: presence depends on now: {readings:?}"
        );
        if let (Some(a), Some(b)) = (pair[0], pair[1]) {
            assert!(b <= a, "{what}: grew as now advanced: {readings:?}");
        }
    }
}

/// A small FNV-1a hash of the input, to derive a backoff configuration from it.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A backoff configuration derived from `seed`: (backoff, cap, max_server_wait).
pub fn backoff_from(seed: u64) -> (JitteredBackoff, Duration, Duration) {
    let pick = |shift: u32, choices: &[u64]| choices[((seed >> shift) as usize) % choices.len()];
    // Caps whose seconds are exact in f64: see the ignored
    // `bug_schedule_delay_can_exceed_a_cap_not_exact_in_f64` in tests/properties.rs.
    let millis = [
        0,
        1,
        250,
        1_000,
        30_000,
        120_000,
        86_400_000,
        4_294_967_296_000,
    ];
    let jitter = [
        Jitter::Guide,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
        Jitter::None,
    ][((seed >> 40) as usize) % 5];
    let base = Duration::from_millis(pick(0, &millis));
    let cap = Duration::from_millis(pick(8, &millis));
    let spread = Duration::from_millis(pick(16, &millis));
    let max_server_wait = Duration::from_millis(pick(24, &millis));
    let backoff = JitteredBackoff::default()
        .jitter(jitter)
        .base(base)
        .spread(spread)
        .max_delay(cap)
        .max_server_wait(max_server_wait)
        .seed(seed);
    (backoff, cap, max_server_wait)
}

/// Feeds a server hint through `wait_before` and checks the caps: a hint above
/// `max_server_wait` is refused as rate-limited; otherwise the wait is at most the larger of the
/// schedule's cap and the hint, and never past a deadline.
pub fn assert_backoff_respects_caps(
    backoff: &JitteredBackoff,
    cap: Duration,
    max_server_wait: Duration,
    hint: Option<Duration>,
) {
    let now = Instant::now();
    for retry in [0, 1, 4, 30, 63, 64, u32::MAX] {
        for previous in [None, Some(Duration::from_secs(1)), Some(MAX_HINT)] {
            match backoff.wait_before(retry, previous, hint, now, None) {
                Ok(wait) => {
                    let hint_ok = hint.unwrap_or(Duration::ZERO);
                    assert!(
                        hint_ok <= max_server_wait,
                        "hint {hint:?} above max_server_wait {max_server_wait:?} was accepted"
                    );
                    assert!(
                        wait <= cap.max(hint_ok),
                        "wait {wait:?} above cap {cap:?} and hint {hint:?} (retry {retry})"
                    );
                    assert!(wait >= hint_ok, "wait {wait:?} shorter than hint {hint:?}");
                }
                Err(e) => {
                    assert!(
                        e.is_rate_limited(),
                        "unexpected refusal without a deadline: {e:?}"
                    );
                    assert!(
                        hint.is_some_and(|h| h > max_server_wait),
                        "refused hint {hint:?} within max_server_wait {max_server_wait:?}"
                    );
                    assert_eq!(e.retry_after(), hint);
                }
            }
            for left in [
                Duration::ZERO,
                Duration::from_millis(1),
                Duration::from_secs(10),
            ] {
                let deadline = Some(Deadline::at(now + left));
                if let Ok(wait) = backoff.wait_before(retry, previous, hint, now, deadline) {
                    assert!(
                        wait < left,
                        "wait {wait:?} ends past the deadline {left:?} away"
                    );
                }
            }
        }
    }
}

/// `headers::retry_after` over `retry-after` / `retry-after-ms` values, and the resulting hint
/// through `JitteredBackoff::wait_before`.
pub fn check_retry_after(data: &[u8]) {
    for names in [
        &["retry-after", "retry-after-ms"][..],
        &["retry-after-ms", "retry-after"][..],
    ] {
        let map = header_map(data, names);
        let readings = nows().map(|now| headers::retry_after(&map, now));
        for r in readings {
            assert_hint(r, "retry_after");
        }
        assert_monotonic(&readings, "retry_after");
        // Nothing valid, nothing read.
        if map.is_empty() {
            assert_eq!(readings[0], None);
        }
        let hint = headers::retry_after(&map, SystemTime::now());
        assert_hint(hint, "retry_after(now)");
        let default = JitteredBackoff::default();
        assert_backoff_respects_caps(
            &default,
            Duration::from_secs(30),
            Duration::from_secs(120),
            hint,
        );
        let (backoff, cap, max_server_wait) = backoff_from(fnv(data));
        assert_backoff_respects_caps(&backoff, cap, max_server_wait, hint);
        for r in readings {
            assert_backoff_respects_caps(
                &default,
                Duration::from_secs(30),
                Duration::from_secs(120),
                r,
            );
        }
    }
}

/// `headers::parse_reset` on the input as text (lossily decoded, and each line alone).
pub fn check_parse_reset(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut values: Vec<&str> = vec![&text];
    values.extend(text.lines().take(8));
    for value in values {
        let readings = nows().map(|now| headers::parse_reset(value, now));
        for r in readings {
            assert_hint(r, "parse_reset");
        }
        assert_monotonic(&readings, "parse_reset");
        // Surrounding whitespace never changes the reading.
        let padded = format!(" \t{value} ");
        assert_eq!(
            headers::parse_reset(&padded, nows()[1]),
            readings[1],
            "padding changed {value:?}"
        );
    }
}

const RATE_LIMIT_NAMES: &[&str] = &[
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-over-limit",
];

/// `headers::RateLimitHeaders::parse`: hints capped, and each field as its own parser reads it.
pub fn check_rate_limit_headers(data: &[u8]) {
    let map = header_map(data, RATE_LIMIT_NAMES);
    let readings = nows().map(|now| RateLimitHeaders::parse(&map, now));
    for (now, rl) in nows().into_iter().zip(readings) {
        assert_hint(rl.reset_requests, "reset_requests");
        let text = |name: &str| map.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<u64>().ok());
        assert_eq!(rl.limit_requests, number(RATE_LIMIT_NAMES[0]));
        assert_eq!(rl.remaining_requests, number(RATE_LIMIT_NAMES[1]));
        assert_eq!(
            rl.reset_requests,
            text(RATE_LIMIT_NAMES[2]).and_then(|v| headers::parse_reset(v, now))
        );
        assert_eq!(rl.is_empty(), rl == RateLimitHeaders::default());
        if map.is_empty() {
            assert!(rl.is_empty());
        }
    }
    assert_monotonic(&readings.map(|r| r.reset_requests), "reset_requests");
}

/// `headers::should_retry`: `Some` exactly for a first value of `true` / `false` (any case,
/// surrounding whitespace allowed).
pub fn check_should_retry(data: &[u8]) {
    let map = header_map(data, &["x-should-retry"]);
    let got = headers::should_retry(&map);
    let expected = map
        .get("x-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches([' ', '\t']).to_ascii_lowercase())
        .and_then(|v| match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
    assert_eq!(got, expected, "{map:?}");
}

/// `jobs::fireworks_json` on arbitrary bytes as the body: no panic, a consistent `JobStatus`,
/// and agreement with `serde_json` on the state of every document `serde_json` accepts.
pub fn check_fireworks_json(data: &[u8]) {
    let (parts, ()) = http::Response::new(()).into_parts();
    let body = Bytes::copy_from_slice(data);
    let got = jobs::fireworks_json(&parts, &body);
    if let Ok(status) = &got {
        assert_eq!(&status.body[..], data, "the body is kept as is");
        assert_eq!(status.state, JobState::from_name(&status.raw_state));
        if let Some(p) = status.progress {
            assert!(p.is_finite(), "progress {p} is not finite");
        }
    }
    assert_eq!(
        got.as_ref().map(|s| (&s.raw_state, s.progress)).ok(),
        jobs::fireworks_json(&parts, &body)
            .as_ref()
            .map(|s| (&s.raw_state, s.progress))
            .ok(),
        "not deterministic"
    );
    // Differential: a document serde_json reads as an object, with no repeated top-level
    // member, must read the same here.
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(data)
    {
        if has_repeated_top_level_key(data) {
            return;
        }
        let string = |name: &str| object.get(name).and_then(|v| v.as_str());
        match string("state").or_else(|| string("status")) {
            Some(state) => {
                let status = got.as_ref().expect("serde_json reads a state here");
                assert_eq!(status.raw_state, state);
            }
            None => assert!(got.is_err(), "a state where serde_json finds none"),
        }
    }
}

/// Whether the JSON object in `data` (already known to be valid JSON) names a top-level member
/// twice, keys compared after decoding escapes.
fn has_repeated_top_level_key(data: &[u8]) -> bool {
    let ws = |pos: &mut usize| {
        while matches!(data.get(*pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *pos += 1;
        }
    };
    // The end (exclusive) of the string starting at `pos`.
    let string_end = |mut pos: usize| -> usize {
        pos += 1;
        while let Some(&b) = data.get(pos) {
            match b {
                b'\\' => pos += 2,
                b'"' => return pos + 1,
                _ => pos += 1,
            }
        }
        pos
    };
    let mut seen = std::collections::HashSet::new();
    let mut pos = 0;
    ws(&mut pos);
    if data.get(pos) != Some(&b'{') {
        return true;
    }
    pos += 1;
    loop {
        ws(&mut pos);
        if data.get(pos) != Some(&b'"') {
            return false; // `}`: the empty object
        }
        let end = string_end(pos);
        let Ok(key) = serde_json::from_slice::<String>(&data[pos..end.min(data.len())]) else {
            return true;
        };
        if !seen.insert(key) {
            return true;
        }
        pos = end;
        ws(&mut pos);
        pos += 1; // ':'
                  // Skip the value: count brackets outside strings until a top-level `,` or `}`.
        let mut depth = 0usize;
        loop {
            match data.get(pos) {
                None => return true,
                Some(b'"') => {
                    pos = string_end(pos);
                    continue;
                }
                Some(b'{' | b'[') => depth += 1,
                Some(b']') => depth = depth.saturating_sub(1),
                Some(b'}') if depth == 0 => return false,
                Some(b'}') => depth -= 1,
                Some(b',') if depth == 0 => break,
                _ => {}
            }
            pos += 1;
        }
        pos += 1;
    }
}
