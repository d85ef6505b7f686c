//! [`GeneratedMeter`]: charges a completion's generated tokens as they are produced, to its
//! model's buckets and counters, so a stream cut short spends only what it sent.

use std::sync::Arc;

use super::limiters::Lane;
use super::state::{lock, Shared};

/// The generated tokens of one completion not yet produced.
#[derive(Debug)]
pub(crate) struct GeneratedMeter {
    shared: Arc<Shared>,
    model: String,
    lane: Option<Lane>,
    left: u64,
}

impl GeneratedMeter {
    /// A completion of `tokens` tokens for `model`, charged to `lane` if the model has limits.
    pub(crate) fn new(shared: Arc<Shared>, model: String, lane: Option<Lane>, tokens: u64) -> Self {
        Self {
            shared,
            model,
            lane,
            left: tokens,
        }
    }

    /// `tokens` more were produced (never more than the completion has in all).
    pub(crate) fn produce(&mut self, tokens: u64) {
        let tokens = tokens.min(self.left);
        if tokens == 0 {
            return;
        }
        self.left -= tokens;
        if let Some(lane) = &self.lane {
            lock(lane).produce(tokens);
        }
        self.shared.stats.model(&self.model, |stats| {
            stats.generated_tokens = stats.generated_tokens.saturating_add(tokens);
        });
    }

    /// The rest of the completion was produced at once.
    pub(crate) fn produce_all(&mut self) {
        self.produce(self.left);
    }
}
