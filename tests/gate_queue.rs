//! The gate's waiting queue, on paused time: paced release after any reopening, first come
//! first served, and callers that go away give their place back.
mod support;

use std::{sync::Arc, time::Duration};

use support::{
    call,
    gate::{gate_over, spawn_calls, trip},
    post, Mock, Step,
};
use tokio::time::Instant;
use tower_reliability::{
    context::Deadline,
    rate_limit::{GateConfig, LocalStore, RateControl, RateLimitStore, Signal},
    ErrorKind,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The breaker trips, a probe closes it, the held requests get paced slots; it trips again and
/// a request sent before closes it a second time. The remaining slot holders must still leave
/// paced, not all in the same instant.
#[tokio::test(start_paused = true)]
async fn a_second_breaker_close_releases_slot_holders_paced() {
    let store = Arc::new(LocalStore::new(
        GateConfig::default().with_rate_control(RateControl::Off),
    ));
    // The first request is slow: it answers, healthy, after the breaker tripped a second time.
    let mock = Mock::new([Step::Delay(ms(600), Box::new(Step::ok()))], Step::ok());
    let svc = gate_over(&store, &mock);
    let start = Instant::now();
    let mut slow_svc = svc.clone();
    let slow = tokio::spawn(async move { call(&mut slow_svc, post("{}")).await.is_ok() });
    tokio::time::sleep(ms(1)).await;
    trip(&store, start);
    let held: Vec<_> = (0..15)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { call(&mut svc, post("{}")).await.is_ok() })
        })
        .collect();
    // One probes after 500 ms and closes the breaker; the rest get slots 20 ms apart.
    tokio::time::sleep(ms(540)).await;
    trip(&store, Instant::now());
    assert!(slow.await.unwrap());
    for h in held {
        assert!(h.await.unwrap());
    }
    let times: Vec<Instant> = mock.calls().iter().map(|c| c.at).collect();
    assert_eq!(
        times.len(),
        16,
        "the slow one, the probe and 14 slot holders"
    );
    let mut after_probe: Vec<Instant> = times[2..].to_vec();
    after_probe.sort();
    // Paced: 20 ms apart, halving every 100 ms while successes come back (the ramp after a
    // breaker spell), never all at once.
    for pair in after_probe.windows(2) {
        assert!(
            pair[1] - pair[0] >= ms(9),
            "two slot holders {:?} apart: {:?}",
            pair[1] - pair[0],
            after_probe.iter().map(|t| *t - start).collect::<Vec<_>>()
        );
    }
}

/// 100 callers queued behind a 1 s closure go away: their places are free again, so a
/// newcomer goes at the reopening. A refusal for queueing locally does not claim a server hint.
#[tokio::test(start_paused = true)]
async fn callers_that_go_away_give_their_places_back() {
    let store = Arc::new(LocalStore::new(
        GateConfig::default().with_rate_control(RateControl::Off),
    ));
    let mock = Mock::always(Step::ok());
    let svc = gate_over(&store, &mock);
    let start = Instant::now();
    store.record(
        start,
        Signal::Throttled {
            hint: Some(Duration::from_secs(1)),
        },
        None,
    );
    let waiters: Vec<_> = spawn_calls(&svc, 100);
    tokio::time::sleep(ms(100)).await;
    // Behind 100 live waiters, a request that must be done in 1.5 s is refused: a local
    // queueing refusal, not something the server said.
    let mut svc_short = svc.clone();
    let mut short = post("{}");
    short
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(1500)));
    let refused = call(&mut svc_short, short).await.unwrap_err();
    assert!(matches!(refused.kind(), ErrorKind::RateLimited { .. }));
    assert!(
        !refused.to_string().contains("server asked"),
        "a local queue is reported as a server hint: {refused}"
    );
    for w in &waiters {
        w.abort();
    }
    for w in waiters {
        assert!(w.await.unwrap_err().is_cancelled());
    }
    let mut newcomer = post("{}");
    newcomer
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(1500)));
    let mut svc = svc.clone();
    let response = call(&mut svc, newcomer)
        .await
        .expect("nothing is queued any more");
    assert_eq!(response.status(), 200);
    assert_eq!(mock.count(), 1);
    assert_eq!(
        mock.calls()[0].at - start,
        Duration::from_secs(1),
        "sent at the reopening"
    );
}

/// Requests queued at a slow adaptive rate are re-paced when the rate grows (including those
/// that got their slot on arrival), and stay ahead of later arrivals: first come, first served.
#[tokio::test(start_paused = true)]
async fn slot_holders_are_re_paced_and_served_first() {
    let store = Arc::new(LocalStore::new(
        GateConfig::default()
            // After a cut to 5/s the rate grows by 50/s every second.
            .with_rate_control(RateControl::Aimd {
                beta: 0.1,
                increase: 50.0,
            }),
    ));
    let mock = Mock::always(Step::ok());
    let svc = gate_over(&store, &mock);
    let start = Instant::now();
    // A 429 with no hint: closed 100 ms, and the rate cut to 0.1 × the 50/s fallback.
    store.record(start, Signal::Throttled { hint: None }, None);
    let rate = store.paced_rate(start).unwrap_or_default();
    assert!((rate - 5.0).abs() < 0.01, "{rate}");
    let early: Vec<_> = (0..10)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                call(&mut svc, post("early")).await.unwrap();
            })
        })
        .collect();
    // Slots at 0.1, 0.3, ..., 1.9 s at 5/s; by 0.4 s the rate is 25/s.
    tokio::time::sleep(ms(400)).await;
    let mut late_svc = svc.clone();
    let late = tokio::spawn(async move { call(&mut late_svc, post("late")).await.unwrap() });
    for e in early {
        e.await.unwrap();
    }
    late.await.unwrap();
    let calls = mock.calls();
    let last_early = calls
        .iter()
        .filter(|c| c.body == "early")
        .map(|c| c.at - start)
        .max()
        .unwrap();
    let late_at = calls.iter().find(|c| c.body == "late").unwrap().at - start;
    assert!(
        last_early < ms(1000),
        "the early requests kept their slow slots: the last went at {last_early:?}"
    );
    assert!(
        late_at > last_early,
        "a later arrival ({late_at:?}) went before an earlier one ({last_early:?})"
    );
}
