//! Rule 7: the layers compose with tower and axum, are Send + Clone, and each works alone
//! under other crates' layers.
mod support;

use std::time::Duration;

use axum::{error_handling::HandleErrorLayer, response::IntoResponse, Router};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use support::{body_bytes, call, Mock, Step};
use tower::{ServiceBuilder, ServiceExt};
use tower_reliability::{
    backoff::Jitter, fireworks, Error, JitteredBackoff, RateLimitAware, RetryOnStatus,
    TimeoutByWorkload, Workload,
};

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}
fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn layers_services_and_futures_are_send_and_clone() {
    let layer = fireworks::layer(Workload::Interactive);
    assert_send_sync_clone(&layer);
    assert_send_sync_clone(&TimeoutByWorkload::new(Workload::Agentic));
    assert_send_sync_clone(&RetryOnStatus::default());
    assert_send_sync_clone(&JitteredBackoff::default());
    assert_send_sync_clone(&RateLimitAware::new());
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Mock::always(Step::ok()));
    assert_send_sync_clone(&svc);
    type Request = http::Request<Full<Bytes>>;
    std::future::poll_fn(|cx| tower::Service::<Request>::poll_ready(&mut svc, cx))
        .await
        .unwrap();
    let future = tower::Service::call(&mut svc, support::post("{}"));
    assert_send(&future);
    assert_eq!(future.await.unwrap().status(), 200);
}

/// What an axum gateway does with our errors: `HandleErrorLayer` hands over the typed
/// [`Error`], no downcasting needed.
async fn to_response(err: Error) -> impl IntoResponse {
    let status = if err.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else if err.is_rate_limited() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_GATEWAY
    };
    (status, err.to_string())
}

#[tokio::test(start_paused = true)]
async fn inside_axum_with_handle_error_layer() {
    let upstream = Mock::new([Step::Status(503, "")], Step::Status(200, "from upstream"));
    let proxy = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response))
        .layer(fireworks::layer(Workload::Interactive))
        .service(upstream.clone());
    let app = Router::new().route_service("/v1/chat/completions", proxy);

    let request = http::Request::post("/v1/chat/completions")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await.unwrap(), "from upstream");
    assert_eq!(upstream.count(), 2, "the 503 was retried behind axum");

    // A timeout becomes a 504 through HandleErrorLayer.
    upstream.set_otherwise(Step::Delay(Duration::from_secs(600), Box::new(Step::ok())));
    let request = http::Request::post("/v1/chat/completions")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn each_layer_works_alone_under_tower_s_own_layers() {
    // tower's timeout around our retry + backoff, with a concurrency limit and a buffer
    // between: readiness is forwarded, clones share state, errors stay typed.
    let mock = Mock::new([Step::Status(500, ""), Step::Status(429, "")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(RetryOnStatus::default())
        .layer(
            JitteredBackoff::default()
                .jitter(Jitter::None)
                .base(Duration::from_millis(10)),
        )
        .buffer(4)
        .concurrency_limit(2)
        .layer(RateLimitAware::new())
        .service(mock.clone());
    let request = http::Request::post("http://x/")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = call(&mut svc, request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.count(), 3);
}
