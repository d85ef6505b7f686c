//! The layers as a reqwest-middleware `Middleware`, against the local Fireworks server.
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::chat::chat_json;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower_reliability::{
    backoff::Jitter,
    error::TimeoutPhase,
    fireworks,
    middleware::{reliability_error, ReliabilityMiddleware},
    testing::{body_hash, Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY},
    JitteredBackoff, TimeoutByWorkload, TimeoutProfile, Workload,
};

fn fast() -> ReliabilityMiddleware {
    let backoff = JitteredBackoff::default()
        .jitter(Jitter::Full)
        .base(Duration::from_millis(5));
    ReliabilityMiddleware::from_layer(fireworks::layer(Workload::Interactive).backoff(backoff))
}

/// The preset with a short interactive deadline (other workloads keep the guide's).
fn interactive_deadline(total: Duration) -> ReliabilityMiddleware {
    let timeouts = TimeoutByWorkload::new(Workload::Interactive)
        .profile(Workload::Interactive, TimeoutProfile::new(total));
    ReliabilityMiddleware::from_layer(fireworks::layer(Workload::Interactive).timeouts(timeouts))
}

fn client(middleware: ReliabilityMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

/// A chat completion `POST` to `url` with `Authorization: Bearer key`, ready to send.
fn chat(
    client: &ClientWithMiddleware,
    url: impl reqwest::IntoUrl,
    key: &str,
) -> reqwest_middleware::RequestBuilder {
    client
        .post(url)
        .bearer_auth(key)
        .body(chat_json("hi", false))
}

async fn server() -> FireworksServer {
    FireworksServer::start(ServerConfig::default())
        .await
        .unwrap()
}

/// A 503 burst is retried through the middleware chain; the caller sees the 200.
#[tokio::test]
async fn retries_a_503_burst() {
    let server = server().await;
    server.push_script([Fault::Status(503), Fault::Status(503)]);
    let response = chat(&client(fast()), server.chat_url(), DEFAULT_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.url().as_str(),
        server.chat_url(),
        "the URL survives the round trip"
    );
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(server.stats().requests, 3);
    assert_eq!(server.stats().count(503), 2);
}

/// `retry-after-ms` is honoured, which reqwest-retry does not do.
#[tokio::test]
async fn honours_retry_after_ms() {
    let server = server().await;
    server.push_script([Fault::StatusWithHeaders(
        429,
        vec![("retry-after-ms".into(), "300".into())],
    )]);
    let started = Instant::now();
    let response = chat(&client(fast()), server.chat_url(), DEFAULT_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.stats().requests, 2);
}

/// A streaming (non-cloneable) request body is buffered and replayed byte for byte, where
/// reqwest-retry gives up.
#[tokio::test]
async fn replays_a_streaming_body() {
    let server = server().await;
    server.push_script([Fault::Status(502)]);
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..8)
        .map(|i| Ok(Bytes::from(format!("chunk-{i};"))))
        .collect();
    let expected: String = (0..8).map(|i| format!("chunk-{i};")).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = client(fast())
        .post(server.echo_url())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(echo["hash"], body_hash(expected.as_bytes()));
    assert_eq!(echo["len"], expected.len());
    assert_eq!(server.stats().requests, 2);
}

/// Client errors are not retried.
#[tokio::test]
async fn never_retries_a_401() {
    let server = server().await;
    let response = chat(&client(fast()), server.chat_url(), "wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.stats().requests, 1);
}

/// A refused connection comes back as reqwest's own error, still saying `is_connect()`.
#[tokio::test]
async fn a_refused_connection_keeps_reqwests_error() {
    let addr = common::closed_port();
    let err = client(fast())
        .post(format!("http://{addr}/inference/v1/chat/completions"))
        .body(chat_json("hi", false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(reliability_error(&err).is_none());
}

/// Our own failures come back wrapped, and `reliability_error` finds them.
#[tokio::test]
async fn a_deadline_comes_back_as_our_error() {
    let server = server().await;
    server.push_script([Fault::DelayHeaders(Duration::from_secs(30))]);
    let err = chat(
        &client(interactive_deadline(Duration::from_millis(300))),
        server.chat_url(),
        DEFAULT_API_KEY,
    )
    .send()
    .await
    .unwrap_err();
    let ours = reliability_error(&err).expect("our error");
    assert_eq!(ours.timeout_phase(), Some(TimeoutPhase::Deadline));
}

/// A per-request workload travels through reqwest-middleware's extensions.
#[tokio::test]
async fn a_request_picks_its_workload() {
    let server = server().await;
    server.push_script([Fault::DelayHeaders(Duration::from_millis(600))]);
    let client = client(interactive_deadline(Duration::from_millis(200)));
    let response = chat(&client, server.chat_url(), DEFAULT_API_KEY)
        .with_extension(Workload::Agentic)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "agentic's 15 minutes, not interactive's 200 ms"
    );
}

/// Clients built from clones of one middleware share one rate-limit gate: the second client's
/// request waits for the gate the first one's 429 closed.
#[tokio::test]
async fn clients_share_one_gate() {
    let server = server().await;
    server.push_script([Fault::StatusWithHeaders(
        429,
        vec![("retry-after-ms".into(), "600".into())],
    )]);
    let middleware = fast();
    let (first, second) = (client(middleware.clone()), client(middleware));
    let started = Instant::now();
    let url = server.chat_url();
    let a = tokio::spawn({
        let url = url.clone();
        async move {
            chat(&first, url, DEFAULT_API_KEY)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = tokio::spawn(async move {
        chat(&second, url, DEFAULT_API_KEY)
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.stats().requests,
        1,
        "the second client is held by the shared gate"
    );
    assert_eq!(a.await.unwrap().unwrap(), 200);
    assert_eq!(b.await.unwrap().unwrap(), 200);
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(server.stats().requests, 3);
}
