//! `RedisStore` against Redis as users run it: TLS (`rediss://`, a certificate authority made
//! at test time), ACL users with passwords (which appear in no log or error), and a real
//! 3-master Redis Cluster on 127.0.0.1 that loses a node mid-run. Servers are started per
//! test by `tests/redis_support`; skipped when redis-server is missing (a failure with
//! `TOWER_RELIABILITY_REQUIRE_REDIS=1`, as in CI).
mod common;
mod redis_support;

use std::time::Duration;

use common::eventually::eventually;
use common::tracing_capture::global_capture;
use redis_support::fleet::{self, fast_config as config, unique_prefix as prefix};
use redis_support::{
    cluster::start_cluster_or_skip,
    tls::{start_tls_or_skip, start_with_user_or_skip, User},
};
use tokio::time::Instant;
use tower_reliability::rate_limit::{RateLimitStore, RedisConfig, RedisStore, Scope, Signal};

const PASSWORD: &str = "pw-7f3c9d1e-never-printed";
const USER: User<'static> = User {
    name: "fleet",
    password: PASSWORD,
};

/// Whether both stores come to count each other within 3 s (a handshake more than plain TCP).
async fn both_counted(a: &RedisStore, b: &RedisStore) -> bool {
    fleet::both_counted_within(a, b, Duration::from_secs(3)).await
}

/// Whether a hinted 429 recorded by `from` closes `to`'s gate for most of the hint.
async fn closure_travels(from: &RedisStore, to: &RedisStore, hint_ms: u64) -> bool {
    from.record(
        Instant::now(),
        Signal::Throttled {
            hint: Some(Duration::from_millis(hint_ms)),
        },
        None,
    );
    let half = Duration::from_millis(hint_ms / 2);
    eventually(Duration::from_secs(2), || {
        to.local()
            .closed_until(Instant::now())
            .is_some_and(|until| until > Instant::now() + half)
    })
    .await
}

#[tokio::test]
async fn rediss_with_the_servers_authority_shares_the_fleet_state() {
    let Some(redis) = start_tls_or_skip(
        "rediss_with_the_servers_authority_shares_the_fleet_state",
        None,
    )
    .await
    else {
        return;
    };
    let prefix = prefix("tls");
    let spawn = || {
        RedisStore::spawn(config(&redis.url(None), &prefix).with_ca_cert(redis.ca_pem().to_vec()))
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    assert!(both_counted(&a, &b).await, "over TLS: {a:?} {b:?}");
    assert!(closure_travels(&a, &b, 3000).await);
    // The state is in this server (through its TLS port): the scopes' gates, the members
    // and their demands.
    let keys = redis
        .command(&["KEYS", &format!("{{{prefix}}}:*")])
        .await
        .unwrap();
    assert!(
        matches!(keys, redis_support::Reply::Array(Some(ref k)) if k.len() == 3),
        "{keys:?}"
    );
}

#[tokio::test]
async fn rediss_with_an_untrusted_certificate_is_refused_and_says_why() {
    let capture = global_capture();
    let Some(redis) = start_tls_or_skip(
        "rediss_with_an_untrusted_certificate_is_refused_and_says_why",
        None,
    )
    .await
    else {
        return;
    };
    // No authority given: the system's roots do not know the test's CA.
    let store = RedisStore::spawn(config(&redis.url(None), &prefix("untrusted"))).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || capture
            .text()
            .to_lowercase()
            .contains("certificate"))
        .await,
        "the fallback is logged with its reason: {}",
        capture.text()
    );
    assert!(!store.is_shared());
}

#[tokio::test]
async fn an_acl_user_signs_in_and_its_password_is_printed_nowhere() {
    let capture = global_capture();
    let Some(redis) = start_with_user_or_skip(
        "an_acl_user_signs_in_and_its_password_is_printed_nowhere",
        USER,
    )
    .await
    else {
        return;
    };
    let url = format!(
        "redis://{}:{}@127.0.0.1:{}",
        USER.name,
        PASSWORD,
        redis.port()
    );
    let prefix = prefix("acl");
    let (a, b) = (
        RedisStore::spawn(config(&url, &prefix)).unwrap(),
        RedisStore::spawn(config(&url, &prefix)).unwrap(),
    );
    assert!(both_counted(&a, &b).await, "signed in as {}", USER.name);
    assert!(closure_travels(&a, &b, 3000).await);
    // The store's connections are the ACL user's.
    let clients = redis.command(&["CLIENT", "LIST"]).await.unwrap();
    assert!(clients.text().unwrap_or_default().contains("user=fleet"));

    // A wrong password: refused, logged, and neither password shows anywhere.
    let wrong = "pw-wrong-5b2e-never-printed";
    let bad_url = format!("redis://{}:{wrong}@127.0.0.1:{}", USER.name, redis.port());
    let refused = RedisStore::spawn(config(&bad_url, &prefix)).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || capture
            .text()
            .contains("authentication failed"))
        .await,
        "the refusal is logged: {}",
        capture.text()
    );
    assert!(!refused.is_shared());
    // An unusable URL that carries a password: the error does not repeat it.
    let unparsable = RedisStore::spawn(RedisConfig::new(
        format!("redis://{}:{wrong}@127.0.0.1:notaport", USER.name),
        "p",
    ))
    .unwrap_err();
    let printed = [
        capture.text(),
        format!("{a:?} {refused:?}"),
        format!("{:?}", config(&bad_url, &prefix)),
        format!("{unparsable} {unparsable:?}"),
    ]
    .concat();
    for secret in [PASSWORD, wrong] {
        assert!(
            !printed.contains(secret),
            "a password was printed: {printed}"
        );
    }
}

