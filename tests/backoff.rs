//! Rule 4: the guide's schedule and the jitter modes, server hints, caps, and the deadline.
mod support;

use std::time::{Duration, SystemTime};

use support::{body_bytes, call, post, Mock, Step};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    backoff::Jitter, context::StopReason, fireworks, ErrorKind, JitteredBackoff, RetryOnStatus,
    RetryReport, TimeoutByWorkload, TimeoutProfile, Workload,
};

fn gaps(mock: &Mock) -> Vec<Duration> {
    mock.calls().windows(2).map(|w| w[1].at - w[0].at).collect()
}

async fn run(
    backoff: JitteredBackoff,
    script: Vec<Step>,
    otherwise: Step,
) -> (Mock, http::StatusCode) {
    let mock = Mock::new(script, otherwise);
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Agentic))
        .layer(RetryOnStatus::default())
        .layer(backoff)
        .service(mock.clone());
    let status = call(&mut svc, post("{}")).await.unwrap().status();
    (mock, status)
}

#[tokio::test(start_paused = true)]
async fn the_default_is_the_guides_base_times_two_to_the_n_plus_up_to_a_second() {
    let (mock, status) = run(
        JitteredBackoff::default().seed(1),
        vec![],
        Step::Status(503, ""),
    )
    .await;
    assert_eq!(status, 503);
    let gaps = gaps(&mock);
    assert_eq!(gaps.len(), 4, "5 attempts, 4 waits");
    for (n, gap) in gaps.iter().enumerate() {
        let floor = Duration::from_secs(1 << n);
        assert!(
            *gap >= floor && *gap < floor + Duration::from_secs(1),
            "wait {n}: {gap:?}"
        );
    }
    // Seeded: the same seed gives the same waits; the jitter is not truncated to seconds.
    let (again, _) = run(
        JitteredBackoff::default().seed(1),
        vec![],
        Step::Status(503, ""),
    )
    .await;
    assert_eq!(gaps, self::gaps(&again));
    assert!(gaps.iter().any(|g| g.subsec_millis() != 0));
}

#[tokio::test(start_paused = true)]
async fn full_equal_and_decorrelated_jitter_are_selectable_and_capped() {
    let cap = Duration::from_secs(3);
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let backoff = JitteredBackoff::default()
            .jitter(jitter)
            .max_delay(cap)
            .seed(7);
        let (mock, _) = run(backoff, vec![], Step::Status(500, "")).await;
        let gaps = gaps(&mock);
        assert_eq!(gaps.len(), 4);
        assert!(gaps.iter().all(|g| *g <= cap), "{jitter:?}: {gaps:?}");
        if jitter == Jitter::Equal {
            assert!(
                gaps[0] >= Duration::from_millis(500),
                "equal: at least half of 1 s"
            );
        }
        if jitter == Jitter::Decorrelated {
            assert!(
                gaps.iter().all(|g| *g >= Duration::from_secs(1)),
                "decorrelated: at least base"
            );
        }
    }
}

fn with(code: u16, name: &'static str, value: String) -> Step {
    Step::With(code, vec![(name, value)], "")
}

