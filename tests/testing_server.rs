//! The fault-injecting Fireworks server, driven by a real HTTP client (hyper-util's).
mod common;

use std::error::Error as _;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::chat::{chat_json, fast_server, start};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower_reliability::testing::{
    body_hash, Fault, FaultMix, FireworksServer, HintStyle, RateLimitConfig, DEFAULT_MODEL,
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type ClientResult = Result<Response<Incoming>, hyper_util::client::legacy::Error>;

/// How long a body may stay silent before a test calls it stalled.
const QUIET: Duration = Duration::from_millis(300);

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn chat_body(stream: bool) -> String {
    chat_json("Say hello to the test", stream)
}

async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    key: Option<&str>,
    body: impl Into<Bytes>,
) -> ClientResult {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("valid request");
    client.request(request).await
}

async fn post(client: &HttpClient, url: &str, body: impl Into<Bytes>) -> ClientResult {
    send(client, "POST", url, Some("test-key"), body).await
}

async fn chat(client: &HttpClient, server: &FireworksServer, stream: bool) -> ClientResult {
    post(client, &server.chat_url(), chat_body(stream)).await
}

/// Status, headers and the whole body of a response.
async fn read(response: ClientResult) -> (StatusCode, HeaderMap, Bytes) {
    let response = response.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a complete body").to_bytes();
    (parts.status, parts.headers, body)
}

async fn read_json(response: ClientResult) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = read(response).await;
    let value = serde_json::from_slice(&body).expect("a JSON body");
    (status, headers, value)
}

#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Ended,
    Failed,
    Silent,
}

/// Reads a body until it ends, fails, or stays silent for [`QUIET`].
async fn read_until_quiet(mut body: Incoming) -> (Vec<u8>, Ending) {
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(QUIET, body.frame()).await {
            Err(_) => return (bytes, Ending::Silent),
            Ok(None) => return (bytes, Ending::Ended),
            Ok(Some(Err(_))) => return (bytes, Ending::Failed),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
        }
    }
}

/// The `data:` payloads of a server-sent-event stream.
fn events(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap_or(event).to_owned())
        .collect()
}

