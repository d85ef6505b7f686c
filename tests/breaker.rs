//! The circuit breaker's probes, the server's hints and attempts that never answer, on paused
//! time. (Shedding versus an outage, end to end: `tests/load_shedding.rs`.)
mod support;

use std::{sync::Arc, time::Duration};

use support::{
    call,
    gate::{gate_over, spawn_calls, trip},
    post, Mock, Step,
};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    context::Deadline,
    rate_limit::{LocalStore, RateLimitStore, Signal},
    RateLimitAware, TimeoutByWorkload, TimeoutProfile, Workload,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A probe that is a long generation (its head comes after minutes) must not hold everyone:
/// once it has not answered within the probe interval, another request probes, and its
/// success releases the rest well within their deadlines.
#[tokio::test(start_paused = true)]
async fn a_slow_probe_does_not_hold_everyone() {
    let store = Arc::new(LocalStore::default());
    let mock = Mock::new(
        [Step::Delay(Duration::from_secs(180), Box::new(Step::ok()))],
        Step::ok(),
    );
    let svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RateLimitAware::with_store(store.clone()))
        .service(mock.clone());
    let start = Instant::now();
    trip(&store, start);
    // The first request to ask becomes the probe: a three-minute generation.
    let mut probe_svc = svc.clone();
    let probe = tokio::spawn(async move { call(&mut probe_svc, post("{}")).await.is_ok() });
    tokio::time::sleep(ms(600)).await;
    assert_eq!(mock.count(), 1, "the probe is in flight");
    let held: Vec<_> = (0..10)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let ok = call(&mut svc, post("{}")).await.is_ok();
                (ok, start.elapsed())
            })
        })
        .collect();
    for handle in held {
        let (ok, done) = handle.await.unwrap();
        assert!(ok, "a held request failed after {done:?}");
        assert!(
            done <= Duration::from_secs(5),
            "held for {done:?} behind a slow probe"
        );
    }
    assert!(!store.breaker_engaged());
    probe.abort();
}

/// A `Retry-After: 30` closes the gate; requests already in flight then fail and trip the
/// breaker. No request, the probe included, may go before the server's time.
#[tokio::test(start_paused = true)]
async fn the_breaker_never_sends_before_a_hinted_time() {
    let store = Arc::new(LocalStore::default());
    let mock = Mock::always(Step::ok());
    let mut svc = gate_over(&store, &mock);
    let start = Instant::now();
    store.record(
        start,
        Signal::Throttled {
            hint: Some(Duration::from_secs(30)),
        },
        None,
    );
    trip(&store, start + ms(10));
    tokio::time::sleep(ms(20)).await;
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let calls = mock.calls();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].at - start >= Duration::from_secs(30),
        "sent {:?} after a 30 s hint",
        calls[0].at - start
    );
    assert!(!store.breaker_engaged());
}

/// 30 callers whose attempts hang (no response at all, no per-attempt timeout) until `deadline`
/// cuts them, through the gate of `store`: each gets a timeout.
async fn hung_callers(store: &Arc<LocalStore>, deadline: Duration) {
    let mock = Mock::always(Step::Delay(Duration::from_secs(3600), Box::new(Step::ok())));
    let svc = ServiceBuilder::new()
        .layer(
            TimeoutByWorkload::new(Workload::Interactive)
                .profile(Workload::Interactive, TimeoutProfile::new(deadline)),
        )
        .layer(RateLimitAware::with_store(store.clone()))
        .service(mock);
    let callers: Vec<_> = spawn_calls(&svc, 30);
    for caller in callers {
        let error = caller.await.unwrap().unwrap_err();
        assert!(error.is_timeout(), "{error}");
    }
}

/// Hung attempts (no response at all, no per-attempt timeout) cut by the deadline are
/// failures: an outage where connections hang trips the breaker.
#[tokio::test(start_paused = true)]
async fn attempts_cut_by_the_deadline_count_as_failures() {
    let store = Arc::new(LocalStore::default());
    hung_callers(&store, Duration::from_secs(2)).await;
    assert!(
        store.breaker_engaged(),
        "30 hung attempts cut by their deadline tripped nothing"
    );
}

