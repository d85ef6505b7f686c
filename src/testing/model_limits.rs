//! [`ModelLimits`]: the per-model token and request limits Fireworks enforces, as the test
//! server emulates them.

use std::time::Duration;

use super::config::HintStyle;

/// The limits of one model, as Fireworks' serverless tier enforces them: **per model** (a
/// request's `model`; a fast and a regular variant are two models), in **tokens per minute**,
/// each a bucket refilled **continuously** (not a window that resets all at once).
///
/// Up to five buckets, each optional:
///
/// | bucket | counts | set with |
/// |---|---|---|
/// | prompt | prompt tokens, cached ones included | [`prompt_tokens_per_minute`](Self::prompt_tokens_per_minute) |
/// | uncached prompt | prompt tokens not served from the prompt cache | [`uncached_prompt_tokens_per_minute`](Self::uncached_prompt_tokens_per_minute) |
/// | generated | completion tokens | [`generated_tokens_per_minute`](Self::generated_tokens_per_minute) |
/// | requests | requests | [`requests_per_minute`](Self::requests_per_minute) |
/// | tokens | prompt + completion tokens (OpenAI's single TPM) | [`tokens_per_minute`](Self::tokens_per_minute) |
///
/// They apply to chat completions (the requests that name a model), after authentication,
/// the server-wide [`RateLimitConfig`](super::RateLimitConfig) and the request's validation.
///
/// A bucket of `L` per minute holds one [`window`](Self::window) of its rate (by default one
/// minute: `L`), starts full, and refills at `L / 60` per second on Tokio's clock (so
/// paused-time tests drive it exactly).
///
/// # Accounting
///
/// * A request's prompt tokens are counted from its messages: the UTF-8 bytes of each
///   message's text, divided by four and rounded up (see the [module](super#token-accounting));
///   a share of them is cached
///   ([`ServerConfig::cached_prompt_share`](super::ServerConfig::cached_prompt_share), none by
///   default).
/// * When a request is **admitted**, it is charged at once: one request, its prompt tokens
///   (prompt and tokens buckets) and its uncached prompt tokens.
/// * **Generated** tokens are charged **as they are produced**: a streamed token when its event
///   is sent, a JSON completion all at once when its body is sent. A stream cut short (the
///   client went away, or a fault cut it) is charged only the tokens it sent. The generated
///   and tokens buckets may therefore go below zero (a debt that the refill pays back first).
///
/// # Admission, over-limit and `429`
///
/// * A request is **admitted** when every bucket holds at least its charge at admission, and at
///   least one unit: `level >= max(charge, 1)` (for the generated bucket: at least one token,
///   since no one knows before generating how much a request will produce).
/// * An admitted request's answer says `x-ratelimit-over-limit: yes` when, after its charge,
///   some bucket holds less than the [`over_limit_below`](Self::over_limit_below) share of its
///   size (a quarter by default): the client has been sending above the sustained rate and is
///   being served from the burst, as Fireworks serves traffic above the guaranteed limit.
/// * Otherwise the answer is `429` (`rate_limit_error`, code `rate_limit_exceeded`), and
///   nothing is charged. With a [`hint`](Self::hint) (none by default: Fireworks promises
///   none) it says how long until every bucket holds the request's charge, exactly as of now
///   (streams still in flight may take more meanwhile), rounded up. A request whose charge is
///   larger than a bucket can ever hold is answered `429` with code `request_too_large` and no
///   hint.
///
/// # Headers
///
/// On every answer of an admitted or refused request, for the buckets configured, the levels
/// being those after the request's charge (whole units, rounded down, never below zero), in
/// the [`FireworksHeaders`] form chosen with [`fireworks_headers`](Self::fireworks_headers):
///
/// * [`FireworksHeaders::Current`] (the default), Fireworks' current form: limits only, in
///   tokens **per second** (`L / 60`, a decimal when not whole):
///   `x-ratelimit-limit-tokens-prompt`, `x-ratelimit-limit-tokens-cache-adjusted-prompt`
///   (uncached prompt), `x-ratelimit-limit-tokens-generated`;
/// * [`FireworksHeaders::Legacy`], Fireworks' older form, **per minute**:
///   `x-ratelimit-limit-requests`, `x-ratelimit-limit-tokens-prompt`,
///   `x-ratelimit-limit-tokens-generated` and the matching `x-ratelimit-remaining-*`.
///
/// The two forms are exclusive: they give **the same header names**
/// (`x-ratelimit-limit-tokens-prompt`, `x-ratelimit-limit-tokens-generated`; HTTP names ignore
/// case) different units. A client tells them apart by the company they keep: the current form
/// has `x-ratelimit-limit-tokens-cache-adjusted-prompt` and no `x-ratelimit-remaining-tokens-*`.
///
/// With [`openai_headers`](Self::openai_headers) (off by default), answers also carry
/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: `-tokens` for the tokens bucket,
/// `reset` the time until the bucket is full again (Go-style: `1s`, `6m0s`, `250ms`).
/// `x-ratelimit-{limit,remaining}-requests` mean the same in the legacy and OpenAI forms (with
/// a one-minute window). A server-wide [`RateLimitConfig`](super::RateLimitConfig) writes the
/// same request headers, and its own replace the model's: configure one request limit or the
/// other.
///
/// Answers that say over-limit carry `x-ratelimit-over-limit: yes` in every form (also `429`s).
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::testing::{HintStyle, ModelLimits, ServerConfig};
///
/// let config = ServerConfig::default()
///     // Every model: Fireworks' starting limits (3.6M / 900k / 36k tokens per minute).
///     .model_limits(ModelLimits::fireworks_serverless())
///     // This one: 6000 prompt and 600 generated tokens a minute, 429s with an exact hint.
///     .limits_for(
///         "accounts/fireworks/models/llama-v3p1-8b-instruct",
///         ModelLimits::new()
///             .prompt_tokens_per_minute(6000)
///             .generated_tokens_per_minute(600)
///             .hint(HintStyle::SecondsAndMs),
///     );
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelLimits {
    pub(crate) prompt: Option<u64>,
    pub(crate) uncached_prompt: Option<u64>,
    pub(crate) generated: Option<u64>,
    pub(crate) requests: Option<u64>,
    pub(crate) tokens: Option<u64>,
    pub(crate) window: Duration,
    pub(crate) over_limit_below: f64,
    pub(crate) hint: HintStyle,
    pub(crate) fireworks_headers: FireworksHeaders,
    pub(crate) openai_headers: bool,
}

