//! `RedisStore` per scope and per demand, against a real `redis-server` on 127.0.0.1 (started
//! per test by `tests/redis_support`): two stores with one prefix are two processes of one
//! fleet. A model's 429 holds that model fleet-wide and no other; each process's share of the
//! fleet's rate follows the traffic it is offered. Skipped when redis-server is missing (a
//! failure with `TOWER_RELIABILITY_REQUIRE_REDIS=1`, as in CI).
mod common;
mod redis_support;

use std::{sync::Arc, time::Duration};

use common::eventually::eventually;
use redis_support::fleet::fleet_of_two;
use tokio::time::Instant;
use tower_reliability::rate_limit::{
    Admission, Demand, RateLimitStore, RedisStore, Scope, Signal, Ticket,
};

/// Whether a new request of `scope` at `store` would have to wait (asked with a deadline of
/// now, so that no place is taken).
fn held(store: &RedisStore, scope: &Scope) -> bool {
    let now = Instant::now();
    !matches!(
        store.admit_in(now, &Demand::new(scope).deadline(Some(now)), Ticket::New),
        Admission::Go
    )
}

#[tokio::test]
async fn a_429_for_one_model_holds_that_model_fleet_wide_and_no_other() {
    let Some((_redis, a, b)) = fleet_of_two(
        "a_429_for_one_model_holds_that_model_fleet_wide_and_no_other",
        "scopes",
    )
    .await
    else {
        return;
    };
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (model_a, model_b) = (Scope::named("model-a"), Scope::named("model-b"));

    a.record_in(
        Instant::now(),
        &model_a,
        Signal::Throttled {
            hint: Some(Duration::from_secs(3)),
        },
        None,
        None,
    );
    assert!(held(&a, &model_a), "A holds model A at once");
    assert!(!held(&a, &model_b), "A holds model B for model A's 429");
    assert!(
        eventually(Duration::from_secs(1), || held(&b, &model_a)).await,
        "B heard of model A's 429: {b:?}"
    );
    assert!(
        !held(&b, &model_b),
        "B holds model B for model A's 429 (the scope was lost on the way)"
    );
    let now = Instant::now();
    let remaining = b
        .local()
        .closed_until_in(&model_a, now)
        .map(|t| t - now)
        .unwrap_or_default();
    assert!(
        remaining > Duration::from_millis(2000) && remaining <= Duration::from_millis(3000),
        "B holds model A for the rest of the hint: {remaining:?}"
    );
    // The client-wide scope is not held either.
    assert!(!held(&b, &Scope::global()));
}

#[tokio::test]
async fn a_models_cut_is_shared_under_its_scope() {
    let Some((_redis, a, b)) =
        fleet_of_two("a_models_cut_is_shared_under_its_scope", "scoped-cut").await
    else {
        return;
    };
    let (a, b) = (Arc::new(a), Arc::new(b));
    let model = Scope::named("m-fast");
    // A is throttled on the model without a hint: a cut, no closure to speak of.
    a.record_in(
        Instant::now(),
        &model,
        Signal::Throttled { hint: None },
        None,
        None,
    );
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .paced_rate_in(&model, Instant::now())
            .is_some())
        .await,
        "B adopted the model's curve: {b:?}"
    );
    assert_eq!(
        b.local().paced_rate_in(&Scope::global(), Instant::now()),
        None,
        "the cut was shared client-wide"
    );
}

/// Offers `per_tick` new requests every 10 ms to `store` until dropped; requests that would
/// wait are refused at once (a deadline of now), so nothing queues.
fn offer(store: Arc<RedisStore>, per_tick: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            for _ in 0..per_tick {
                let now = Instant::now();
                let _ = store.admit(now, Ticket::New, Some(now));
            }
        }
    })
}

#[tokio::test]
async fn each_process_paces_at_the_share_of_the_traffic_it_is_offered() {
    let Some((_redis, a, b)) = fleet_of_two(
        "each_process_paces_at_the_share_of_the_traffic_it_is_offered",
        "demand",
    )
    .await
    else {
        return;
    };
    let (a, b) = (Arc::new(a), Arc::new(b));
    // A is offered 300 requests a second, B 100.
    let offers = [offer(a.clone(), 3), offer(b.clone(), 1)];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A is throttled: the fleet's rate is cut, and each process paces at its part of it.
    a.record(Instant::now(), Signal::Throttled { hint: None }, None);
    assert!(
        eventually(Duration::from_secs(1), || b
            .local()
            .paced_rate(Instant::now())
            .is_some())
        .await
    );
    let shares_follow_demand = || {
        let now = Instant::now();
        let (Some(rate_a), Some(rate_b)) = (a.local().paced_rate(now), b.local().paced_rate(now))
        else {
            return false;
        };
        let part_a = rate_a / (rate_a + rate_b);
        (0.68..=0.82).contains(&part_a)
    };
    let converged = eventually(Duration::from_secs(3), shares_follow_demand).await;
    let now = Instant::now();
    let rates = (a.local().paced_rate(now), b.local().paced_rate(now));
    let shares = (a.share(), b.share());
    offers.iter().for_each(|o| o.abort());
    assert!(
        converged,
        "A (3× B's traffic) paces at about 3/4 of the fleet's rate: {rates:?} (A {:?}, B {:?})",
        a, b
    );
    assert!(
        (shares.0 - 0.75).abs() < 0.07 && (shares.1 - 0.25).abs() < 0.07,
        "shares {shares:?}"
    );
}
