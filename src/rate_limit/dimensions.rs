//! The per-dimension token model of one scope: a continuously refilling bucket for prompt
//! tokens, uncached prompt tokens and generated tokens, sized from the limits a response
//! states ([`TokenLimits`]: Fireworks' current headers, tokens **per second**, no
//! `remaining`).
//!
//! Fireworks enforces its token limits **per minute**: each bucket holds a minute of its rate
//! and refills at the stated rate per second. A request is charged when it goes: its prompt
//! estimate to the prompt buckets, its output reservation (`max_tokens`, or a learned typical
//! completion) to the generated one; when its answer ends, the charge is **settled** with the
//! answer's `usage` (the difference refunded or charged). A request goes when every bucket
//! covers its charge; one larger than a whole bucket waits for a full bucket and goes alone.
//!
//! The model exists only once its scope was throttled (a 429 or the over-limit flag) and the
//! limits are known: the healthy path pays nothing. It starts **empty** (the server has just
//! said it is at its limit) and is dropped with its scope's gate.

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::{bucket::RequestBucket, Quota, Usage};

/// The token limits a response states, tokens per second per dimension.
///
/// Read from Fireworks' current headers (`x-ratelimit-limit-tokens-prompt`,
/// `x-ratelimit-limit-tokens-cache-adjusted-prompt`, `x-ratelimit-limit-tokens-generated`, in
/// tokens per second), or from its older per-minute form of the same names when it carries
/// `x-ratelimit-remaining-tokens-*` (then divided by 60).
///
/// ```
/// use http::HeaderMap;
/// use tower_reliability::rate_limit::TokenLimits;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-limit-tokens-generated", "600".parse().unwrap());
/// let limits = TokenLimits::from_headers(&headers).expect("a limit");
/// assert_eq!(limits.generated, Some(600.0));
/// assert_eq!(limits.prompt, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct TokenLimits {
    /// Prompt tokens (cached ones included) per second.
    pub prompt: Option<f64>,
    /// Uncached prompt tokens per second (`-cache-adjusted-prompt`).
    pub uncached_prompt: Option<f64>,
    /// Generated tokens per second.
    pub generated: Option<f64>,
}

const PROMPT: &str = "x-ratelimit-limit-tokens-prompt";
const UNCACHED: &str = "x-ratelimit-limit-tokens-cache-adjusted-prompt";
const GENERATED: &str = "x-ratelimit-limit-tokens-generated";
const REMAINING_PROMPT: &str = "x-ratelimit-remaining-tokens-prompt";
const REMAINING_GENERATED: &str = "x-ratelimit-remaining-tokens-generated";

impl TokenLimits {
    /// Reads a response's limit headers; `None` when none is there (or none is a positive
    /// number). Three lookups when there is none.
    pub fn from_headers(headers: &HeaderMap) -> Option<TokenLimits> {
        let prompt = headers.get(PROMPT);
        let uncached = headers.get(UNCACHED);
        let generated = headers.get(GENERATED);
        if prompt.is_none() && uncached.is_none() && generated.is_none() {
            return None;
        }
        // The older form gives the same names per minute, with remaining counts beside them.
        let per_minute = uncached.is_none()
            && (headers.contains_key(REMAINING_PROMPT)
                || headers.contains_key(REMAINING_GENERATED));
        let scale = if per_minute { 1.0 / 60.0 } else { 1.0 };
        let rate = |v: Option<&http::HeaderValue>| {
            let n: f64 = v?.to_str().ok()?.trim().parse().ok()?;
            (n.is_finite() && n > 0.0).then_some(n * scale)
        };
        let limits = TokenLimits {
            prompt: rate(prompt),
            uncached_prompt: rate(uncached),
            generated: rate(generated),
        };
        (limits != TokenLimits::default()).then_some(limits)
    }
}

/// What a request was charged when it went, per dimension: what its settlement corrects.
///
/// ```
/// use tower_reliability::rate_limit::TokenCharge;
///
/// let charge = TokenCharge::new(300, 50);
/// assert_eq!((charge.prompt, charge.output), (300, 50));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCharge {
    /// The prompt estimate.
    pub prompt: u64,
    /// The output reservation.
    pub output: u64,
    /// The output reservation is the request's own cap (`max_tokens`), the most it can
    /// generate; `false`: a default, which the gate replaces by a learned typical completion.
    pub output_capped: bool,
}

impl TokenCharge {
    /// A charge of `prompt` estimated prompt tokens and `output` reserved generated ones, the
    /// request's own cap.
    pub fn new(prompt: u64, output: u64) -> Self {
        TokenCharge {
            prompt,
            output,
            output_capped: true,
        }
    }

