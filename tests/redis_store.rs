//! `RedisStore` against a real `redis-server` on 127.0.0.1 (started per test by
//! `tests/redis_support`): two stores with one prefix are two processes of one fleet. They
//! share the gate's closure and the adaptive curve; a request never waits on Redis; when Redis
//! stops, each falls back to its local state (and says so in `tracing`); when it comes back,
//! they share again. Skipped when redis-server is missing (a failure with
//! `TOWER_RELIABILITY_REQUIRE_REDIS=1`, as in CI).
mod common;
mod redis_support;

use std::{sync::Arc, time::Duration};

use common::eventually::eventually;
use common::tracing_capture::global_capture;
use redis_support::fleet::{
    both_counted, fast_config as config, fleet_of_two, two_processes, unique_prefix as prefix,
};
use redis_support::{start_or_skip, RedisServer};
use tokio::time::Instant;
use tower_reliability::{
    rate_limit::{Admission, RateLimitStore, RedisConfig, RedisStore, Signal, Ticket},
    RateLimitAware,
};

fn hinted(ms: u64) -> Signal {
    Signal::Throttled {
        hint: Some(Duration::from_millis(ms)),
    }
}

#[tokio::test]
async fn a_429_seen_by_one_process_closes_the_gate_of_the_other() {
    let Some((_redis, a, b)) = fleet_of_two(
        "a_429_seen_by_one_process_closes_the_gate_of_the_other",
        "closure",
    )
    .await
    else {
        return;
    };
    assert!(a.is_shared() && b.is_shared());

    a.record(Instant::now(), hinted(3000), None);
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .closed_until(Instant::now())
            .is_some())
        .await,
        "B heard of A's 429"
    );
    let now = Instant::now();
    let remaining = b.local().closed_until(now).unwrap() - now;
    assert!(
        remaining > Duration::from_millis(2000) && remaining <= Duration::from_millis(3000),
        "B is closed for the rest of A's hint: {remaining:?}"
    );
    // A newcomer at B waits for the shared reopening instead of sending.
    match b.admit(now, Ticket::New, None) {
        Admission::Wait(slot) => assert!(slot.at() >= now + Duration::from_millis(2000)),
        other => panic!("B let a request through a closed fleet gate: {other:?}"),
    }
}

#[tokio::test]
async fn the_adaptive_rate_is_the_fleets_and_each_process_paces_at_its_share() {
    let Some((_redis, a, b)) = fleet_of_two(
        "the_adaptive_rate_is_the_fleets_and_each_process_paces_at_its_share",
        "curve",
    )
    .await
    else {
        return;
    };
    // Each sends 60 requests over 600 ms (100/s: one demand each, so one share each); A is
    // throttled without a hint.
    let start = Instant::now();
    for i in 0..60 {
        let _ = a.admit(start + Duration::from_millis(10 * i), Ticket::New, None);
        let _ = b.admit(start + Duration::from_millis(10 * i), Ticket::New, None);
    }
    let cut = start + Duration::from_millis(600);
    a.record(cut, Signal::Throttled { hint: None }, None);
    let rate_a = a.local().paced_rate(cut).expect("A adapts");
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .paced_rate(Instant::now())
            .is_some())
        .await,
        "B adopted the fleet's curve"
    );
    let rate_b = b.local().paced_rate(Instant::now()).unwrap();
    // A's 100/s was its half of the fleet: the fleet was at about 200/s, cut to 140/s; each
    // of the two paces at about 70/s (plus a little CUBIC growth since).
    assert!(
        (rate_b - rate_a).abs() / rate_a < 0.25,
        "one curve, one share each: A {rate_a:.1}/s, B {rate_b:.1}/s"
    );
}

