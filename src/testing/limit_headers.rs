//! The limit headers of a model's answers, in Fireworks' current form (per second), its older
//! form (per minute, with remaining counts) or OpenAI's, as [`ModelLimits`] describes them.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::model_buckets::Kind;
use super::model_limits::{FireworksHeaders, ModelLimits};
use super::rate_limit::go_duration;
use super::refill::RefillBucket;

/// `x-ratelimit-over-limit: yes` when the client sends above the sustained rate.
const OVER_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-over-limit");

/// The headers for the buckets' levels.
pub(crate) fn limit_headers<'a>(
    limits: &ModelLimits,
    levels: impl Iterator<Item = (Kind, &'a RefillBucket)>,
    over_limit: bool,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (kind, bucket) in levels {
        match limits.fireworks_headers {
            FireworksHeaders::None => {}
            FireworksHeaders::Current => current(&mut headers, kind, bucket),
            FireworksHeaders::Legacy => legacy(&mut headers, kind, bucket),
        }
        if limits.openai_headers {
            openai(&mut headers, kind, bucket);
        }
    }
    if over_limit {
        headers.insert(OVER_LIMIT, HeaderValue::from_static("yes"));
    }
    headers
}

/// Today's form: the limit in tokens per second.
fn current(headers: &mut HeaderMap, kind: Kind, bucket: &RefillBucket) {
    let name = match kind {
        Kind::Prompt => "x-ratelimit-limit-tokens-prompt",
        Kind::UncachedPrompt => "x-ratelimit-limit-tokens-cache-adjusted-prompt",
        Kind::Generated => "x-ratelimit-limit-tokens-generated",
        Kind::Requests | Kind::Tokens => return,
    };
    insert(headers, name, &per_second(bucket.per_minute()));
}

/// The older form: the limit per minute and the whole units remaining.
fn legacy(headers: &mut HeaderMap, kind: Kind, bucket: &RefillBucket) {
    let (limit, remaining) = match kind {
        Kind::Prompt => (
            "x-ratelimit-limit-tokens-prompt",
            "x-ratelimit-remaining-tokens-prompt",
        ),
        Kind::Generated => (
            "x-ratelimit-limit-tokens-generated",
            "x-ratelimit-remaining-tokens-generated",
        ),
        Kind::Requests => (
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
        ),
        Kind::UncachedPrompt | Kind::Tokens => return,
    };
    insert(headers, limit, &bucket.per_minute().to_string());
    insert(headers, remaining, &bucket.remaining().to_string());
}

/// OpenAI's: limit, remaining and the time until full, for requests and tokens.
fn openai(headers: &mut HeaderMap, kind: Kind, bucket: &RefillBucket) {
    let (limit, remaining, reset) = match kind {
        Kind::Requests => (
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        Kind::Tokens => (
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
        Kind::Prompt | Kind::UncachedPrompt | Kind::Generated => return,
    };
    insert(headers, limit, &bucket.per_minute().to_string());
    insert(headers, remaining, &bucket.remaining().to_string());
    insert(headers, reset, &go_duration(bucket.time_to_full()));
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// `per_minute / 60`: a whole number when it is one, else up to three decimals (rounded to
/// nearest, trailing zeros trimmed).
pub(crate) fn per_second(per_minute: u64) -> String {
    if per_minute % 60 == 0 {
        return (per_minute / 60).to_string();
    }
    let thousandths = (u128::from(per_minute) * 1000 + 30) / 60;
    let text = format!("{}.{:03}", thousandths / 1000, thousandths % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_values() {
        let cases = [
            (3_600_000, "60000"),
            (900_000, "15000"),
            (36_000, "600"),
            (0, "0"),
            (1000, "16.667"),
            (90, "1.5"),
            (1, "0.017"),
            (u64::MAX, "307445734561825860.25"),
        ];
        for (per_minute, text) in cases {
            assert_eq!(per_second(per_minute), text, "{per_minute}");
        }
    }
}