#[tokio::test]
async fn rediss_with_an_acl_user() {
    let Some(redis) = start_tls_or_skip("rediss_with_an_acl_user", Some(USER)).await else {
        return;
    };
    let store = RedisStore::spawn(
        config(&redis.url(Some(USER)), &prefix("tls-acl")).with_ca_cert(redis.ca_pem().to_vec()),
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(3), || store.is_shared()).await);
}

#[tokio::test]
async fn a_cluster_shares_the_fleet_state_and_survives_a_node_restart() {
    let capture = global_capture();
    let Some(mut cluster) =
        start_cluster_or_skip("a_cluster_shares_the_fleet_state_and_survives_a_node_restart").await
    else {
        return;
    };
    let prefix = prefix("cluster");
    let gate_key = format!("{{{prefix}}}:gate");
    let home = cluster.node_of(&gate_key);
    for key in ["members", "demand"] {
        assert_eq!(
            home,
            cluster.node_of(&format!("{{{prefix}}}:{key}")),
            "one slot"
        );
    }
    // A seeds from the node that will restart, B from another: each must find the slot.
    let other = (home + 1) % 3;
    let a = RedisStore::spawn(config(&cluster.url(home), &prefix).with_cluster(true)).unwrap();
    let b = RedisStore::spawn(config(&cluster.url(other), &prefix).with_cluster(true)).unwrap();
    assert!(
        both_counted(&a, &b).await,
        "through the cluster: {a:?} {b:?}"
    );
    assert!(closure_travels(&a, &b, 2000).await);
    let stored = cluster.nodes()[home]
        .command(&["HGET", &gate_key, "closed_until"])
        .await
        .unwrap();
    assert!(stored.text().is_some(), "the state is on its slot's node");
    // A model's closure travels under its scope, through the same slot.
    let model = Scope::named("m-fast");
    a.record_in(
        Instant::now(),
        &model,
        Signal::Throttled {
            hint: Some(Duration::from_millis(2000)),
        },
        None,
        None,
    );
    assert!(
        eventually(Duration::from_secs(2), || b
            .local()
            .closed_until_in(&model, Instant::now())
            .is_some())
        .await,
        "a model's closure through the cluster: {b:?}"
    );

    // The node holding the slot restarts (empty: no persistence) mid-run.
    cluster.stop(home).await;
    assert!(
        eventually(Duration::from_secs(3), || !a.is_shared() && !b.is_shared()).await,
        "both fell back while the slot's node was down"
    );
    cluster.restart(home).await;
    assert!(
        eventually(Duration::from_secs(10), || a.is_shared() && b.is_shared()).await,
        "sharing resumes after the node restarts: {a:?} {b:?}\n{}",
        capture.text()
    );
    assert!(both_counted(&a, &b).await);
    assert!(closure_travels(&b, &a, 9000).await, "news travels again");
}

#[tokio::test]
async fn a_cluster_node_without_cluster_mode_is_a_clear_fallback() {
    let capture = global_capture();
    let Some(cluster) =
        start_cluster_or_skip("a_cluster_node_without_cluster_mode_is_a_clear_fallback").await
    else {
        return;
    };
    let prefix = prefix("moved");
    let home = cluster.node_of(&format!("{{{prefix}}}:gate"));
    // Pointed at a node that does not hold the slot, as a single server.
    let store = RedisStore::spawn(config(&cluster.url((home + 1) % 3), &prefix)).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || capture
            .text()
            .contains("RedisConfig::with_cluster(true)"))
        .await,
        "the warning says what to do: {}",
        capture.text()
    );
    assert!(!store.is_shared());
}