#[tokio::test]
async fn redis_going_away_never_blocks_a_request_and_sharing_resumes_after_a_restart() {
    let capture = global_capture();
    let Some(mut redis) = start_or_skip(
        "redis_going_away_never_blocks_a_request_and_sharing_resumes_after_a_restart",
    )
    .await
    else {
        return;
    };
    let (a, b) = two_processes(&redis, "restart");
    assert!(eventually(Duration::from_secs(2), || a.is_shared() && b.is_shared()).await);

    redis.stop().await;
    // Requests keep flowing on local state: each admit and record returns at once (a lock
    // and a few stores), never waiting for a Redis round trip.
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let begun = std::time::Instant::now();
        assert_eq!(a.admit(Instant::now(), Ticket::New, None), Admission::Go);
        a.record(Instant::now(), Signal::Healthy, None);
        slowest = slowest.max(begun.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        slowest < Duration::from_millis(50),
        "a request waited on Redis: {slowest:?}"
    );
    assert!(
        eventually(Duration::from_secs(2), || !a.is_shared() && !b.is_shared()).await,
        "both fell back to local state"
    );
    assert!(
        capture
            .text()
            .contains("fleet rate-limit store unavailable: using local state"),
        "the fallback is logged"
    );
    // A 429 while Redis is down still closes A's own gate at once.
    a.record(Instant::now(), hinted(5000), None);
    assert!(a.local().closed_until(Instant::now()).is_some());

    redis.restart().await;
    assert!(
        eventually(Duration::from_secs(3), || a.is_shared() && b.is_shared()).await,
        "sharing resumes after Redis restarts (empty, script cache flushed)"
    );
    assert!(capture
        .text()
        .contains("fleet rate-limit store reachable again"));
    // What A learned while Redis was down reached the fleet once it came back...
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .closed_until(Instant::now())
            .is_some())
        .await,
        "A's closure from the outage was published after the restart"
    );
    // ...and new news travels again.
    b.record(Instant::now(), hinted(9000), None);
    assert!(
        eventually(Duration::from_secs(1), || a
            .local()
            .closed_until(Instant::now())
            .is_some_and(|t| t > Instant::now() + Duration::from_secs(7)))
        .await
    );
}

#[tokio::test]
async fn an_unreachable_redis_from_the_start_leaves_a_working_local_gate() {
    // A port nothing listens on: no Redis needed for this test.
    let port = common::closed_port().port();
    let store = RedisStore::spawn(config(&format!("redis://127.0.0.1:{port}"), "nowhere")).unwrap();
    let layer = RateLimitAware::with_store(Arc::new(store));
    let store = layer.store();
    assert_eq!(
        store.admit(Instant::now(), Ticket::New, None),
        Admission::Go
    );
    store.record(Instant::now(), hinted(1000), None);
    assert!(matches!(
        store.admit(Instant::now(), Ticket::New, None),
        Admission::Wait(_)
    ));
}

#[test]
fn bad_urls_and_a_missing_runtime_are_errors_not_panics() {
    let no_runtime = RedisStore::spawn(RedisConfig::new("redis://127.0.0.1:1", "p"));
    assert!(no_runtime
        .unwrap_err()
        .to_string()
        .contains("within a tokio runtime"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let bad = RedisStore::spawn(RedisConfig::new("not a url", "p"));
    assert!(bad.unwrap_err().to_string().contains("invalid Redis URL"));
}

#[test]
fn a_store_whose_runtime_shut_down_says_it_no_longer_shares() {
    let Some(redis) = redis_support::start_or_skip_blocking(
        "a_store_whose_runtime_shut_down_says_it_no_longer_shares",
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let store = RedisStore::spawn(config(&redis.url(), &prefix("runtime"))).unwrap();
        assert!(eventually(Duration::from_secs(2), || store.is_shared()).await);
        store
    });
    drop(runtime);
    assert!(!store.is_shared(), "its sync task is gone");
    // It still decides, on local state.
    assert_eq!(
        store.admit(Instant::now(), Ticket::New, None),
        Admission::Go
    );
}

#[test]
fn the_config_debug_never_prints_the_password() {
    let config = RedisConfig::new("redis://user:s3cret-pass@127.0.0.1:6379/0", "p");
    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret-pass"), "{printed}");
    assert!(printed.contains("127.0.0.1:6379"), "{printed}");
}

#[test]
fn what_cannot_work_is_rejected_with_a_clear_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    // An empty prefix gives an empty hash tag: the two keys could land in different slots.
    let empty = RedisStore::spawn(RedisConfig::new("redis://127.0.0.1:1", ""));
    assert!(empty.unwrap_err().to_string().contains("prefix"));
    let tag = RedisStore::spawn(RedisConfig::new("redis://127.0.0.1:1", "a}b"));
    assert!(tag.unwrap_err().to_string().contains("prefix"));
    // Redis Cluster is supported (tests/redis_managed.rs): a `redis+cluster://` scheme is not
    // a URL the `redis` crate knows, and says so rather than panicking.
    let scheme = RedisStore::spawn(RedisConfig::new("redis+cluster://127.0.0.1:1", "p"));
    assert!(scheme
        .unwrap_err()
        .to_string()
        .contains("invalid Redis URL"));
    // A `ca_cert` that is not PEM is refused at once.
    let pem =
        RedisStore::spawn(RedisConfig::new("rediss://127.0.0.1:1", "p").with_ca_cert(*b"nope"));
    assert!(pem.is_err(), "a bad ca_cert was accepted");
}

