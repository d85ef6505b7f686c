//! What a request will cost, learned from what answers said requests cost.
//!
//! The gate estimates a request before it goes: its prompt as body bytes / 4, its output as its
//! `max_tokens`, or [`RequestShape::DEFAULT_OUTPUT_RESERVE`](super::RequestShape) without one.
//! Both are guesses. Bytes per token vary with the language and the JSON around the messages
//! (a short prompt in a long JSON envelope is over-counted), and a request without
//! `max_tokens` generates what it generates. Once a scope is charged tokens, every answer's
//! `usage` says what its request really cost, so each scope learns
//!
//! - a **prompt scale**: the smoothed prompt tokens over the smoothed prompt estimates (a
//!   ratio of sums, so large prompts weigh as much as they cost: a short prompt in a long JSON
//!   envelope does not make a long prompt look cheap), bounded to 1…4, which multiplies later
//!   prompt estimates: the estimate is only ever raised (text with fewer bytes per token than
//!   four), never lowered below bytes / 4, because an estimate that matches the server exactly
//!   leaves the mirror no slack for what is in flight, and the first 429s cost more than the
//!   few per cent an over-estimate holds back (measured in the storm benchmark's token mix);
//! - a **typical completion**: the smoothed mean of `usage.completion_tokens` plus twice its
//!   smoothed deviation (about a 95th percentile), which replaces the default reservation of a
//!   request without `max_tokens`. A request's own `max_tokens` is never replaced: it is the
//!   most it can cost.
//!
//! The settlement with `usage` corrects each request anyway; a better estimate makes the
//! queue's quotes and the waits before settlement closer to the truth.

use super::{TokenCharge, Usage};

/// The smoothing of each new sample.
const ALPHA: f64 = 0.2;
/// The bounds of the prompt scale.
const SCALE_BOUNDS: (f64, f64) = (1.0, 4.0);

/// One scope's learned estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CostLearner {
    prompt_scale: f64,
    /// Smoothed prompt estimates and actual prompt tokens of the same answers.
    prompt_estimated: f64,
    prompt_actual: f64,
    completion_mean: f64,
    completion_dev: f64,
    completions: u32,
}

impl Default for CostLearner {
    fn default() -> Self {
        CostLearner {
            prompt_scale: 1.0,
            prompt_estimated: 0.0,
            prompt_actual: 0.0,
            completion_mean: 0.0,
            completion_dev: 0.0,
            completions: 0,
        }
    }
}

impl CostLearner {
    /// A request estimated at `charged` (before any scaling) was answered with `usage`.
    pub(crate) fn learn(&mut self, charged: TokenCharge, usage: Usage) {
        if charged.prompt > 0 && usage.prompt_tokens > 0 {
            let smooth = |old: f64, new: f64| (1.0 - ALPHA) * old + ALPHA * new;
            self.prompt_estimated = smooth(self.prompt_estimated, charged.prompt as f64);
            self.prompt_actual = smooth(self.prompt_actual, f64::from(usage.prompt_tokens));
            let scale = self.prompt_actual / self.prompt_estimated;
            self.prompt_scale = scale.clamp(SCALE_BOUNDS.0, SCALE_BOUNDS.1);
        }
        let completion = f64::from(usage.completion_tokens);
        if self.completions == 0 {
            self.completion_mean = completion;
        } else {
            let deviation = (completion - self.completion_mean).abs();
            self.completion_mean = (1.0 - ALPHA) * self.completion_mean + ALPHA * completion;
            self.completion_dev = (1.0 - ALPHA) * self.completion_dev + ALPHA * deviation;
        }
        self.completions = self.completions.saturating_add(1);
    }

    /// `charge` with the learned prompt scale, and the typical completion as the reservation of
    /// a request without its own cap (once one answer was seen).
    pub(crate) fn adjust(&self, charge: TokenCharge) -> TokenCharge {
        let prompt = (charge.prompt as f64 * self.prompt_scale).ceil() as u64;
        let output = if charge.output_capped || self.completions == 0 {
            charge.output
        } else {
            (self.completion_mean + 2.0 * self.completion_dev)
                .ceil()
                .max(1.0) as u64
        };
        TokenCharge {
            prompt,
            output,
            ..charge
        }
    }

    /// The inverse of the prompt scale: what `adjust` did to a prompt estimate is undone before
    /// learning from it (settlement carries the adjusted charge).
    pub(crate) fn unscale(&self, charge: TokenCharge) -> TokenCharge {
        let prompt = (charge.prompt as f64 / self.prompt_scale).round() as u64;
        TokenCharge { prompt, ..charge }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u32, completion: u32) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        }
    }

    #[test]
    fn the_prompt_scale_converges_and_is_bounded() {
        let mut l = CostLearner::default();
        // Text with fewer bytes per token than four: the estimate is raised.
        for _ in 0..40 {
            l.learn(TokenCharge::new(400, 50), usage(600, 50));
        }
        let adjusted = l.adjust(TokenCharge::new(400, 50));
        assert!((590..=605).contains(&adjusted.prompt), "{adjusted:?}");
        for _ in 0..200 {
            l.learn(TokenCharge::new(1, 50), usage(1000, 50));
        }
        assert_eq!(
            l.adjust(TokenCharge::new(100, 50)).prompt,
            400,
            "at most 4 ×"
        );
        assert_eq!(l.unscale(TokenCharge::new(400, 50)).prompt, 100);
        // Cheaper than estimated: never lowered below bytes / 4 (the mirror keeps its slack).
        let mut cheap = CostLearner::default();
        for _ in 0..40 {
            cheap.learn(TokenCharge::new(400, 50), usage(300, 50));
        }
        assert_eq!(cheap.adjust(TokenCharge::new(400, 50)).prompt, 400);
    }

    #[test]
    fn an_uncapped_request_reserves_a_typical_completion_a_capped_one_its_cap() {
        let mut l = CostLearner::default();
        let uncapped = TokenCharge::uncapped(100, 256);
        assert_eq!(
            l.adjust(uncapped).output,
            256,
            "the default until an answer"
        );
        for n in 0..50 {
            l.learn(uncapped, usage(100, 20 + (n % 3) * 10));
        }
        let typical = l.adjust(uncapped).output;
        assert!((35..=60).contains(&typical), "{typical}");
        assert_eq!(l.adjust(TokenCharge::new(100, 500)).output, 500);
    }

    #[test]
    fn large_prompts_weigh_as_much_as_they_cost() {
        let mut l = CostLearner::default();
        // Short prompts in a long envelope (58 estimated, 22 real) and long ones (3040, 3002).
        for _ in 0..50 {
            l.learn(TokenCharge::new(58, 16), usage(22, 16));
            l.learn(TokenCharge::new(3040, 16), usage(3002, 16));
        }
        let long = l.adjust(TokenCharge::new(3040, 16)).prompt;
        assert!(long >= 2900, "a long prompt is not under-estimated: {long}");
        let short = l.adjust(TokenCharge::new(58, 16)).prompt;
        assert!(short >= 22, "a short one stays over-estimated: {short}");
    }

    #[test]
    fn zero_usage_teaches_no_scale() {
        let mut l = CostLearner::default();
        l.learn(TokenCharge::new(0, 0), usage(0, 0));
        assert_eq!(l.adjust(TokenCharge::new(10, 5)), TokenCharge::new(10, 5));
    }
}