    /// What a single token allowance (prompt and output together) is charged: the prompt
    /// estimate plus the output reservation when it is the request's own cap; a default
    /// reservation counts nothing there.
    pub fn capped_total(&self) -> u64 {
        let output = if self.output_capped { self.output } else { 0 };
        self.prompt.saturating_add(output)
    }

    /// A charge whose output reservation is a default (the request sets no `max_tokens`).
    pub fn uncapped(prompt: u64, output: u64) -> Self {
        TokenCharge {
            output_capped: false,
            ..TokenCharge::new(prompt, output)
        }
    }
}

/// How many seconds of its stated rate a bucket holds: enforcement is per minute.
const WINDOW: Duration = Duration::from_secs(60);

/// One scope's token buckets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenModel {
    prompt: Option<RequestBucket>,
    uncached: Option<RequestBucket>,
    generated: Option<RequestBucket>,
    /// When the model was made: requests sent before were not charged, and are not settled.
    since: Instant,
}

/// A bucket of a minute of `per_second`, with `level` at `now` (`None`: full).
fn bucket(now: Instant, per_second: f64, empty: bool, max: Duration) -> Option<RequestBucket> {
    let capacity = (per_second * WINDOW.as_secs_f64()).round().max(1.0) as u64;
    let remaining = if empty { 0 } else { capacity };
    RequestBucket::new(now, Quota::new(Some(capacity), remaining, None), max)
}

impl TokenModel {
    /// An empty model of `limits` at `now` (the server just said its limit is reached);
    /// `None` if it states no limit. The refill interval of a token is capped at `max`.
    pub(crate) fn new(now: Instant, limits: TokenLimits, max: Duration) -> Option<TokenModel> {
        let model = TokenModel {
            prompt: limits.prompt.and_then(|r| bucket(now, r, true, max)),
            uncached: limits
                .uncached_prompt
                .and_then(|r| bucket(now, r, true, max)),
            generated: limits.generated.and_then(|r| bucket(now, r, true, max)),
            since: now,
        };
        let any = model.prompt.is_some() || model.uncached.is_some() || model.generated.is_some();
        any.then_some(model)
    }

    /// Takes in newer limits (the server's limits adapt): each bucket's size and rate, its
    /// level kept (and capped at the new size); a dimension newly stated starts full.
    pub(crate) fn learn(&mut self, now: Instant, limits: TokenLimits, max: Duration) {
        let slots = [
            (&mut self.prompt, limits.prompt),
            (&mut self.uncached, limits.uncached_prompt),
            (&mut self.generated, limits.generated),
        ];
        for (slot, rate) in slots {
            let Some(rate) = rate else { continue };
            match slot {
                Some(b) => {
                    let capacity = (rate * WINDOW.as_secs_f64()).round().max(1.0) as u64;
                    b.learn(now, Quota::new(Some(capacity), capacity, None), max);
                }
                None => *slot = bucket(now, rate, false, max),
            }
        }
    }

    fn buckets(&self) -> [(Option<&RequestBucket>, Dimension); 3] {
        [
            (self.prompt.as_ref(), Dimension::Prompt),
            (self.uncached.as_ref(), Dimension::Prompt),
            (self.generated.as_ref(), Dimension::Output),
        ]
    }

    /// When the buckets do not all cover `charge` at `now`: when they will. `None` when they
    /// do. (No queue spacing: a charge is a reservation that settlement mostly gives back, so
    /// the waiters behind ask again when it does rather than being spaced by it.)
    pub(crate) fn shortfall(&self, now: Instant, charge: TokenCharge) -> Option<Instant> {
        self.buckets()
            .into_iter()
            .filter_map(|(b, dim)| Some(b?.shortfall(now, dim.of(charge))?.0))
            .max()
    }

    /// A request goes now: charge it.
    pub(crate) fn charge(&mut self, now: Instant, charge: TokenCharge) {
        for (b, dim) in self.buckets_mut() {
            if let Some(b) = b {
                b.take_n(now, dim.of(charge));
            }
        }
    }

    /// A request sent at `sent_at`, charged `charged`, cost `usage`: refund or charge the
    /// difference. Returns whether tokens came back. A request sent before the model was made
    /// was not charged: nothing to settle (the model started empty for it).
    pub(crate) fn settle(
        &mut self,
        now: Instant,
        sent_at: Instant,
        charged: TokenCharge,
        usage: Usage,
    ) -> bool {
        if sent_at <= self.since {
            return false;
        }
        let actual = TokenCharge::new(
            u64::from(usage.prompt_tokens),
            u64::from(usage.completion_tokens),
        );
        let mut refunded = false;
        for (b, dim) in self.buckets_mut() {
            if let Some(b) = b {
                refunded |= b.settle(now, dim.of(charged), dim.of(actual));
            }
        }
        refunded
    }

