//! What the fleet-store tests share: keys of their own, a store that syncs fast, and two
//! processes of one fleet that count each other.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tower_reliability::rate_limit::{RedisConfig, RedisStore};

use super::RedisServer;
use crate::common::eventually::eventually;

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
        .with_sync_interval(Duration::from_millis(20))
        .with_timeout(Duration::from_millis(200))
        .with_fallback_after(Duration::from_millis(300))
}

/// Two processes of one fleet: two stores with one fresh prefix (from `test`) on `redis`,
/// syncing as [`fast_config`].
pub fn two_processes(redis: &RedisServer, test: &str) -> (RedisStore, RedisStore) {
    let prefix = unique_prefix(test);
    let spawn = || RedisStore::spawn(fast_config(&redis.url(), &prefix)).expect("a store");
    (spawn(), spawn())
}

/// Whether both stores come to count each other within 2 s.
pub async fn both_counted(a: &RedisStore, b: &RedisStore) -> bool {
    both_counted_within(a, b, Duration::from_secs(2)).await
}

/// Whether both stores come to count each other within `limit`.
pub async fn both_counted_within(a: &RedisStore, b: &RedisStore, limit: Duration) -> bool {
    eventually(limit, || a.members() == 2 && b.members() == 2).await
}

/// A Redis server for `test` and two processes of one fleet on it (keys from `tag`) that have
/// come to count each other; `None` when the test is skipped (see [`super::start_or_skip`]).
pub async fn fleet_of_two(test: &str, tag: &str) -> Option<(RedisServer, RedisStore, RedisStore)> {
    let redis = super::start_or_skip(test).await?;
    let (a, b) = two_processes(&redis, tag);
    assert!(both_counted(&a, &b).await, "both counted: {a:?} {b:?}");
    Some((redis, a, b))
}
