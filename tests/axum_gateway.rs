//! An axum gateway in front of the local Fireworks server, end to end: retries behind the
//! gateway, streaming straight through, and failures turned into proper answers.

// The example's own gateway: these tests drive the code users run.
#[path = "../examples/axum_gateway/gateway.rs"]
mod gateway;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower_layer::Layer;
use tower_reliability::{
    backoff::Jitter,
    client, fireworks,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    JitteredBackoff, TimeoutByWorkload, TimeoutProfile, Workload,
};

/// Starts the example's gateway to `base_url` with a short deadline and fast backoff.
async fn gateway(base_url: String) -> SocketAddr {
    let profile =
        TimeoutProfile::new(Duration::from_secs(2)).with_idle_read(Duration::from_millis(300));
    let layer = fireworks::layer(Workload::Interactive)
        .timeouts(
            TimeoutByWorkload::new(Workload::Interactive).profile(Workload::Interactive, profile),
        )
        .backoff(
            JitteredBackoff::default()
                .jitter(Jitter::Full)
                .base(Duration::from_millis(5)),
        );
    let upstream = layer.layer(client::https_client(&profile));
    let gateway = gateway::Gateway::new(upstream, &base_url, DEFAULT_API_KEY).unwrap();
    let app = gateway::router(gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn ask(addr: SocketAddr, stream: bool) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let body = serde_json::json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream});
    let request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// The local server's OpenAI-compatible base URL.
fn upstream(server: &FireworksServer) -> String {
    format!("{}/inference/v1", server.base_url())
}

fn json(bytes: &Bytes) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test]
async fn upstream_503s_are_retried_behind_the_gateway() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    server.push_script([Fault::Status(503), Fault::Status(503)]);
    let addr = gateway(upstream(&server)).await;
    let (status, _, body) = ask(addr, false).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["object"], "chat.completion");
    assert_eq!(server.stats().requests, 3);
}

#[tokio::test]
async fn streams_flow_through_and_end_with_done() {
    let server = FireworksServer::start(ServerConfig::default().tokens_per_completion(10))
        .await
        .unwrap();
    let addr = gateway(upstream(&server)).await;
    let (status, headers, body) = ask(addr, true).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(
        text.matches("chat.completion.chunk").count(),
        11,
        "10 tokens, then the finish chunk"
    );
}

#[tokio::test]
async fn headers_that_never_come_are_a_504_in_fireworks_shape() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    server.push_script([Fault::DelayHeaders(Duration::from_secs(30))]);
    let addr = gateway(upstream(&server)).await;
    let (status, _, body) = ask(addr, false).await;
    assert_eq!(status, 504);
    let error = json(&body);
    assert_eq!(error["error"]["object"], "error");
    assert_eq!(error["error"]["type"], "timeout_error");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let addr = gateway(format!("http://{closed}/inference/v1")).await;
    let (status, _, body) = ask(addr, false).await;
    assert_eq!(status, 502);
    assert_eq!(json(&body)["error"]["type"], "upstream_unreachable");
}

#[tokio::test]
async fn a_closed_gate_is_a_429_with_retry_after() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    server.push_script([Fault::StatusWithHeaders(
        429,
        vec![("retry-after".into(), "90".into())],
    )]);
    let addr = gateway(upstream(&server)).await;
    // The upstream's own 429 comes through first (its wait is past the deadline)...
    let (status, headers, _) = ask(addr, false).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "90");
    // ...then the shared gate answers for it, without bothering the upstream.
    let (status, headers, body) = ask(addr, false).await;
    assert_eq!(status, 429);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((85..=90).contains(&wait), "{wait}");
    assert_eq!(json(&body)["error"]["type"], "rate_limit_error");
    assert_eq!(server.stats().requests, 1);
}