#[tokio::test(start_paused = true)]
async fn server_hints_replace_the_computed_wait_when_longer() {
    let cases = [
        (
            with(429, "retry-after-ms", "2500".into()),
            Duration::from_millis(2500),
        ),
        (with(429, "retry-after", "4".into()), Duration::from_secs(4)),
        (
            with(503, "retry-after", "6.5".into()),
            Duration::from_millis(6500),
        ),
    ];
    for (step, expected) in cases {
        let (mock, status) = run(JitteredBackoff::default().seed(3), vec![step], Step::ok()).await;
        assert_eq!(status, 200);
        assert_eq!(gaps(&mock), [expected]);
    }
    // An HTTP-date (one-second resolution, against the wall clock).
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
    let (mock, _) = run(
        JitteredBackoff::default(),
        vec![with(429, "retry-after", date)],
        Step::ok(),
    )
    .await;
    let gap = gaps(&mock)[0];
    assert!(
        gap > Duration::from_secs(8) && gap <= Duration::from_secs(10),
        "{gap:?}"
    );
    // A hint shorter than the computed wait does not shorten it.
    let (mock, _) = run(
        JitteredBackoff::default(),
        vec![with(429, "retry-after-ms", "10".into())],
        Step::ok(),
    )
    .await;
    assert!(gaps(&mock)[0] >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn garbage_hints_are_ignored_never_a_panic_or_a_huge_sleep() {
    for value in [
        "NaN",
        "-5",
        "inf",
        "1e999",
        "soon",
        "",
        "99999999999999999999999999",
    ] {
        for name in ["retry-after", "retry-after-ms"] {
            let step = with(429, name, value.into());
            // Seeded: the wait's jitter is the same on every run.
            let backoff = JitteredBackoff::default().seed(0x5eed);
            let (mock, status) = run(backoff, vec![step], Step::ok()).await;
            if value.starts_with("9999") {
                // A valid but absurd hint is above the cap: not retried at all.
                assert_eq!((status.as_u16(), mock.count()), (429, 1), "{name}: {value}");
            } else {
                assert_eq!(status, 200, "{name}: {value:?}");
                let gap = gaps(&mock)[0];
                // The guide's first wait, 1 s + U(0, 1 s), ignoring the hint. tokio's timer
                // rounds a deadline up to the next millisecond, so 1.9996 s shows as 2 s.
                assert!(
                    gap >= Duration::from_secs(1) && gap <= Duration::from_secs(2),
                    "{name}: {value:?} {gap:?}"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_hint_above_the_cap_is_not_retried_and_holds_the_gate_at_most_the_cap() {
    let layer = fireworks::layer(Workload::Interactive);
    let gate = layer.rate_limit_layer().clone();
    let mock = Mock::new([with(429, "retry-after", "3600".into())], Step::ok());
    let mut svc = ServiceBuilder::new().layer(layer).service(mock.clone());
    let start = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(
        response.status(),
        429,
        "the caller gets the server's answer"
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "no wait started");
    let report = *response.extensions().get::<RetryReport>().unwrap();
    assert_eq!(
        (report.attempts, report.stopped),
        (1, Some(StopReason::NextAttemptRefused))
    );
    assert_eq!(response.headers()["retry-after"], "3600");
    assert!(body_bytes(response).await.is_ok());

    // The shared gate is held for the cap (120 s), not an hour: a request whose deadline
    // (60 s) ends before that fails at once, with the wait.
    let err = call(&mut svc, post("{}")).await.unwrap_err();
    let wait = err.retry_after().unwrap();
    assert!(matches!(err.kind(), ErrorKind::RateLimited { .. }));
    assert!(
        wait <= Duration::from_secs(120) && wait > Duration::from_secs(119),
        "{wait:?}"
    );
    assert_eq!(mock.count(), 1);
    assert!(gate.shares_state_with(&gate.clone()));
}

#[tokio::test(start_paused = true)]
async fn no_wait_starts_that_would_end_past_the_deadline() {
    let mock = Mock::always(Step::Status(503, "still down"));
    let timeouts = TimeoutByWorkload::new(Workload::Interactive).profile(
        Workload::Interactive,
        TimeoutProfile::new(Duration::from_secs(10)),
    );
    let mut svc = ServiceBuilder::new()
        .layer(timeouts)
        .layer(RetryOnStatus::default())
        .layer(JitteredBackoff::default().seed(5))
        .service(mock.clone());
    let start = Instant::now();
    let response = call(&mut svc, post("{}")).await.unwrap();
    // Waits of 1+u, 2+u reach ~3-5 s; the next (4+u) would end before 10 s only if u is
    // small; the one after (8+u) never fits. Retrying stops and the last response comes back.
    assert_eq!(response.status(), 503);
    assert!(start.elapsed() < Duration::from_secs(10));
    let report = *response.extensions().get::<RetryReport>().unwrap();
    assert_eq!(report.stopped, Some(StopReason::NextAttemptRefused));
    assert_eq!(report.attempts as usize, mock.count());
    assert!((3..=4).contains(&mock.count()));
    assert_eq!(body_bytes(response).await.unwrap(), "still down");
}
