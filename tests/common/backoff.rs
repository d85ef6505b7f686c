//! The quick backoff the tests configure instead of the shipped one (waits of seconds).

use std::time::Duration;

use tower_reliability::{backoff::Jitter, JitteredBackoff};

/// `JitteredBackoff` with this `jitter` on a `base_ms` millisecond base: retries without a
/// server hint come after milliseconds, not seconds. Chain `.seed(..)` for repeatable draws.
pub fn fast_backoff(jitter: Jitter, base_ms: u64) -> JitteredBackoff {
    JitteredBackoff::default()
        .jitter(jitter)
        .base(Duration::from_millis(base_ms))
}
