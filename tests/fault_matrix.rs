//! The fault matrix through a real hyper-util client: the Fireworks preset around
//! `hyper_util::client::legacy::Client<HttpConnector, ReplayBody<_>>`, against the
//! fault-injecting `FireworksServer` on 127.0.0.1.
//!
//! Each test is one row: it asserts the outcome the caller sees, the exact number of requests
//! the server received, and that the call ended within its deadline. The rows are written once
//! (`fault_matrix_support::rows`, listed as tests by `fault_matrix_support::matrix::every_row!`)
//! and shared with `fault_matrix_reqwest.rs`; this file adds the rows run through hyper-util
//! only. Rows 5 and 6 (many callers, dropped callers) run on the multi-thread runtime.
mod common;
mod fault_matrix_support;

use fault_matrix_support::rows;
use fault_matrix_support::Transport::Hyper;
use tower_reliability::testing::HintStyle;

fault_matrix_support::matrix::every_row!(Hyper);

// Row 5, once more without hints (hyper-util only: the storm is the slowest row).

/// The same with 429s that carry no hint at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_fifty_callers_share_one_gate_without_hints() {
    rows::storm(Hyper, HintStyle::None).await;
}

// Regressions for the two library bugs the matrix found (both fixed in e83c7f0).

/// A per-attempt limit given in the preset's timeout profile (`TimeoutProfile::with_attempt`
/// through `FireworksLayer::timeouts`) cuts a slow attempt, which is retried.
#[tokio::test]
async fn r3_a_profile_attempt_limit_given_to_the_preset_cuts_slow_attempts() {
    rows::profile_attempt_limit_is_applied(Hyper).await;
}

/// One wave of unhinted 429s from ten concurrent callers does not escalate the gate's
/// closure to its cap: every caller is retried and succeeds, within 2 s.
#[tokio::test]
async fn r5_one_wave_of_unhinted_429s_does_not_escalate_the_gate() {
    rows::one_wave_of_unhinted_429s(Hyper).await;
}
