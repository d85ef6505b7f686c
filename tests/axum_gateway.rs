//! An axum gateway in front of the local Fireworks server, end to end: retries behind the
//! gateway, streaming straight through, and failures turned into proper answers.
mod common;
// The example's own gateway: these tests drive the code users run.
#[path = "../examples/axum_gateway/gateway.rs"]
mod gateway;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use common::fast_backoff;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower_layer::Layer;
use tower_reliability::{
    backoff::Jitter,
    client, fireworks,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    TimeoutByWorkload, TimeoutProfile, Workload,
};

/// Starts the example's gateway to `base_url` with a short deadline and fast backoff.
async fn gateway(base_url: String) -> SocketAddr {
    let profile =
        TimeoutProfile::new(Duration::from_secs(2)).with_idle_read(Duration::from_millis(300));
    let layer = fireworks::layer(Workload::Interactive)
        .timeouts(
            TimeoutByWorkload::new(Workload::Interactive).profile(Workload::Interactive, profile),
        )
        .backoff(fast_backoff(Jitter::Full, 5));
    let upstream = layer.layer(client::https_client(&profile));
    let gateway = gateway::Gateway::new(upstream, &base_url, Some(DEFAULT_API_KEY)).unwrap();
    let app = gateway::router(gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn ask(addr: SocketAddr, stream: bool) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let body = serde_json::json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream});
    let (status, headers, body) =
        send(addr, "POST", "/v1/chat/completions", body.to_string()).await;
    (status, headers, body.unwrap())
}

/// One request to the gateway; the body as read to its end, or the error that cut it.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> (
    http::StatusCode,
    http::HeaderMap,
    Result<Bytes, hyper::Error>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes());
    (parts.status, parts.headers, body)
}

/// Whether the official OpenAI SDKs retry this answer: `x-should-retry` decides when present
/// (`_should_retry` in openai-python's `_base_client.py`, `shouldRetry` in openai-node),
/// otherwise 408, 409, 429 and every 5xx are retried.
fn sdk_retries(status: http::StatusCode, headers: &http::HeaderMap) -> bool {
    match headers.get("x-should-retry").map(|value| value.as_bytes()) {
        Some(b"true") => true,
        Some(b"false") => false,
        _ => matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error(),
    }
}

/// The wait the SDKs take from an answer before retrying it: `retry-after-ms`, else
/// `Retry-After` in seconds, when above zero and at most 60 s (openai-node's bound; newer
/// openai-python versions go to 120 s). Otherwise they back off by themselves (0.5 s to 8 s).
fn sdk_wait(headers: &http::HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> { headers.get(name)?.to_str().ok()?.parse().ok() };
    let secs = number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))?;
    (secs > 0.0 && secs <= 60.0).then(|| Duration::from_secs_f64(secs))
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
    let (status, headers, body) = ask(addr, false).await;
    assert_eq!(status, 504);
    let error = json(&body);
    assert_eq!(error["error"]["object"], "error");
    assert_eq!(error["error"]["type"], "timeout_error");
    assert!(
        !sdk_retries(status, &headers),
        "the gateway's deadline covered its own retries: {headers:?}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let closed = common::closed_port();
    let addr = gateway(format!("http://{closed}/inference/v1")).await;
    let (status, headers, body) = ask(addr, false).await;
    assert_eq!(status, 502);
    assert_eq!(json(&body)["error"]["type"], "upstream_unreachable");
    assert!(
        !sdk_retries(status, &headers),
        "the gateway retried the connect failures already: {headers:?}"
    );
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
    // An SDK cannot wait that long (openai-node waits at most 60 s, then backs off by itself for
    // 0.5 to 8 s): retrying would only meet the closed gate again.
    assert!(!sdk_retries(status, &headers), "{headers:?}");
    // ...then the shared gate answers for it, without bothering the upstream.
    let (status, headers, body) = ask(addr, false).await;
    assert_eq!(status, 429);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((85..=90).contains(&wait), "{wait}");
    assert_eq!(json(&body)["error"]["type"], "rate_limit_error");
    assert!(!sdk_retries(status, &headers), "{headers:?}");
    assert_eq!(server.stats().requests, 1);
}