    fn buckets_mut(&mut self) -> [(Option<&mut RequestBucket>, Dimension); 3] {
        [
            (self.prompt.as_mut(), Dimension::Prompt),
            (self.uncached.as_mut(), Dimension::Prompt),
            (self.generated.as_mut(), Dimension::Output),
        ]
    }

    /// Whether every bucket has refilled: nothing left to enforce.
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        self.buckets()
            .into_iter()
            .all(|(b, _)| b.is_none_or(|b| b.is_full(now)))
    }
}

/// Which part of a charge a bucket counts.
#[derive(Debug, Clone, Copy)]
enum Dimension {
    Prompt,
    Output,
}

impl Dimension {
    fn of(self, charge: TokenCharge) -> u64 {
        match self {
            Dimension::Prompt => charge.prompt,
            Dimension::Output => charge.output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    use crate::headers::test_headers as h;

    #[test]
    fn limits_are_read_in_both_forms() {
        let current = h(&[
            ("x-ratelimit-limit-tokens-prompt", "60000"),
            ("x-ratelimit-limit-tokens-cache-adjusted-prompt", "15000"),
            ("x-ratelimit-limit-tokens-generated", "16.667"),
        ]);
        let limits = TokenLimits::from_headers(&current).expect("limits");
        assert_eq!(limits.prompt, Some(60000.0));
        assert_eq!(limits.uncached_prompt, Some(15000.0));
        assert_eq!(limits.generated, Some(16.667));
        let legacy = h(&[
            ("x-ratelimit-limit-tokens-generated", "600"),
            ("x-ratelimit-remaining-tokens-generated", "12"),
        ]);
        let limits = TokenLimits::from_headers(&legacy).expect("limits");
        assert_eq!(limits.generated, Some(10.0), "per minute");
        assert_eq!(TokenLimits::from_headers(&h(&[])), None);
        let garbage = h(&[
            ("x-ratelimit-limit-tokens-generated", "lots"),
            ("x-ratelimit-limit-tokens-prompt", "-3"),
        ]);
        assert_eq!(TokenLimits::from_headers(&garbage), None);
        assert_eq!(
            TokenLimits::from_headers(&h(&[("x-ratelimit-limit-tokens-prompt", "NaN")])),
            None
        );
    }

    fn generated(per_second: f64) -> TokenLimits {
        TokenLimits {
            generated: Some(per_second),
            ..TokenLimits::default()
        }
    }

    #[test]
    fn an_empty_model_paces_by_the_dimension_that_binds_and_settles() {
        let t0 = Instant::now();
        let max = Duration::from_secs(120);
        // 10 generated tokens a second: a bucket of 600, empty.
        let mut m = TokenModel::new(t0, generated(10.0), max).expect("a model");
        let charge = TokenCharge::new(5000, 50);
        // The prompt is free here; 50 generated tokens take 5 s.
        assert_eq!(m.shortfall(t0, charge), Some(t0 + ms(5000)));
        let t1 = t0 + ms(5000);
        assert_eq!(m.shortfall(t1, charge), None);
        m.charge(t1, charge);
        // It produced 10, not 50: 40 come back at once.
        assert!(m.settle(t1, t1, charge, usage(5000, 10)));
        assert_eq!(m.shortfall(t1, TokenCharge::new(0, 40)), None);
        assert!(m.shortfall(t1, TokenCharge::new(0, 41)).is_some());
        // It produced 90: 40 more are owed.
        m.charge(t1, TokenCharge::new(0, 40));
        assert!(!m.settle(t1, t1 + ms(1), TokenCharge::new(0, 40), usage(0, 80)));
        assert_eq!(
            m.shortfall(t1, TokenCharge::new(0, 10)),
            Some(t1 + ms(5000))
        );
        // A request sent before the model was made was never charged.
        assert!(!m.settle(t1, t0, charge, usage(0, 0)));
        assert!(!m.is_full(t1));
        assert!(m.is_full(t1 + Duration::from_secs(70)));
    }

    #[test]
    fn newer_limits_resize_and_a_new_dimension_starts_full() {
        let t0 = Instant::now();
        let max = Duration::from_secs(120);
        let mut m = TokenModel::new(t0, generated(10.0), max).expect("a model");
        let both = TokenLimits {
            prompt: Some(100.0),
            generated: Some(20.0),
            ..TokenLimits::default()
        };
        m.learn(t0, both, max);
        assert_eq!(
            m.shortfall(t0, TokenCharge::new(6000, 20)),
            Some(t0 + ms(1000)),
            "the prompt bucket is full (6000); 20 generated at 20/s"
        );
        assert!(TokenModel::new(t0, TokenLimits::default(), max).is_none());
    }

    fn usage(prompt: u32, completion: u32) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        }
    }
}
