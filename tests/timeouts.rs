//! Rule 1: the total deadline covers all attempts and waits; the idle-read timeout resets on
//! every body frame; a per-attempt time-to-headers can be set; timeouts are errors.
mod common;
mod support;

use std::time::Duration;

use common::fast_backoff;
use support::{body_bytes, post, Mock, Step};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    backoff::Jitter,
    context::{Deadline, StopReason},
    error::TimeoutPhase,
    fireworks,
    timeout::AttemptTimeout,
    ErrorKind, JitteredBackoff, RetryOnStatus, RetryReport, TimeoutByWorkload, TimeoutProfile,
    Workload,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn total_deadline_covers_every_attempt_and_wait() {
    // Each attempt takes 3 s to answer 503; the backoff waits 1 s; the deadline is 5 s.
    let mock = Mock::always(Step::Delay(secs(3), Box::new(Step::Status(503, "busy"))));
    let timeouts = TimeoutByWorkload::new(Workload::Interactive)
        .profile(Workload::Interactive, TimeoutProfile::new(secs(5)));
    let mut svc = ServiceBuilder::new()
        .layer(timeouts)
        .layer(RetryOnStatus::default())
        .layer(JitteredBackoff::default().jitter(Jitter::None))
        .service(mock.clone());
    let start = Instant::now();
    // Cut at the deadline, the caller gets the real 503 of attempt 1, not a made-up timeout.
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(response.status(), 503);
    let report = response.extensions().get::<RetryReport>().copied().unwrap();
    assert_eq!(report.stopped, Some(StopReason::DeadlineReached));
    assert_eq!(start.elapsed(), secs(5), "fired exactly at the deadline");
    assert_eq!(
        mock.count(),
        2,
        "attempt 1 at 0 s, attempt 2 at 4 s, cut at 5 s"
    );
    // With no response to hand back, the deadline is a timeout.
    mock.set_otherwise(Step::Delay(secs(600), Box::new(Step::ok())));
    let err = support::call(&mut svc, post("{}")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(TimeoutPhase::Deadline));
    // The deadline was published to the layers inside (ambiently, no extension).
    assert_eq!(
        mock.calls()[0].deadline,
        Some(Deadline::at(start + secs(5)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_picks_its_workload_in_extensions() {
    let mock = Mock::always(Step::Delay(secs(120), Box::new(Step::ok())));
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .service(mock.clone());
    let err = support::call(&mut svc, post("{}")).await.unwrap_err();
    assert_eq!(
        err.timeout_phase(),
        Some(TimeoutPhase::Deadline),
        "interactive: 60 s"
    );

    let mut agentic = post("{}");
    agentic.extensions_mut().insert(Workload::Agentic);
    let response = support::call(&mut svc, agentic).await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "agentic: 15 min allows a 2 min answer"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_read_resets_on_every_frame_so_a_40_minute_stream_survives() {
    // A frame every 20 s for 40 minutes; idle-read 30 s (interactive); the total deadline
    // (60 s) bounds only the time to headers.
    let frames = vec![(secs(20), "tok "); 120];
    let mock = Mock::always(Step::Stream(frames, false));
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .service(mock);
    let start = Instant::now();
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    let body = body_bytes(response).await.unwrap();
    assert_eq!(body.len(), 120 * 4);
    assert_eq!(start.elapsed(), secs(40 * 60));
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_fails_with_body_idle() {
    let mock = Mock::always(Step::Stream(vec![(secs(1), "a"), (secs(29), "b")], true));
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .service(mock);
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    let start = Instant::now();
    let err = body_bytes(response).await.unwrap_err();
    let err = err.downcast::<tower_reliability::Error>().unwrap();
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::BodyIdle));
    assert_eq!(
        start.elapsed(),
        secs(1 + 29 + 30),
        "30 s of silence after the last frame"
    );
}

/// A reader that logs the idle error and keeps reading gets the end of the body, not the same
/// error again at once, forever (a hot loop).
#[tokio::test(start_paused = true)]
async fn after_its_idle_error_a_body_ends() {
    use http_body_util::BodyExt;
    let mock = Mock::always(Step::Stream(vec![(secs(1), "a")], true));
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .service(mock);
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    let mut body = std::pin::pin!(response.into_body());
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "a");
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::BodyIdle));
    let start = Instant::now();
    assert!(body.frame().await.is_none(), "ends after its error");
    assert!(http_body::Body::is_end_stream(&*body));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_idle_clock_runs_only_while_the_reader_waits() {
    let mock = Mock::always(Step::Stream(vec![(secs(0), "a"), (secs(0), "b")], false));
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .service(mock);
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    // A slow reader: nothing read for 10 minutes is not the server's fault.
    tokio::time::sleep(secs(600)).await;
    assert_eq!(body_bytes(response).await.unwrap(), "ab");
}

#[tokio::test(start_paused = true)]
async fn per_attempt_time_to_headers_is_retried() {
    let mock = Mock::new(
        [Step::Delay(secs(100), Box::new(Step::ok()))],
        Step::Status(200, "second"),
    );
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Agentic))
        .layer(RetryOnStatus::default())
        .layer(JitteredBackoff::default().jitter(Jitter::None))
        .layer(AttemptTimeout::fixed(secs(10)))
        .service(mock.clone());
    let start = Instant::now();
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(body_bytes(response).await.unwrap(), "second");
    assert_eq!(
        start.elapsed(),
        secs(10 + 1),
        "cut at 10 s, 1 s backoff, instant answer"
    );
    assert_eq!(mock.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn batch_submission_has_a_per_attempt_limit_in_the_preset() {
    let mock = Mock::always(Step::Delay(secs(25), Box::new(Step::ok())));
    let mut svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::BatchSubmit))
        .service(mock.clone());
    let start = Instant::now();
    let err = support::call(&mut svc, post("{}")).await.unwrap_err();
    // Attempt 1 is cut at 20 s, backoff 1-2 s, attempt 2 cut at 41-42 s, backoff 2-3 s,
    // attempt 3 starts at 43-45 s and the 60 s deadline ends it.
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::Deadline), "{err}");
    assert_eq!(start.elapsed(), secs(60));
    assert_eq!(mock.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn deadline_in_extensions_reaches_a_layer_across_a_task_hop() {
    let mock = Mock::always(Step::ok());
    let timeouts = TimeoutByWorkload::new(Workload::Interactive).deadline_in_extensions(true);
    let mut svc = ServiceBuilder::new()
        .layer(timeouts)
        .buffer(8)
        .service(mock.clone());
    let start = Instant::now();
    support::call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(
        mock.calls()[0].deadline,
        Some(Deadline::at(start + secs(60)))
    );
}

#[tokio::test(start_paused = true)]
async fn huge_configured_durations_never_panic() {
    let mock = Mock::new([Step::Status(503, "")], Step::ok());
    let never = Duration::MAX;
    let timeouts = TimeoutByWorkload::new(Workload::Interactive).profile(
        Workload::Interactive,
        TimeoutProfile::new(never).with_idle_read(never),
    );
    let mut svc = ServiceBuilder::new()
        .layer(timeouts)
        .layer(RetryOnStatus::default())
        .layer(fast_backoff(Jitter::None, 1).max_delay(never))
        .layer(tower_reliability::RateLimitAware::with_config(
            tower_reliability::rate_limit::GateConfig::default()
                .with_max_hold(never)
                .with_release_spacing(never)
                .with_probe_max(never),
        ))
        .service(mock.clone());
    let response = support::call(&mut svc, post("{}")).await.unwrap();
    assert_eq!(body_bytes(response).await.unwrap(), "ok");
    assert_eq!(mock.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_request_can_carry_its_own_timeout_profile() {
    // Interactive allows 60 s; this request brings its own 5 s deadline and 2 s attempt limit.
    let mock = Mock::always(Step::Delay(secs(120), Box::new(Step::ok())));
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RetryOnStatus::default())
        .layer(fast_backoff(Jitter::None, 100))
        .layer(AttemptTimeout::by_workload(Workload::Interactive))
        .service(mock.clone());
    let mut request = post("{}");
    request.extensions_mut().insert(
        Workload::Interactive
            .profile()
            .with_total(secs(5))
            .with_attempt(Some(secs(2))),
    );
    let start = Instant::now();
    let err = support::call(&mut svc, request).await.unwrap_err();
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::Deadline), "{err}");
    assert_eq!(start.elapsed(), secs(5), "the request's own deadline");
    assert!(
        mock.count() >= 2,
        "its own 2 s attempt limit cut attempts: {}",
        mock.count()
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_alone_reads_the_requests_profile() {
    let mock = Mock::always(Step::Delay(secs(120), Box::new(Step::ok())));
    let mut svc = ServiceBuilder::new()
        .layer(AttemptTimeout::by_workload(Workload::Interactive))
        .service(mock.clone());
    let mut request = post("{}");
    request
        .extensions_mut()
        .insert(Workload::Interactive.profile().with_attempt(Some(secs(3))));
    let start = Instant::now();
    let err = support::call(&mut svc, request).await.unwrap_err();
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::Attempt), "{err}");
    assert_eq!(start.elapsed(), secs(3));
}
