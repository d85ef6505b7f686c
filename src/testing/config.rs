//! Configuration of a [`FireworksServer`](super::FireworksServer).

use std::time::Duration;

use super::faults::{Fault, FaultMix};
use super::model_limits::ModelLimits;

/// The model every server knows unless configured otherwise.
pub const DEFAULT_MODEL: &str = "accounts/fireworks/models/llama-v3p1-8b-instruct";

/// The API key every server expects unless configured otherwise.
pub const DEFAULT_API_KEY: &str = "test-key";

/// How a `429 Too Many Requests` answer tells the client when to come back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HintStyle {
    /// No `Retry-After` hint at all (the `x-ratelimit-*` headers are still sent).
    None,
    /// `Retry-After: <seconds>`, an integer rounded up (never `0`).
    #[default]
    RetryAfterSeconds,
    /// `retry-after-ms: <milliseconds>`, an integer rounded up, as OpenAI sends it.
    RetryAfterMs,
    /// `Retry-After: <HTTP-date>`, the moment a request is allowed again, rounded up to a whole
    /// second.
    RetryAfterHttpDate,
    /// Both `retry-after-ms: <milliseconds>` (exact, rounded up to the millisecond) and
    /// `Retry-After: <seconds>` (rounded up), as OpenAI sends them: a client reading either
    /// never comes back early.
    SecondsAndMs,
}

/// A request quota with OpenAI's and Fireworks' semantics: a bucket of `burst` requests,
/// refilled **continuously** at `requests_per_second` (not a fixed window that resets all at
/// once), so a client over its quota gets one request back every `1 / requests_per_second`.
///
/// Every chat, `/echo-hash` and batch-job request that passes authentication takes one
/// request from the bucket. Its answer, served or refused, carries:
///
/// * `x-ratelimit-limit-requests`: the bucket size (`burst`);
/// * `x-ratelimit-remaining-requests`: the whole requests left after this one;
/// * `x-ratelimit-reset-requests`: the time until the bucket is **full again** (Go-style, such
///   as `1s`, `1m0s` or `250ms`, rounded up to the millisecond), *not* the time until the next
///   request fits: with the bucket empty, that is `reset / limit`.
///
/// An empty bucket answers `429` with a `rate_limit_error` body and the hint chosen by
/// [`HintStyle`]: the exact time until one request fits again (rounded up, never early).
/// [`HintStyle::SecondsAndMs`] sends both `retry-after-ms` and `Retry-After`, as OpenAI does.
///
/// The quota runs on Tokio's clock, so under paused time (`#[tokio::test(start_paused =
/// true)]`) it refills in virtual time, exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitConfig {
    pub(crate) requests_per_second: f64,
    pub(crate) burst: u32,
    pub(crate) hint: HintStyle,
    pub(crate) headers: bool,
}

impl RateLimitConfig {
    /// A bucket of `burst` tokens refilled at `requests_per_second` (a rate of zero, negative or
    /// NaN never refills), with [`HintStyle::RetryAfterSeconds`].
    pub fn new(requests_per_second: f64, burst: u32) -> Self {
        Self {
            requests_per_second,
            burst,
            hint: HintStyle::default(),
            headers: true,
        }
    }

    /// Whether answers carry the `x-ratelimit-*` headers (default `true`). Without them, and
    /// with [`HintStyle::None`], a client learns nothing but the 429 itself: what the
    /// adaptive sending rate is for.
    pub fn headers(mut self, send: bool) -> Self {
        self.headers = send;
        self
    }

    /// Chooses how `429` answers hint at the wait.
    pub fn hint(mut self, hint: HintStyle) -> Self {
        self.hint = hint;
        self
    }

    /// The refill rate.
    pub fn requests_per_second(&self) -> f64 {
        self.requests_per_second
    }

    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The hint style of `429` answers.
    pub fn hint_style(&self) -> HintStyle {
        self.hint
    }
}

