//! End to end through a real hyper-util client against servers on 127.0.0.1: each layer alone,
//! and the preset. Real time, short durations, no sleeps in the test itself.
mod common;
mod support;

use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::fast_backoff;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::{body_bytes, call, handler, respond, serve, streaming};
use tower::ServiceBuilder;
use tower_reliability::{
    backoff::Jitter, error::TimeoutPhase, fireworks, retry::ReplayBody, ErrorKind, JitteredBackoff,
    RateLimitAware, RetryOnStatus, RetryReport, TimeoutByWorkload, TimeoutProfile, Workload,
};

type Body = ReplayBody<Full<Bytes>>;

fn client<B: http_body::Body + Send + 'static + Unpin>(
) -> Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

fn post(addr: std::net::SocketAddr, body: &'static str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}/inference/v1/chat/completions"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// Full jitter on 5 ms, spread 5 ms: quick retries on the wire.
fn quick_backoff() -> JitteredBackoff {
    fast_backoff(Jitter::Full, 5).spread(Duration::from_millis(5))
}

#[tokio::test]
async fn timeout_layer_cuts_a_stalled_stream_over_the_wire() {
    let (addr, _) = serve(handler(|_, _| async {
        streaming(
            vec![
                (Duration::ZERO, "data: a\n\n"),
                (Duration::from_millis(20), "data: b\n\n"),
            ],
            true,
        )
    }))
    .await;
    let profile =
        TimeoutProfile::new(Duration::from_secs(5)).with_idle_read(Duration::from_millis(300));
    let mut svc = ServiceBuilder::new()
        .layer(
            TimeoutByWorkload::new(Workload::Interactive).profile(Workload::Interactive, profile),
        )
        .service(client::<Full<Bytes>>());
    let response = call(&mut svc, post(addr, "{}")).await.unwrap();
    let err = body_bytes(response).await.unwrap_err();
    let err = err.downcast::<tower_reliability::Error>().unwrap();
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::BodyIdle));
}

#[tokio::test]
async fn retry_layer_replays_the_body_over_the_wire_and_returns_the_last_response() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let (addr, count) = serve(handler(move |n, req| {
        seen.lock().unwrap().push(req.into_body());
        async move {
            match n {
                0 => respond(503, &[], "overloaded"),
                1 => respond(502, &[], "bad gateway"),
                _ => respond(200, &[("x-attempt", "3")], "done"),
            }
        }
    }))
    .await;
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .layer(quick_backoff())
        .service(client::<Body>());
    let payload =
        r#"{"model":"accounts/fireworks/models/x","messages":[{"role":"user","content":"hi"}]}"#;
    let response = call(&mut svc, post(addr, payload)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.extensions().get::<RetryReport>().unwrap().attempts,
        3
    );
    assert_eq!(body_bytes(response).await.unwrap(), "done");
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![Bytes::from_static(payload.as_bytes()); 3]
    );

    // A 404 is not retried: the server sees it once, the caller gets the real body.
    let (addr, count) = serve(handler(|_, _| async {
        respond(404, &[], r#"{"error":{"message":"model not found"}}"#)
    }))
    .await;
    let response = call(&mut svc, post(addr, "{}")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(body_bytes(response)
        .await
        .unwrap()
        .starts_with(b"{\"error\""));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_layer_classifies_a_refused_connection_as_never_reaching_the_server() {
    // Nothing listens there.
    let addr = common::closed_port();
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default().max_attempts(3))
        .layer(quick_backoff())
        .service(client::<Body>());
    let err = call(&mut svc, post(addr, "{}")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert_eq!(err.reached_server(), Some(false));
}

#[tokio::test]
async fn backoff_layer_honours_retry_after_ms_over_the_wire() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    let (addr, _) = serve(handler(move |n, _| {
        seen.lock().unwrap().push(Instant::now());
        async move {
            if n == 0 {
                respond(429, &[("retry-after-ms", "150")], "slow down")
            } else {
                respond(200, &[], "ok")
            }
        }
    }))
    .await;
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .layer(quick_backoff())
        .service(client::<Body>());
    assert_eq!(
        call(&mut svc, post(addr, "{}")).await.unwrap().status(),
        200
    );
    let times = times.lock().unwrap();
    assert!(
        times[1] - times[0] >= Duration::from_millis(150),
        "the server's hint was honoured"
    );
}

#[tokio::test]
async fn rate_limit_layer_holds_concurrent_callers_over_the_wire() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    let opened = Arc::new(Mutex::new(None::<Instant>));
    let open_at = opened.clone();
    let (addr, count) = serve(handler(move |n, _| {
        seen.lock().unwrap().push(Instant::now());
        let open_at = open_at.clone();
        async move {
            if n == 0 {
                *open_at.lock().unwrap() = Some(Instant::now() + Duration::from_millis(300));
                respond(429, &[("retry-after-ms", "300")], "")
            } else {
                respond(200, &[], "ok")
            }
        }
    }))
    .await;
    let svc = ServiceBuilder::new()
        .layer(RateLimitAware::new())
        .service(client::<Full<Bytes>>());
    let mut first = svc.clone();
    assert_eq!(
        call(&mut first, post(addr, "{}")).await.unwrap().status(),
        429
    );
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { call(&mut svc, post(addr, "{}")).await.map(|r| r.status()) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 200);
    }
    assert_eq!(count.load(Ordering::SeqCst), 9);
    let open_at = opened.lock().unwrap().unwrap();
    // Allow for the server's clock being read a moment after the client's.
    let early = received.lock().unwrap()[1..]
        .iter()
        .filter(|t| **t + Duration::from_millis(5) < open_at)
        .count();
    assert_eq!(
        early, 0,
        "no caller reached the server while the gate was closed"
    );
}

#[tokio::test]
async fn the_preset_over_a_hyper_client_recovers_from_a_burst_of_503s() {
    let (addr, count) = serve(handler(move |n, _| async move {
        if n < 2 {
            respond(
                503,
                &[("retry-after-ms", "20")],
                r#"{"error":{"message":"Service Overloaded"}}"#,
            )
        } else {
            respond(200, &[], r#"{"choices":[]}"#)
        }
    }))
    .await;
    let mut svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive).backoff(quick_backoff()))
        .service(client::<Body>());
    let response = call(&mut svc, post(addr, "{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await.unwrap(), r#"{"choices":[]}"#);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}
