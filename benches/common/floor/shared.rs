//! What the floor's clones share (the retry budget, the gate's lock-free state), and its
//! per-workload timeouts.

use std::{
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;
use tower_reliability::Workload;

/// What every clone shares: the retry budget and the gate's lock-free state.
#[derive(Debug)]
pub struct Shared {
    tokens: AtomicU32,
    max_tokens: u32,
    pub(super) restricted: AtomicBool,
    sent: AtomicU64,
    sample_start: AtomicU64,
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            tokens: AtomicU32::new(500),
            max_tokens: 500,
            restricted: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            sample_start: AtomicU64::new(0),
        }
    }

    /// `admit_unrestricted`: one load; then `count_send`: a relaxed add, a clock read one
    /// send in 32 (the floor reads the clock where the store samples the sending rate).
    #[inline]
    pub(super) fn admit_unrestricted(&self) -> bool {
        if self.restricted.load(Ordering::Acquire) {
            return false;
        }
        let sent = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if sent % 32 == 0 || sent == self.sample_start.load(Ordering::Relaxed) + 1 {
            std::hint::black_box(Instant::now());
        }
        true
    }

    /// The budget's `deposit`: a load when the bucket is full (the success path's case).
    #[inline]
    pub(super) fn deposit(&self, amount: u32) {
        if amount == 0 || self.tokens.load(Ordering::Relaxed) >= self.max_tokens {
            return;
        }
        let max = self.max_tokens;
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < max).then(|| t.saturating_add(amount).min(max))
            });
    }

    /// Empties the retry budget down to `tokens` (for the self-check).
    pub fn set_tokens(&self, tokens: u32) {
        self.tokens
            .store(tokens.min(self.max_tokens), Ordering::Relaxed);
    }

    /// Tokens in the retry budget.
    pub fn tokens(&self) -> u32 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// Whether an answer said the requests were used up.
    pub fn is_restricted(&self) -> bool {
        self.restricted.load(Ordering::Acquire)
    }

    /// Sends counted by the gate.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// The floor's per-workload table: total, idle read and per-attempt limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Profiles([(Duration, Duration, Option<Duration>); 4]);

impl Profiles {
    pub(super) fn new() -> Self {
        let row = |w: Workload| {
            let p = w.profile();
            (p.total(), p.idle_read(), p.attempt())
        };
        Profiles([
            row(Workload::Interactive),
            row(Workload::Agentic),
            row(Workload::LongContext),
            row(Workload::BatchSubmit),
        ])
    }

    #[inline]
    pub(super) fn of(&self, workload: Workload) -> (Duration, Duration, Option<Duration>) {
        let index = match workload {
            Workload::Agentic => 1,
            Workload::LongContext => 2,
            Workload::BatchSubmit => 3,
            _ => 0,
        };
        self.0[index]
    }
}
