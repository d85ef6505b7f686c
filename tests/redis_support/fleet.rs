//! What the fleet-store tests share: keys of their own, and a store that syncs fast.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tower_reliability::rate_limit::RedisConfig;

/// A prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    format!(
        "tower-reliability-test:{test}:{}:{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on `url` with `prefix` that syncs every 20 ms, gives a sync 200 ms and falls back
/// after 300 ms.
pub fn fast_config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::new(url, prefix)
        .sync_interval(Duration::from_millis(20))
        .timeout(Duration::from_millis(200))
        .fallback_after(Duration::from_millis(300))
}