/// Everything a [`FireworksServer`](super::FireworksServer) is started with.
///
/// Built from [`Default`] with builder-style methods:
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::testing::{RateLimitConfig, ServerConfig};
///
/// let config = ServerConfig::default()
///     .api_key("secret")
///     .tokens_per_completion(4)
///     .token_interval(Duration::from_millis(1))
///     .rate_limit(RateLimitConfig::new(10.0, 5));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) api_key: Option<String>,
    pub(crate) models: Vec<String>,
    pub(crate) token_interval: Duration,
    pub(crate) tokens_per_completion: usize,
    pub(crate) rate_limit: Option<RateLimitConfig>,
    pub(crate) model_limits: Option<ModelLimits>,
    pub(crate) limits_for: Vec<(String, ModelLimits)>,
    pub(crate) cached_prompt_share: f64,
    pub(crate) fault_mix: FaultMix,
    pub(crate) script: Vec<Fault>,
    pub(crate) max_body_bytes: usize,
    pub(crate) shutdown_grace: Duration,
}

impl Default for ServerConfig {
    /// API key `test-key`, the one model [`DEFAULT_MODEL`], 16 tokens per completion streamed
    /// every 5 ms, no rate limit, no model limits, no cached prompt tokens, no random faults, an empty script, request bodies up to 4 MiB
    /// and one second of grace on shutdown.
    fn default() -> Self {
        Self {
            api_key: Some(DEFAULT_API_KEY.to_owned()),
            models: vec![DEFAULT_MODEL.to_owned()],
            token_interval: Duration::from_millis(5),
            tokens_per_completion: 16,
            rate_limit: None,
            model_limits: None,
            limits_for: Vec::new(),
            cached_prompt_share: 0.0,
            fault_mix: FaultMix::default(),
            script: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

impl ServerConfig {
    /// Requires `Authorization: Bearer <key>` on the chat and models endpoints.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Accepts requests without any `Authorization` header.
    pub fn without_auth(mut self) -> Self {
        self.api_key = None;
        self
    }

    /// Replaces the known models; requests naming any other model get `404`.
    pub fn models<I>(mut self, models: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// The pause between two streamed events.
    pub fn token_interval(mut self, interval: Duration) -> Self {
        self.token_interval = interval;
        self
    }

    /// How many content tokens a completion has (a request's `max_tokens` may lower it).
    pub fn tokens_per_completion(mut self, tokens: usize) -> Self {
        self.tokens_per_completion = tokens;
        self
    }

    /// Sets (or, with `None`, removes) the request rate limit.
    pub fn rate_limit(mut self, limit: impl Into<Option<RateLimitConfig>>) -> Self {
        self.rate_limit = limit.into();
        self
    }

    /// Sets (or, with `None`, removes) the limits every model gets unless
    /// [`limits_for`](Self::limits_for) gives it its own. Each model has buckets of its own:
    /// traffic to one model never spends another's.
    pub fn model_limits(mut self, limits: impl Into<Option<ModelLimits>>) -> Self {
        self.model_limits = limits.into();
        self
    }

    /// Gives one model its own limits, in place of the [`model_limits`](Self::model_limits).
    /// The model must also be among the [`models`](Self::models) (others are answered `404`).
    pub fn limits_for(mut self, model: impl Into<String>, limits: ModelLimits) -> Self {
        let model = model.into();
        self.limits_for.retain(|(name, _)| *name != model);
        self.limits_for.push((model, limits));
        self
    }

    /// The share of every prompt served from the prompt cache (default `0.0`; clamped to
    /// `0.0..=1.0`, NaN is `0.0`): a prompt of `P` tokens has `floor(P * share)` cached ones,
    /// reported as `usage.prompt_tokens_details.cached_tokens` and not charged to the uncached
    /// prompt bucket of [`ModelLimits`].
    pub fn cached_prompt_share(mut self, share: f64) -> Self {
        self.cached_prompt_share = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }

    /// Random faults drawn for requests that find the script empty.
    pub fn fault_mix(mut self, mix: FaultMix) -> Self {
        self.fault_mix = mix;
        self
    }

    /// Faults queued before the first request, as with
    /// [`FireworksServer::push_script`](super::FireworksServer::push_script).
    pub fn script(mut self, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.script.extend(faults);
        self
    }

    /// The largest request body read; larger ones are answered `413`.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// How long [`FireworksServer::shutdown`](super::FireworksServer::shutdown) waits for
    /// in-flight responses before closing their connections.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}