fn error_of(body: &Value) -> (&str, &str) {
    let error = &body["error"];
    assert_eq!(error["object"], "error", "{body}");
    (
        error["type"].as_str().expect("error.type"),
        error["message"].as_str().expect("error.message"),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[tokio::test]
async fn authentication_is_required() {
    let server = start(fast_server()).await;
    let client = client();
    let body = chat_body(false);

    let (status, _, error) =
        read_json(send(&client, "POST", &server.chat_url(), None, body.clone()).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&error).0, "authentication_error");
    assert_eq!(error["error"]["code"], "missing_api_key");

    let wrong = send(
        &client,
        "POST",
        &server.chat_url(),
        Some("nope"),
        body.clone(),
    )
    .await;
    let (status, _, error) = read_json(wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"]["code"], "invalid_api_key");

    let (status, _, _) =
        read_json(send(&client, "GET", &server.models_url(), None, "").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, _) = read_json(post(&client, &server.chat_url(), body.clone()).await).await;
    assert_eq!(status, StatusCode::OK);

    let open = start(fast_server().without_auth()).await;
    let (status, _, _) = read_json(send(&client, "POST", &open.chat_url(), None, body).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_400_422_404() {
    let server = start(fast_server()).await;
    let client = client();
    let url = server.chat_url();
    let cases: [(&str, u16); 9] = [
        ("{not json", 400),
        ("", 400),
        ("{}", 422),
        ("[1, 2]", 422),
        (r#"{"messages": [{"role": "user", "content": "x"}]}"#, 422),
        (
            r#"{"model": 5, "messages": [{"role": "user", "content": "x"}]}"#,
            422,
        ),
        (r#"{"model": "m", "messages": "hello"}"#, 422),
        (r#"{"model": "m", "messages": []}"#, 422),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": "x"}]}"#,
            404,
        ),
    ];
    for (body, expected) in cases {
        let (status, _, error) = read_json(post(&client, &url, body).await).await;
        assert_eq!(status.as_u16(), expected, "{body}");
        let expected_type = if expected == 404 {
            "not_found_error"
        } else {
            "invalid_request_error"
        };
        assert_eq!(error_of(&error).0, expected_type, "{body}");
    }
    let stats = server.stats();
    assert_eq!(
        (stats.count(400), stats.count(422), stats.count(404)),
        (2, 6, 1)
    );
}

/// A job path that is not UTF-8 once percent-decoded gets the Fireworks error shape, as every
/// other error does, not axum's plain-text rejection.
#[tokio::test]
async fn a_non_utf8_job_path_gets_the_error_shape() {
    let server = start(fast_server()).await;
    let client = client();
    let url = format!("{}/v1/accounts/me/batchJobs/%FF%FE", server.base_url());
    let key = Some(tower_reliability::testing::DEFAULT_API_KEY);
    let (status, headers, body) = read_json(send(&client, "GET", &url, key, "").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(error_of(&body).0, "invalid_request_error");
    let url = format!("{}/v1/accounts/%FF/batchJobs", server.base_url());
    let (status, _, body) = read_json(send(&client, "POST", &url, key, "{}").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body).0, "invalid_request_error");
}

#[tokio::test]
async fn non_streaming_completion_has_the_openai_shape() {
    let server = start(fast_server()).await;
    let (status, headers, completion) = read_json(chat(&client(), &server, false).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(completion["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"]
        .as_u64()
        .is_some_and(|created| created > 1_600_000_000));
    assert_eq!(completion["model"], DEFAULT_MODEL);
    let choice = &completion["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().expect("content");
    assert_eq!(content.split_whitespace().count(), 5);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &completion["usage"];
    // "Say hello to the test": 21 bytes, four a token, rounded up.
    assert_eq!(usage["prompt_tokens"], 6);
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(usage["total_tokens"], 11);
}

#[tokio::test]
async fn stream_sends_each_token_then_done() {
    let server = start(fast_server()).await;
    let client = client();
    let response = chat(&client, &server, true).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(response.headers(), "content-type"),
        Some("text/event-stream")
    );
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!(ending, Ending::Ended);
    let events = events(&bytes);
    assert_eq!(events.len(), 5 + 2, "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|event| serde_json::from_str(event).expect("a JSON chunk"))
        .collect();
    assert!(chunks
        .iter()
        .all(|chunk| chunk["object"] == "chat.completion.chunk"));
    let tokens: Vec<&str> = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .filter(|content| !content.is_empty())
        .collect();
    assert_eq!(tokens.len(), 5);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = chunks.last().expect("a final chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["completion_tokens"], 5);

    let (_, _, completion) = read_json(chat(&client, &server, false).await).await;
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        tokens.concat()
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_completion_short() {
    let server = start(fast_server()).await;
    let body = json!({
        "model": DEFAULT_MODEL,
        "messages": [{ "role": "user", "content": "hi" }],
        "max_tokens": 2,
    });
    let (_, _, completion) =
        read_json(post(&client(), &server.chat_url(), body.to_string()).await).await;
    assert_eq!(completion["usage"]["completion_tokens"], 2);
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn models_are_listed() {
    let server = start(fast_server().models(["a/b", "c/d"])).await;
    let response = send(&client(), "GET", &server.models_url(), Some("test-key"), "").await;
    let (status, _, list) = read_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|model| model["id"].as_str())
        .collect();
    assert_eq!(ids, ["a/b", "c/d"]);
}

#[tokio::test]
async fn rate_limit_answers_429_after_the_burst() {
    let server = start(fast_server().rate_limit(RateLimitConfig::new(1.0, 3))).await;
    let client = client();
    for remaining in ["2", "1", "0"] {
        let (status, headers, _) = read(chat(&client, &server, false).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            header(&headers, "x-ratelimit-remaining-requests"),
            Some(remaining)
        );
    }
    let (status, headers, error) = read_json(chat(&client, &server, false).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_of(&error).0, "rate_limit_error");
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(header(&headers, "x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(
        header(&headers, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    let reset = header(&headers, "x-ratelimit-reset-requests").expect("reset header");
    // About three seconds until the bucket is full again, in Go's notation.
    assert!(reset.starts_with('2') || reset == "3s", "{reset}");
    assert!(reset.ends_with('s') && !reset.ends_with("ms"), "{reset}");
    assert_eq!(server.stats().count(429), 1);

    server.set_rate_limit(None);
    let (status, headers, _) = read(chat(&client, &server, false).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-ratelimit-limit-requests").is_none());
}

#[tokio::test]
async fn rate_limit_hint_styles() {
    let server = start(fast_server()).await;
    let client = client();
    let url = server.echo_url();
    let limited = |hint| RateLimitConfig::new(0.5, 1).hint(hint);

    server.set_rate_limit(limited(HintStyle::RetryAfterMs));
    assert_eq!(read(post(&client, &url, "x").await).await.0, StatusCode::OK);
    let (status, headers, _) = read(post(&client, &url, "x").await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_none());
    let millis: u64 = header(&headers, "retry-after-ms")
        .and_then(|ms| ms.parse().ok())
        .expect("ms");
    assert!((1500..=2000).contains(&millis), "{millis}");

    server.set_rate_limit(limited(HintStyle::None));
    read(post(&client, &url, "x").await).await;
    let (status, headers, _) = read(post(&client, &url, "x").await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_none() && headers.get("retry-after-ms").is_none());
    assert!(headers.get("x-ratelimit-reset-requests").is_some());

    server.set_rate_limit(limited(HintStyle::RetryAfterSeconds));
    read(post(&client, &url, "x").await).await;
    let (_, headers, _) = read(post(&client, &url, "x").await).await;
    assert_eq!(header(&headers, "retry-after"), Some("2"));

    server.set_rate_limit(limited(HintStyle::RetryAfterHttpDate));
    read(post(&client, &url, "x").await).await;
    let (_, headers, _) = read(post(&client, &url, "x").await).await;
    let date = header(&headers, "retry-after").expect("a date");
    let due = httpdate::parse_http_date(date).expect("an HTTP date");
    let wait = due
        .duration_since(SystemTime::now())
        .expect("in the future");
    assert!(
        wait > Duration::from_millis(1500) && wait <= Duration::from_secs(3),
        "{wait:?}"
    );
}

#[tokio::test]
async fn status_faults_have_fireworks_bodies() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(504),
        Fault::Status(42),
    ]);
    assert_eq!(server.script_len(), 5);
    let expected = [
        (500, "internal_server_error"),
        (502, "internal_server_error"),
        (503, "service_unavailable"),
        (504, "internal_server_error"),
        (500, "internal_server_error"),
    ];
    for (code, kind) in expected {
        let (status, _, error) = read_json(chat(&client, &server, true).await).await;
        assert_eq!(status.as_u16(), code);
        assert_eq!(error_of(&error).0, kind);
        if code == 503 {
            assert_eq!(error_of(&error).1, "Service Overloaded");
        }
    }
    assert_eq!(server.script_len(), 0);
    assert_eq!(
        read(chat(&client, &server, false).await).await.0,
        StatusCode::OK
    );
    assert_eq!(server.stats().count(500), 2);
}

#[tokio::test]
async fn status_with_headers_sends_them_verbatim() {
    let server = start(fast_server()).await;
    let client = client();
    let huge = "9".repeat(40);
    server.push_script([
        Fault::StatusWithHeaders(429, vec![("Retry-After".into(), "soon".into())]),
        Fault::StatusWithHeaders(429, vec![("retry-after".into(), huge.clone())]),
        Fault::StatusWithHeaders(
            503,
            vec![
                ("x-extra".into(), "one".into()),
                ("x-extra".into(), "two".into()),
                ("bad header".into(), "skipped".into()),
            ],
        ),
    ]);
    let (status, headers, error) = read_json(chat(&client, &server, false).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_of(&error).0, "rate_limit_error");
    assert_eq!(header(&headers, "retry-after"), Some("soon"));
    let (_, headers, _) = read(chat(&client, &server, false).await).await;
    assert_eq!(header(&headers, "retry-after"), Some(huge.as_str()));
    let (status, headers, _) = read(chat(&client, &server, false).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let extra: Vec<_> = headers.get_all("x-extra").iter().collect();
    assert_eq!(extra, ["one", "two"]);
}

#[tokio::test]
async fn delay_headers_then_serves_normally() {
    let server = start(fast_server()).await;
    server.push_script([Fault::DelayHeaders(Duration::from_millis(150))]);
    let started = Instant::now();
    let (status, _, completion) = read_json(chat(&client(), &server, false).await).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(completion["object"], "chat.completion");
}

#[tokio::test]
async fn stall_after_events_goes_silent_with_the_connection_open() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([Fault::StallAfterEvents(3), Fault::StallAfterEvents(1)]);

    let response = chat(&client, &server, true).await.expect("headers arrive");
    assert_eq!(response.status(), StatusCode::OK);
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!(ending, Ending::Silent);
    assert_eq!(events(&bytes).len(), 3);

    // A non-streaming answer stalls after its first 32-byte chunk.
    let response = chat(&client, &server, false).await.expect("headers arrive");
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!((bytes.len(), ending), (32, Ending::Silent));

    assert_eq!(server.stats().streams_stalled, 2);
}

/// The error chain of a failed request, for messages.
fn chain(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Whether a TCP reset (not a clean close) failed the request.
fn is_connection_reset(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionReset;
        }
        source = cause.source();
    }
    false
}

#[tokio::test]
async fn reset_before_response_fails_the_request() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([Fault::ResetBeforeResponse]);
    let error = chat(&client, &server, false)
        .await
        .expect_err("no response");
    assert!(!error.is_connect(), "{}", chain(&error));
    assert!(is_connection_reset(&error), "{}", chain(&error));

    let stats = server.stats();
    assert_eq!(
        (stats.requests, stats.responses(), stats.connections_reset),
        (1, 0, 1)
    );
    assert_eq!(
        read(chat(&client, &server, false).await).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reset_mid_body_breaks_the_body_after_n_events() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([
        Fault::ResetMidBody(2),
        Fault::ResetMidBody(0),
        Fault::ResetMidBody(1),
    ]);

    let response = chat(&client, &server, true).await.expect("headers arrive");
    assert_eq!(response.status(), StatusCode::OK);
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!(ending, Ending::Failed);
    assert_eq!(events(&bytes).len(), 2);

    let response = chat(&client, &server, true).await.expect("headers arrive");
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!((bytes.len(), ending), (0, Ending::Failed));

    let response = chat(&client, &server, false).await.expect("headers arrive");
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!((bytes.len(), ending), (32, Ending::Failed));

    let stats = server.stats();
    assert_eq!((stats.connections_reset, stats.count(200)), (3, 3));
}

#[tokio::test]
async fn slow_stream_uses_its_own_interval() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([Fault::SlowStream(Duration::from_millis(30))]);
    let started = Instant::now();
    let response = chat(&client, &server, true).await.expect("a response");
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    // 7 events, 6 pauses of 30 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(180),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((events(&bytes).len(), ending), (7, Ending::Ended));

    server.push_script([Fault::SlowStream(Duration::from_millis(20))]);
    let started = Instant::now();
    let (status, _, _) = read_json(chat(&client, &server, false).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "5 tokens of 20 ms"
    );
}

#[tokio::test]
async fn echo_hash_proves_a_replay_is_byte_identical() {
    let server = start(fast_server()).await;
    let client = client();
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    server.push_script([Fault::Status(503)]);

    let (status, _, _) = read(post(&client, &server.echo_url(), body.clone()).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, echo) = read_json(post(&client, &server.echo_url(), body.clone()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echo["len"], 10_000);
    assert_eq!(echo["hash"], body_hash(&body));
    assert_ne!(body_hash(&body), body_hash(&body[1..]));

    // No API key needed.
    let (status, _, _) = read(send(&client, "POST", &server.echo_url(), None, "x").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.stats().path_count("/echo-hash"), 3);
}

#[tokio::test]
async fn stats_count_exactly_what_reached_the_server() {
    let server = start(fast_server()).await;
    // No pooling: every request opens its own connection.
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    for _ in 0..3 {
        read(chat(&client, &server, false).await).await;
    }
    read(send(&client, "POST", &server.chat_url(), None, chat_body(false)).await).await;
    read(send(&client, "GET", &server.models_url(), Some("test-key"), "").await).await;
    read(
        send(
            &client,
            "GET",
            &format!("{}/nowhere", server.base_url()),
            None,
            "",
        )
        .await,
    )
    .await;

    let stats = server.stats();
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.connections_accepted, 6);
    assert_eq!(
        (stats.count(200), stats.count(401), stats.count(404)),
        (4, 1, 1)
    );
    assert_eq!(stats.responses(), 6);
    assert_eq!(stats.path_count("/inference/v1/chat/completions"), 4);
    assert_eq!(stats.path_count("/inference/v1/models"), 1);
    assert_eq!(stats.path_count("/nowhere"), 1);
    assert_eq!((stats.connections_reset, stats.streams_stalled), (0, 0));

    server.reset_stats();
    let stats = server.stats();
    assert_eq!(
        (
            stats.requests,
            stats.connections_accepted,
            stats.responses()
        ),
        (0, 0, 0)
    );
    assert!(stats.paths.is_empty());
}

#[tokio::test]
async fn outage_answers_every_request_until_cleared() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([Fault::Status(500)]);
    server.set_outage(503);
    for url in [
        server.chat_url(),
        server.echo_url(),
        format!("{}/x", server.base_url()),
    ] {
        let (status, _, error) = read_json(post(&client, &url, chat_body(false)).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            error_of(&error),
            ("service_unavailable", "Service Overloaded")
        );
    }
    assert_eq!(
        server.script_len(),
        1,
        "an outage consumes no scripted fault"
    );
    server.set_outage(None);
    assert_eq!(
        read(chat(&client, &server, false).await).await.0.as_u16(),
        500
    );
    assert_eq!(
        read(chat(&client, &server, false).await).await.0,
        StatusCode::OK
    );
}

async fn statuses_under(mix: FaultMix, requests: usize) -> Vec<u16> {
    let server = start(fast_server().fault_mix(mix)).await;
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..requests {
        statuses.push(
            read(post(&client, &server.echo_url(), "x").await)
                .await
                .0
                .as_u16(),
        );
    }
    statuses
}

#[tokio::test]
async fn the_random_mix_repeats_with_a_seed() {
    let mix = FaultMix::default().status_500(0.3).status_503(0.3).seed(7);
    let first = statuses_under(mix, 20).await;
    assert_eq!(first, statuses_under(mix, 20).await);
    for code in [200, 500, 503] {
        assert!(first.contains(&code), "{first:?}");
    }

    let server = start(fast_server()).await;
    let client = client();
    server.set_fault_mix(FaultMix::default().reset(1.0));
    for _ in 0..2 {
        assert!(post(&client, &server.echo_url(), "x").await.is_err());
    }
    // A scripted `None` keeps the mix away.
    server.push_script([Fault::None]);
    assert_eq!(
        read(post(&client, &server.echo_url(), "x").await).await.0,
        StatusCode::OK
    );
    assert_eq!(server.stats().connections_reset, 2);
}

#[tokio::test]
async fn shutdown_cuts_stalls_and_refuses_new_connections() {
    let server = start(fast_server()).await;
    let client = client();
    server.push_script([Fault::StallAfterEvents(1)]);
    let stalled = chat(&client, &server, true).await.expect("headers arrive");
    let reader = tokio::spawn(read_until_quiet(stalled.into_body()));
    tokio::time::sleep(Duration::from_millis(20)).await;

    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let (bytes, ending) = reader.await.expect("reader");
    assert_eq!((events(&bytes).len(), ending), (1, Ending::Failed));

    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let server = start(fast_server()).await;
    let client = client();
    let addr = server.addr();
    let copy = server.clone();
    drop(server);
    assert_eq!(
        read(chat(&client, &copy, false).await).await.0,
        StatusCode::OK
    );

    copy.push_script([Fault::StallAfterEvents(0)]);
    let stalled = chat(&client, &copy, true).await.expect("headers arrive");
    drop(copy);
    let (_, ending) = read_until_quiet(stalled.into_body()).await;
    assert_eq!(ending, Ending::Failed);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn unknown_paths_methods_and_huge_bodies() {
    let server = start(fast_server().max_body_bytes(64)).await;
    let client = client();
    let (status, _, error) =
        read_json(send(&client, "GET", &server.chat_url(), None, "").await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&error).0, "invalid_request_error");
    let nowhere = format!("{}/v1/chat/completions", server.base_url());
    let (status, _, error) = read_json(post(&client, &nowhere, chat_body(false)).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&error).0, "not_found_error");
    let (status, _, _) = read_json(post(&client, &server.chat_url(), vec![b' '; 65]).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let server = start(fast_server()).await;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let response = chat(&client, &server, true).await.expect("a response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    let (bytes, ending) = read_until_quiet(response.into_body()).await;
    assert_eq!((events(&bytes).len(), ending), (7, Ending::Ended));
}

#[tokio::test(start_paused = true)]
async fn the_quota_refills_continuously_on_tokios_clock_and_says_so_exactly() {
    // Two requests at once, then one every 2 s, refilled continuously (not a fixed window);
    // the quota follows Tokio's clock, so paused time drives it.
    let quota = RateLimitConfig::new(0.5, 2).hint(HintStyle::SecondsAndMs);
    let server = start(fast_server().rate_limit(quota)).await;
    let client = client();
    let url = server.echo_url();
    let answer = || async {
        let (status, headers, _) = read(post(&client, &url, "x").await).await;
        let value = |name| header(&headers, name).map(str::to_owned);
        (
            status.as_u16(),
            value("x-ratelimit-limit-requests"),
            value("x-ratelimit-remaining-requests"),
            value("x-ratelimit-reset-requests"),
            value("retry-after-ms"),
            value("retry-after"),
        )
    };
    let s = |v: &str| Some(v.to_owned());
    // Every answer carries the limit, what remains and the time until the bucket is full.
    assert_eq!(answer().await, (200, s("2"), s("1"), s("2s"), None, None));
    assert_eq!(answer().await, (200, s("2"), s("0"), s("4s"), None, None));
    // Empty: the 429 says exactly when one request fits again.
    assert_eq!(
        answer().await,
        (429, s("2"), s("0"), s("4s"), s("2000"), s("2"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        answer().await,
        (429, s("2"), s("0"), s("3.5s"), s("1500"), s("2"))
    );
    // One request back 2 s after the bucket ran dry, not when it is full again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(answer().await, (200, s("2"), s("0"), s("4s"), None, None));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(answer().await, (200, s("2"), s("1"), s("2s"), None, None));
    assert_eq!(server.stats().count(429), 2);
}