/// Which of Fireworks' two generations of limit headers a [`ModelLimits`] sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FireworksHeaders {
    /// None of them (the over-limit flag and the OpenAI set are still sent when chosen).
    None,
    /// Today's: `x-ratelimit-limit-tokens-{prompt,cache-adjusted-prompt,generated}` in tokens
    /// per second, no remaining counts.
    #[default]
    Current,
    /// The older page's: `x-ratelimit-limit-{requests,tokens-prompt,tokens-generated}` per
    /// minute and the matching `x-ratelimit-remaining-*`.
    Legacy,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelLimits {
    /// No bucket yet (admits everything), a one-minute window, over-limit below a quarter,
    /// no `429` hint, Fireworks' current headers.
    pub fn new() -> Self {
        Self {
            prompt: None,
            uncached_prompt: None,
            generated: None,
            requests: None,
            tokens: None,
            window: Duration::from_secs(60),
            over_limit_below: 0.25,
            hint: HintStyle::None,
            fireworks_headers: FireworksHeaders::Current,
            openai_headers: false,
        }
    }

    /// Fireworks' starting serverless limits: 3,600,000 prompt, 900,000 uncached prompt and
    /// 36,000 generated tokens per minute (60,000 / 15,000 / 600 per second).
    pub fn fireworks_serverless() -> Self {
        Self::new()
            .prompt_tokens_per_minute(3_600_000)
            .uncached_prompt_tokens_per_minute(900_000)
            .generated_tokens_per_minute(36_000)
    }

    /// Prompt tokens per minute, cached ones included (Fireworks' total prompt TPM).
    pub fn prompt_tokens_per_minute(mut self, limit: u64) -> Self {
        self.prompt = Some(limit);
        self
    }

    /// Uncached prompt tokens per minute (Fireworks' uncached prompt TPM).
    pub fn uncached_prompt_tokens_per_minute(mut self, limit: u64) -> Self {
        self.uncached_prompt = Some(limit);
        self
    }

    /// Generated (completion) tokens per minute.
    pub fn generated_tokens_per_minute(mut self, limit: u64) -> Self {
        self.generated = Some(limit);
        self
    }

    /// Requests per minute.
    pub fn requests_per_minute(mut self, limit: u64) -> Self {
        self.requests = Some(limit);
        self
    }

    /// Prompt plus generated tokens per minute: the one token limit of OpenAI-compatible
    /// servers, reported by the OpenAI headers' `-tokens` set.
    pub fn tokens_per_minute(mut self, limit: u64) -> Self {
        self.tokens = Some(limit);
        self
    }

    /// How much of its rate a bucket holds (default one minute: a bucket of `L` per minute
    /// holds `L`). A shorter window makes a short benchmark meet the steady rate sooner; the
    /// headers still announce the per-minute (and per-second) limits.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Answers carry `x-ratelimit-over-limit: yes` when a bucket holds less than this share of
    /// its size after the request's charge (default `0.25`; clamped to `0.0..=1.0`; `0` or NaN
    /// never says it).
    pub fn over_limit_below(mut self, share: f64) -> Self {
        self.over_limit_below = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }

    /// How a `429` says when to come back (default [`HintStyle::None`]: Fireworks promises no
    /// `Retry-After`). [`HintStyle::SecondsAndMs`] sends the exact `retry-after-ms` and
    /// `Retry-After` in whole seconds, as OpenAI-compatible servers do.
    pub fn hint(mut self, hint: HintStyle) -> Self {
        self.hint = hint;
        self
    }

    /// Which generation of Fireworks' limit headers answers carry (default
    /// [`FireworksHeaders::Current`]).
    pub fn fireworks_headers(mut self, form: FireworksHeaders) -> Self {
        self.fireworks_headers = form;
        self
    }

    /// Whether answers carry OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
    /// (default `false`).
    pub fn openai_headers(mut self, send: bool) -> Self {
        self.openai_headers = send;
        self
    }
}
