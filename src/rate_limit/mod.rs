//! `RateLimitAware`: whether anyone may send now.
//!
//! A retry loop per request is the wrong unit when the server rate-limits an *account*: fifty
//! requests that each got a 429 back off fifty times and return as a crowd. The guide's advice
//! — back off on 429 — works only if the whole client backs off. This layer keeps one state per
//! client, learns from every response ([`Signal`]), and makes every request of every clone wait
//! at one gate while the server has said stop.
//!
//! Closing a gate is a reaction; a *rate* is a plan. Once throttled, the gate paces every
//! request at a client-side rate it learns from the throttles themselves ([`RateControl`]),
//! because Fireworks does not promise a `Retry-After` and its limits move: the client then
//! sends just under a limit nobody told it, instead of finding it again with every backlog.
//!
//! A server that says how much quota is left is believed: a response with
//! `x-ratelimit-remaining-requests: 0` makes the gate mirror the server's continuously
//! refilling request bucket ([`Quota`]) and send one request per refill interval
//! (`reset / limit`) while the quota is spent, instead of waiting for it to be full again.
//!
//! # Tokens: what is charged, when, and how it is settled
//!
//! Providers limit tokens per minute, per model. Once a scope has been throttled (a 429 or
//! `x-ratelimit-over-limit: yes` on it) and its answers state their token limits
//! ([`TokenLimits`]: Fireworks' `x-ratelimit-limit-tokens-{prompt,cache-adjusted-prompt,
//! generated}` in tokens per second), the scope gets one continuously refilling bucket per
//! dimension, each holding a minute of its stated rate (enforcement is per minute) and
//! starting empty. From then on every request of the scope that goes by the gate is
//! **charged** when it goes ([`TokenCharge`]): its prompt estimate (body bytes / 4) to the
//! prompt buckets, its output reservation (`max_completion_tokens` / `max_tokens`, else
//! [`RequestShape::DEFAULT_OUTPUT_RESERVE`]) to the generated one; it goes when every bucket
//! covers its charge. When its answer's body ends, the [`Metered`] body reads the answer's
//! `usage` (a JSON body's, or the last SSE chunk's) and **settles** the charge: the difference
//! is refunded (waking the waiters) or charged. A request larger than a whole bucket waits for
//! a full bucket and goes alone; the queue's fairness rule (weighted by workload, see
//! [`Priority`]) is unchanged. Until a scope is throttled nothing is read, charged or tapped:
//! the healthy path pays nothing.
//!
//! A response saying the token allowance runs low (OpenAI's `x-ratelimit-*-tokens`,
//! Fireworks' per-minute `*-tokens-prompt`: [`Signal::TokensLow`]) makes the gate mirror that
//! bucket too, charging each request its whole estimate (its prompt only against a prompt
//! allowance); the queue moves at the mean cost of its waiters. The estimates themselves are
//! learned per scope from the answers' `usage` once the scope is charged tokens: a prompt scale
//! and a typical completion for requests without `max_tokens` (see
//! [`RateLimitStore::estimate_in`]).
//!
//! The state sits behind [`RateLimitStore`]: the in-memory [`LocalStore`], or (feature
//! `redis`) a `RedisStore` that shares it with every process on the same API key. Its
//! policy is plain synchronous code, tested without a socket.

mod adaptive;
mod breaker;
mod bucket;
mod cost;
mod dimensions;
mod estimate;
pub mod future;
mod gate_config;
mod layer;
mod local;
mod metered;
mod priority;
pub(crate) mod published;
mod queue;
mod quota;
mod ramp;
mod ramp_guard;
#[cfg(feature = "redis")]
mod redis;
mod scope;
mod service;
mod signal;
mod store;

#[cfg(feature = "redis")]
pub use self::redis::{RedisConfig, RedisStore, RedisStoreError};
pub use adaptive::RateControl;
pub use cost::{RequestShape, Usage};
pub use dimensions::{TokenCharge, TokenLimits};
pub use gate_config::GateConfig;
pub use layer::RateLimitAware;
pub use local::{LocalStore, MAX_SCOPES};
pub use metered::Metered;
pub use priority::Priority;
pub use quota::Quota;
pub use ramp_guard::RampGuard;
pub use scope::Scope;
pub(crate) use scope::ScopeSource;
pub use service::RateLimitAwareService;
pub use signal::Signal;
pub use store::{Admission, Demand, Probe, RateLimitStore, Reservation, Ticket, Wake, WakeHandle};
