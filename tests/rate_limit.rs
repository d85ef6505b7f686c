//! Rule 6: one shared gate per client that learns from responses and holds every request.
mod support;

use std::time::Duration;

use support::{call, post, Mock, Step};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    fireworks,
    rate_limit::{GateConfig, LocalStore},
    ErrorKind, RateLimitAware, TimeoutByWorkload, Workload,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn with(code: u16, headers: &[(&'static str, &str)]) -> Step {
    Step::With(
        code,
        headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        "",
    )
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_every_clone_and_releases_them_paced() {
    let mock = Mock::new([with(429, &[("retry-after", "5")])], Step::ok());
    let preset = fireworks::layer(Workload::Interactive);
    let svc = ServiceBuilder::new().layer(preset).service(mock.clone());
    let start = Instant::now();
    // The first request meets the 429...
    let mut first = svc.clone();
    let first = tokio::spawn(async move { call(&mut first, post("{}")).await.map(|r| r.status()) });
    tokio::time::sleep(ms(100)).await;
    // ...and ten more arrive, through clones, while the gate is closed.
    let others: Vec<_> = (0..10)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { call(&mut svc, post("{}")).await.map(|r| r.status()) })
        })
        .collect();
    assert_eq!(first.await.unwrap().unwrap(), 200);
    for other in others {
        assert_eq!(other.await.unwrap().unwrap(), 200);
    }
    let times: Vec<Duration> = mock.calls().iter().map(|c| c.at - start).collect();
    assert_eq!(times.len(), 12, "1 + its retry + 10");
    assert_eq!(times[0], Duration::ZERO);
    assert!(
        times[1..].iter().all(|t| *t >= Duration::from_secs(5)),
        "nobody sent while closed: {times:?}"
    );
    // Released paced (20 ms apart), not as a herd.
    let spread = times[11] - times[1];
    assert!(spread >= ms(9 * 20), "{times:?}");
}

#[tokio::test(start_paused = true)]
async fn remaining_zero_with_a_reset_closes_the_gate_before_any_429() {
    let mock = Mock::new(
        [with(
            200,
            &[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "2s"),
            ],
        )],
        Step::ok(),
    );
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RateLimitAware::new())
        .service(mock.clone());
    call(&mut svc, post("{}")).await.unwrap();
    let start = Instant::now();
    call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_fails_at_once_with_the_wait() {
    let mock = Mock::new([with(429, &[("retry-after", "100")])], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RateLimitAware::new())
        .service(mock.clone());
    assert_eq!(call(&mut svc, post("{}")).await.unwrap().status(), 429);
    let start = Instant::now();
    let err = call(&mut svc, post("{}")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep");
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(100))
        }
    );
    assert_eq!(err.reached_server(), Some(false));
    // A longer workload waits instead.
    let mut agentic = post("{}");
    agentic.extensions_mut().insert(Workload::Agentic);
    assert_eq!(call(&mut svc, agentic).await.unwrap().status(), 200);
    assert_eq!(start.elapsed(), Duration::from_secs(100));
    assert_eq!(mock.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_429_without_a_hint_closes_briefly_with_a_doubling_backoff() {
    let mock = Mock::new([Step::Status(429, ""), Step::Status(429, "")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitAware::new())
        .service(mock.clone());
    call(&mut svc, post("{}")).await.unwrap();
    call(&mut svc, post("{}")).await.unwrap();
    call(&mut svc, post("{}")).await.unwrap();
    let t: Vec<_> = mock.calls().iter().map(|c| c.at).collect();
    assert_eq!((t[1] - t[0], t[2] - t[1]), (ms(100), ms(200)));
}

/// An outage: 503 (no hint) for 20 s, then healthy, while a request arrives every 100 ms.
#[tokio::test(start_paused = true)]
async fn an_outage_costs_about_one_attempt_per_request_and_held_requests_succeed_after() {
    let mock = Mock::always(Step::Status(503, "Service Overloaded"));
    let svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .service(mock.clone());
    let start = Instant::now();
    let recover = {
        let mock = mock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            mock.set_otherwise(Step::ok());
        })
    };
    let mut handles = Vec::new();
    for _ in 0..200 {
        let mut svc = svc.clone();
        handles.push(tokio::spawn(async move {
            let response = call(&mut svc, post("{}")).await;
            (response.map(|r| r.status().as_u16()), Instant::now())
        }));
        tokio::time::sleep(ms(100)).await;
    }
    recover.await.unwrap();
    let mut ok = 0;
    for handle in handles {
        let (result, done) = handle.await.unwrap();
        assert!(
            done - start <= Duration::from_secs(20 + 60),
            "within its deadline"
        );
        if matches!(result, Ok(200)) {
            ok += 1;
        }
    }
    let during_outage = mock
        .calls()
        .iter()
        .filter(|c| c.at - start < Duration::from_secs(20))
        .count();
    let attempts = mock.count();
    assert!(
        ok >= 198,
        "held requests succeed after the outage: {ok}/200"
    );
    assert!(
        during_outage <= 30,
        "about one probe at a time during the outage: {during_outage}"
    );
    assert!(
        attempts as f64 / 200.0 <= 1.15,
        "attempts per request: {attempts}/200"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_lets_another_request_probe() {
    // A breaker that trips once three outcomes are in and most failed.
    let store = std::sync::Arc::new(LocalStore::new(
        GateConfig::default().with_minimum_throughput(3),
    ));
    let gate = RateLimitAware::with_store(store.clone());
    // Three failures trip the breaker; then the server hangs on the probe.
    let mock = Mock::new(
        [
            Step::Status(500, ""),
            Step::Status(500, ""),
            Step::Status(500, ""),
            Step::Delay(Duration::from_secs(3600), Box::new(Step::ok())),
        ],
        Step::ok(),
    );
    let mut svc = ServiceBuilder::new().layer(gate).service(mock.clone());
    for _ in 0..3 {
        call(&mut svc, post("{}")).await.unwrap();
    }
    assert!(store.breaker_engaged());
    let mut probe_svc = svc.clone();
    let probe = tokio::spawn(async move { call(&mut probe_svc, post("{}")).await });
    // The probe goes at 500 ms; within its interval (until 1 s) everyone else is held.
    tokio::time::sleep(ms(600)).await;
    assert_eq!(mock.count(), 4, "the probe is in flight");
    let mut held_svc = svc.clone();
    let held =
        tokio::spawn(async move { call(&mut held_svc, post("{}")).await.map(|r| r.status()) });
    tokio::time::sleep(ms(200)).await;
    assert_eq!(mock.count(), 4, "the second request is held");
    // The probe's caller goes away: the held request becomes the probe, succeeds, recovers.
    probe.abort();
    assert_eq!(held.await.unwrap().unwrap(), 200);
    assert!(!store.breaker_engaged());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_request_held_at_the_gate_leaves_nothing_behind() {
    let gate = RateLimitAware::new();
    let mock = Mock::new([with(429, &[("retry-after", "30")])], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(gate.clone())
        .service(mock.clone());
    call(&mut svc, post("{}")).await.unwrap();
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { call(&mut svc, post("{}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for w in &waiters {
        w.abort();
    }
    for w in waiters {
        assert!(w.await.unwrap_err().is_cancelled());
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(mock.count(), 1, "no aborted request was sent");
    // Once open, the gate serves at once.
    let start = Instant::now();
    call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}