#[tokio::test]
async fn an_outage_the_gateway_retried_is_not_retried_again_by_the_sdk() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    server.set_outage(503);
    let addr = gateway(upstream(&server)).await;
    let (status, headers, body) = ask(addr, false).await;
    assert_eq!(status, 503);
    assert_eq!(json(&body)["error"]["object"], "error");
    let attempts = server.stats().requests;
    assert!(attempts > 1, "the gateway retried: {attempts} attempts");
    assert!(
        !sdk_retries(status, &headers),
        "the SDK's own retries would multiply the {attempts} attempts: {headers:?}"
    );
}

#[tokio::test]
async fn a_short_rate_limit_tells_the_sdk_to_retry_after_it() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    // Longer than the gateway's 2 s deadline, short enough for an SDK to wait.
    server.push_script([Fault::StatusWithHeaders(
        429,
        vec![("retry-after".into(), "5".into())],
    )]);
    let addr = gateway(upstream(&server)).await;
    // The upstream's 429, passed on...
    let (status, headers, _) = ask(addr, false).await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-should-retry"], "true");
    assert_eq!(sdk_wait(&headers), Some(Duration::from_secs(5)));
    // ...and the shared gate's own.
    let (status, headers, _) = ask(addr, false).await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-should-retry"], "true");
    let wait = sdk_wait(&headers).expect("a wait the SDK honours");
    assert!(
        wait > Duration::from_secs(4) && wait <= Duration::from_secs(5),
        "{wait:?}"
    );
    assert_eq!(server.stats().requests, 1);
}

#[tokio::test]
async fn a_stream_cut_for_idleness_ends_with_an_error_event_the_sdks_raise() {
    let server = FireworksServer::start(ServerConfig::default().tokens_per_completion(10))
        .await
        .unwrap();
    server.push_script([Fault::StallAfterEvents(3)]);
    let addr = gateway(upstream(&server)).await;
    let body = serde_json::json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let (status, _, body) = send(addr, "POST", "/v1/chat/completions", body.to_string()).await;
    assert_eq!(status, 200);
    let body = body.expect("a body that ends cleanly, not a broken chunked encoding");
    let text = String::from_utf8(body.to_vec()).unwrap();
    // Read the events the way the SDKs do: blank-line separated, `data: ` JSON each.
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{text}");
    assert!(events[..3]
        .iter()
        .all(|e| e["object"] == "chat.completion.chunk"));
    let error = &events[3]["error"];
    assert_eq!(error["type"], "timeout_error");
    assert!(error["message"].is_string());
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn oversized_requests_get_a_413_in_the_json_error_shape() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    let addr = gateway(upstream(&server)).await;
    let huge = vec![b' '; 3 * 1024 * 1024];
    let (status, headers, body) = send(addr, "POST", "/v1/chat/completions", huge).await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/json");
    let error = json(&body.unwrap());
    assert_eq!(error["error"]["code"], 413);
    assert!(error["error"]["message"].is_string());
    assert_eq!(server.stats().requests, 0);
}

#[tokio::test]
async fn models_are_passed_through_and_unknown_routes_are_json_404s() {
    let server = FireworksServer::start(ServerConfig::default())
        .await
        .unwrap();
    let addr = gateway(upstream(&server)).await;
    let (status, _, body) = send(addr, "GET", "/v1/models", "").await;
    assert_eq!(status, 200);
    let list = json(&body.unwrap());
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], DEFAULT_MODEL);

    let (status, headers, body) = send(addr, "GET", "/v1/nowhere", "").await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json(&body.unwrap())["error"]["code"], 404);

    let (status, headers, body) = send(addr, "GET", "/v1/chat/completions", "").await;
    assert_eq!(status, 405);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json(&body.unwrap())["error"]["code"], 405);
}