#[tokio::test]
async fn members_outlive_a_slow_sync_interval() {
    let Some(redis) = start_or_skip("members_outlive_a_slow_sync_interval").await else {
        return;
    };
    // A sync every 400 ms with a member TTL of 100 ms: each process would drop the other
    // between its syncs and pace at the whole fleet's rate.
    let prefix = prefix("member-ttl");
    let config = config(&redis.url(), &prefix)
        .with_sync_interval(Duration::from_millis(400))
        .with_member_ttl(Duration::from_millis(100));
    let a = RedisStore::spawn(config.clone()).unwrap();
    let b = RedisStore::spawn(config).unwrap();
    assert!(both_counted(&a, &b).await);
    // Over the next few syncs, neither ever counts itself alone.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            (a.members(), b.members()),
            (2, 2),
            "a member dropped between syncs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis's clock, in milliseconds.
async fn redis_now_ms(redis: &RedisServer) -> i64 {
    let Ok(redis_support::Reply::Array(Some(parts))) = redis.command(&["TIME"]).await else {
        panic!("TIME");
    };
    let part = |i: usize| {
        parts[i]
            .text()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or_default()
    };
    part(0) * 1000 + part(1) / 1000
}

async fn field(redis: &RedisServer, key: &str, name: &str) -> Option<String> {
    redis
        .command(&["HGET", key, name])
        .await
        .ok()
        .and_then(|r| r.text())
}

#[tokio::test]
async fn shared_times_are_bounded_and_garbage_is_repaired() {
    let Some(redis) = start_or_skip("shared_times_are_bounded_and_garbage_is_repaired").await
    else {
        return;
    };
    let prefix = prefix("bounds");
    let key = format!("{{{prefix}}}:gate");
    // A closure an hour ahead of Redis's clock (a clock step, a lagging replica).
    let ahead = (redis_now_ms(&redis).await + 3_600_000).to_string();
    redis
        .command(&["HSET", &key, "closed_until", &ahead])
        .await
        .unwrap();
    let gate = tower_reliability::rate_limit::GateConfig::default()
        .with_max_hold(Duration::from_millis(300));
    let a = RedisStore::spawn(config(&redis.url(), &prefix).with_gate(gate)).unwrap();
    assert!(eventually(Duration::from_secs(1), || a.is_shared()).await);
    // Closed for at most max_hold, then open for good (not re-closed on every sync).
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        a.local().closed_until(Instant::now()),
        None,
        "still closed after 3 × max_hold"
    );

    // Garbage in every field: syncs keep working, and the fields are repaired.
    redis
        .command(&[
            "HSET",
            &key,
            "closed_until",
            "garbage",
            "cut",
            "nan",
            "w_max",
            "oops",
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(a.is_shared(), "a garbage field failed the sync");
    assert_eq!(field(&redis, &key, "closed_until").await, None);
    assert_eq!(field(&redis, &key, "cut").await, None);
    // A new cut is accepted (a "nan" cut no longer blocks every cut).
    let b = RedisStore::spawn(config(&redis.url(), &prefix).with_gate(gate)).unwrap();
    assert!(both_counted(&a, &b).await);
    a.record(Instant::now(), Signal::Throttled { hint: None }, None);
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .paced_rate(Instant::now())
            .is_some())
        .await,
        "B adopted A's cut"
    );

    // A cut ahead of Redis's clock is read as made now, and stops refusing cuts.
    let ahead = (redis_now_ms(&redis).await + 3_600_000).to_string();
    redis
        .command(&["HSET", &key, "cut", &ahead, "w_max", "7"])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stored: i64 = field(&redis, &key, "cut")
        .await
        .and_then(|c| c.parse().ok())
        .unwrap_or(i64::MAX);
    assert!(
        stored <= redis_now_ms(&redis).await,
        "a cut ahead of Redis's clock stays ahead"
    );
}