/// Callers that go away before their deadline say nothing about the server.
#[tokio::test(start_paused = true)]
async fn callers_going_away_early_are_not_failures() {
    let store = Arc::new(LocalStore::default());
    let mock = Mock::always(Step::Delay(Duration::from_secs(3600), Box::new(Step::ok())));
    let svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RateLimitAware::with_store(store.clone()))
        .service(mock.clone());
    let callers: Vec<_> = spawn_calls(&svc, 30);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for caller in &callers {
        caller.abort();
    }
    for caller in callers {
        assert!(caller.await.unwrap_err().is_cancelled());
    }
    assert!(!store.breaker_engaged());
    // The gate still sends at once.
    let mut svc = svc.clone();
    let mut request = post("{}");
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_secs(1)));
    let before = mock.count();
    let sent = tokio::spawn(async move { call(&mut svc, request).await.map(|_| ()) });
    tokio::time::sleep(ms(1)).await;
    assert_eq!(mock.count(), before + 1);
    sent.abort();
}

/// Partial failure (load shedding) keeps sending: a third of the requests failing never
/// holds anyone, however the failures fall.
#[tokio::test(start_paused = true)]
async fn a_third_failing_never_holds_anyone() {
    let store = LocalStore::default();
    let t0 = Instant::now();
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..3000u64 {
        let now = t0 + ms(10 * i);
        let failed = rng.f64() < 1.0 / 3.0;
        store.record(
            now,
            if failed {
                Signal::Failing
            } else {
                Signal::Healthy
            },
            None,
        );
        assert!(!store.breaker_engaged(), "tripped after {i} outcomes");
    }
    // Three failures in a row: frequent at this rate, not an outage.
    let t1 = t0 + Duration::from_secs(40);
    for _ in 0..3 {
        store.record(t1, Signal::Failing, None);
    }
    assert!(!store.breaker_engaged());
    // But everything failing is.
    for i in 0..50 {
        store.record(t1 + ms(10 * i), Signal::Failing, None);
    }
    assert!(store.breaker_engaged());
}

/// A service that is ready a fixed number of times in all (clones share the count), then
/// never again: a stand-in for a connection pool or concurrency limit that stays full.
#[derive(Clone)]
struct ReadyBudget<S> {
    inner: S,
    left: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: tower::Service<R>, R> tower::Service<R> for ReadyBudget<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        use std::sync::atomic::Ordering;
        let took = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if took.is_err() {
            return std::task::Poll::Pending;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.inner.call(request)
    }
}

/// Requests admitted by the gate but still waiting for the service below to get ready (a pool
/// that stays full) were never sent: their deadline passing says nothing about the server.
#[tokio::test(start_paused = true)]
async fn requests_never_sent_are_not_hung_attempts() {
    let store = Arc::new(LocalStore::default());
    let mock = Mock::always(Step::ok());
    // Ready once per caller (as `call` readies it), never for the clone a waiter readies.
    let inner = ReadyBudget {
        inner: mock.clone(),
        left: Arc::new(30.into()),
    };
    let svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive).profile(
            Workload::Interactive,
            TimeoutProfile::new(Duration::from_secs(2)),
        ))
        .layer(RateLimitAware::with_store(store.clone()))
        .service(inner);
    store.record(
        Instant::now(),
        Signal::Throttled {
            hint: Some(ms(100)),
        },
        None,
    );
    let callers: Vec<_> = spawn_calls(&svc, 30);
    for caller in callers {
        assert!(caller.await.unwrap().unwrap_err().is_timeout());
    }
    assert_eq!(mock.count(), 0, "none was sent");
    assert!(
        !store.breaker_engaged(),
        "30 requests that were never sent tripped the breaker"
    );
}

/// An attempt cut by its deadline after less than 2 s in flight (the gate's "hung" threshold) (sent late, after a
/// wait, or with a short deadline) had no fair chance to answer: it trips nothing.
#[tokio::test(start_paused = true)]
async fn attempts_cut_soon_after_they_were_sent_are_not_failures() {
    let store = Arc::new(LocalStore::default());
    hung_callers(&store, Duration::from_secs(1)).await;
    assert!(!store.breaker_engaged());
}
