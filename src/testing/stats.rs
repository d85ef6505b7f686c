//! Exact counts of what reached the server, and the [`Stats`] snapshot of them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::state::lock;

/// A snapshot of the server's counters, taken by
/// [`FireworksServer::stats`](super::FireworksServer::stats).
///
/// Requests are counted as soon as hyper hands them to the server, statuses as soon as the
/// answer is decided (before its first byte leaves), and deliberate resets and stalls when the
/// fault is decided, so after a client has seen the outcome of a request the counts include it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests that reached the HTTP layer, on any path (including unknown ones).
    pub requests: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// Connections closed on purpose by [`Fault::ResetBeforeResponse`](super::Fault) or
    /// [`Fault::ResetMidBody`](super::Fault) (scripted or drawn from the mix).
    pub connections_reset: u64,
    /// Responses stalled by [`Fault::StallAfterEvents`](super::Fault).
    pub streams_stalled: u64,
    /// Responses per status code; a request whose connection was reset before any response
    /// counts under no status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests per URL path (without the query string).
    pub paths: BTreeMap<String, u64>,
    /// Chat traffic per model (see [`ModelStats`]), whether or not the model has limits.
    pub models: BTreeMap<String, ModelStats>,
}

/// What one model served, counted by the chat endpoint once a request is valid and names a
/// known model (requests refused before that, by a fault, the API key, the server-wide
/// [`RateLimitConfig`](super::RateLimitConfig) or validation, are not counted here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelStats {
    /// Requests that reached the model's limits: `served + rate_limited`.
    pub requests: u64,
    /// Requests admitted and answered with a completion.
    pub served: u64,
    /// Requests answered `429` by the model's [`ModelLimits`](super::ModelLimits).
    pub rate_limited: u64,
    /// Served requests whose answer said `x-ratelimit-over-limit: yes`.
    pub over_limit: u64,
    /// Prompt tokens of the served requests, cached ones included.
    pub prompt_tokens: u64,
    /// Cached prompt tokens of the served requests.
    pub cached_prompt_tokens: u64,
    /// Generated tokens produced: counted as they are sent (a streamed token with its event, a
    /// JSON completion with its body), so a stream cut short counts only what it sent.
    pub generated_tokens: u64,
}

impl Stats {
    /// How many responses had this status.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// How many requests were made to this path.
    pub fn path_count(&self, path: &str) -> u64 {
        self.paths.get(path).copied().unwrap_or(0)
    }

    /// What this model served (all zero for a model never asked for).
    pub fn model(&self, model: &str) -> ModelStats {
        self.models.get(model).copied().unwrap_or_default()
    }

    /// How many responses were sent (started), whatever their status.
    pub fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// The live counters behind [`Stats`], all behind one lock so a snapshot is consistent.
#[derive(Debug, Default)]
pub(crate) struct StatsRecorder {
    inner: Mutex<Stats>,
}

impl StatsRecorder {
    pub(crate) fn request(&self, path: &str) {
        let mut stats = lock(&self.inner);
        stats.requests += 1;
        match stats.paths.get_mut(path) {
            Some(count) => *count += 1,
            None => {
                stats.paths.insert(path.to_owned(), 1);
            }
        }
    }

    pub(crate) fn status(&self, status: u16) {
        *lock(&self.inner).statuses.entry(status).or_insert(0) += 1;
    }

    pub(crate) fn connection_accepted(&self) {
        lock(&self.inner).connections_accepted += 1;
    }

    pub(crate) fn connection_reset(&self) {
        lock(&self.inner).connections_reset += 1;
    }

    pub(crate) fn stream_stalled(&self) {
        lock(&self.inner).streams_stalled += 1;
    }

    /// Changes the counters of one model.
    pub(crate) fn model(&self, model: &str, change: impl FnOnce(&mut ModelStats)) {
        let mut stats = lock(&self.inner);
        match stats.models.get_mut(model) {
            Some(counters) => change(counters),
            None => {
                let mut counters = ModelStats::default();
                change(&mut counters);
                stats.models.insert(model.to_owned(), counters);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        lock(&self.inner).clone()
    }

    pub(crate) fn reset(&self) {
        *lock(&self.inner) = Stats::default();
    }
}