#[tokio::test]
async fn a_key_of_another_type_is_never_touched() {
    let Some(redis) = start_or_skip("a_key_of_another_type_is_never_touched").await else {
        return;
    };
    let prefix = prefix("foreign");
    let key = format!("{{{prefix}}}:gate");
    redis.command(&["SET", &key, "theirs"]).await.unwrap();
    let a = RedisStore::spawn(config(&redis.url(), &prefix)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!a.is_shared());
    let ttl = redis.command(&["PTTL", &key]).await.unwrap();
    assert_eq!(ttl, redis_support::Reply::Integer(-1), "an expiry was set");
    assert_eq!(
        redis
            .command(&["GET", &key])
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("theirs")
    );
}

#[tokio::test]
async fn a_cut_older_than_forget_after_is_not_revived_at_recovery() {
    let Some(mut redis) =
        start_or_skip("a_cut_older_than_forget_after_is_not_revived_at_recovery").await
    else {
        return;
    };
    let prefix = prefix("revived");
    let gate = tower_reliability::rate_limit::GateConfig::default()
        .with_forget_after(Duration::from_millis(800));
    let a = RedisStore::spawn(config(&redis.url(), &prefix).with_gate(gate)).unwrap();
    let b = RedisStore::spawn(config(&redis.url(), &prefix).with_gate(gate)).unwrap();
    assert!(both_counted(&a, &b).await);
    redis.stop().await;
    // A is throttled alone, during the outage; the outage outlasts forget_after.
    a.record(Instant::now(), Signal::Throttled { hint: None }, None);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.restart().await;
    assert!(eventually(Duration::from_secs(3), || a.is_shared() && b.is_shared()).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.local().paced_rate(Instant::now()),
        None,
        "an old cut from the outage was revived fleet-wide as a fresh one"
    );
}

#[tokio::test]
async fn the_hinted_plateau_is_shared_and_kept() {
    let Some((_redis, a, b)) =
        fleet_of_two("the_hinted_plateau_is_shared_and_kept", "plateau").await
    else {
        return;
    };
    a.record(Instant::now(), hinted(50), None);
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .paced_rate(Instant::now())
            .is_some())
        .await
    );
    // Let several syncs (and A's own cut coming back from Redis) pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 8 s on, both are back at the limit and hold there (the 10 s plateau), not probing.
    let later = Instant::now() + Duration::from_secs(8);
    let (rate_a, rate_b) = (
        a.local().paced_rate(later).unwrap(),
        b.local().paced_rate(later).unwrap(),
    );
    let at_limit = |p: &RedisStore| p.local().paced_rate(later + Duration::from_secs(1));
    assert_eq!(
        at_limit(&a),
        Some(rate_a),
        "A probes inside its own plateau"
    );
    assert_eq!(at_limit(&b), Some(rate_b), "B probes inside A's plateau");
}
