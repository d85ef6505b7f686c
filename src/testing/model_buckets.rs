//! [`ModelBuckets`]: the live buckets of one model's [`ModelLimits`], which admit or refuse a
//! request and take what it spends.

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::limit_headers::limit_headers;
use super::model_limits::ModelLimits;
use super::rate_limit::insert_hint;
use super::refill::RefillBucket;

/// What a model's buckets count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Prompt tokens, cached ones included.
    Prompt,
    /// Prompt tokens not served from the cache.
    UncachedPrompt,
    /// Generated tokens.
    Generated,
    /// Requests.
    Requests,
    /// Prompt plus generated tokens.
    Tokens,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Prompt,
        Kind::UncachedPrompt,
        Kind::Generated,
        Kind::Requests,
        Kind::Tokens,
    ];

    fn limit(self, limits: &ModelLimits) -> Option<u64> {
        match self {
            Kind::Prompt => limits.prompt,
            Kind::UncachedPrompt => limits.uncached_prompt,
            Kind::Generated => limits.generated,
            Kind::Requests => limits.requests,
            Kind::Tokens => limits.tokens,
        }
    }
}

/// What a request is charged when it is admitted (generated tokens come later, as produced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Charge {
    /// Prompt tokens, cached ones included.
    pub(crate) prompt: u64,
    /// Prompt tokens not served from the cache.
    pub(crate) uncached_prompt: u64,
}

impl Charge {
    fn of(self, kind: Kind) -> u64 {
        match kind {
            Kind::Prompt | Kind::Tokens => self.prompt,
            Kind::UncachedPrompt => self.uncached_prompt,
            Kind::Generated => 0,
            Kind::Requests => 1,
        }
    }
}

/// The buckets' answer to a request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Admitted and charged; the headers of its answer, and whether it is over the limit.
    Admitted {
        headers: HeaderMap,
        over_limit: bool,
    },
    /// Refused (`429`), nothing charged; the headers of the refusal, hint included.
    Refused { headers: HeaderMap, too_large: bool },
}

/// The buckets of one model.
#[derive(Debug)]
pub(crate) struct ModelBuckets {
    limits: ModelLimits,
    buckets: Vec<(Kind, RefillBucket)>,
}

impl ModelBuckets {
    /// Full buckets for every limit set.
    pub(crate) fn new(limits: ModelLimits) -> Self {
        let now = Instant::now();
        let buckets = Kind::ALL
            .into_iter()
            .filter_map(|kind| {
                let limit = kind.limit(&limits)?;
                Some((kind, RefillBucket::new(limit, limits.window, now)))
            })
            .collect();
        Self { limits, buckets }
    }

    /// Admits and charges the request if every bucket holds `max(charge, 1)`, else refuses it.
    pub(crate) fn admit(&mut self, charge: Charge) -> Verdict {
        self.refill();
        let mut wait = Some(Duration::ZERO);
        for (kind, bucket) in &self.buckets {
            let needed = charge.of(*kind).max(1);
            wait = match (wait, bucket.wait_for(needed)) {
                (Some(longest), Some(this)) => Some(longest.max(this)),
                _ => None,
            };
        }
        if wait == Some(Duration::ZERO) {
            for (kind, bucket) in &mut self.buckets {
                bucket.take(charge.of(*kind));
            }
            let over_limit = self.over_limit();
            let headers = limit_headers(&self.limits, self.levels(), over_limit);
            return Verdict::Admitted {
                headers,
                over_limit,
            };
        }
        let mut headers = limit_headers(&self.limits, self.levels(), self.over_limit());
        if let Some(wait) = wait {
            insert_hint(&mut headers, self.limits.hint, wait);
        }
        Verdict::Refused {
            headers,
            too_large: wait.is_none(),
        }
    }

    /// Takes `tokens` generated tokens from the generated and tokens buckets.
    pub(crate) fn produce(&mut self, tokens: u64) {
        self.refill();
        for (kind, bucket) in &mut self.buckets {
            if matches!(kind, Kind::Generated | Kind::Tokens) {
                bucket.take(tokens);
            }
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        for (_, bucket) in &mut self.buckets {
            bucket.refill(now);
        }
    }

    fn over_limit(&self) -> bool {
        let share = self.limits.over_limit_below;
        share > 0.0 && self.buckets.iter().any(|(_, bucket)| bucket.below(share))
    }

    fn levels(&self) -> impl Iterator<Item = (Kind, &RefillBucket)> {
        self.buckets.iter().map(|(kind, bucket)| (*kind, bucket))
    }
}
