//! The local server's per-model token limits (`ModelLimits`), token accounting and `usage`,
//! driven by a real hyper client on 127.0.0.1; paused Tokio time where the clock matters.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower_reliability::testing::{
    Fault, FireworksHeaders, FireworksServer, HintStyle, ModelLimits, ServerConfig,
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const MODEL: &str = "accounts/fireworks/models/llama-v3p1-8b-instruct";
const FAST: &str = "accounts/fireworks/models/llama-v3p1-8b-instruct-fast";

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Both models, 5 tokens a completion, 1 ms apart.
fn config() -> ServerConfig {
    ServerConfig::default()
        .models([MODEL, FAST])
        .tokens_per_completion(5)
        .token_interval(Duration::from_millis(1))
}

async fn start(config: ServerConfig) -> FireworksServer {
    FireworksServer::start(config).await.expect("server starts")
}

/// A chat request for `model` whose one message is `prompt_tokens * 4` bytes.
fn request(model: &str, prompt_tokens: usize) -> Value {
    json!({
        "model": model,
        "messages": [{ "role": "user", "content": "abcd".repeat(prompt_tokens) }],
    })
}

async fn send(
    client: &HttpClient,
    server: &FireworksServer,
    body: &Value,
) -> http::Response<hyper::body::Incoming> {
    let request = Request::post(server.chat_url())
        .header("authorization", "Bearer test-key")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    client.request(request).await.expect("a response")
}

/// Status, headers and the whole body.
async fn call(
    client: &HttpClient,
    server: &FireworksServer,
    body: &Value,
) -> (StatusCode, HeaderMap, Bytes) {
    let (parts, body) = send(client, server, body).await.into_parts();
    let bytes = body.collect().await.expect("a whole body").to_bytes();
    (parts.status, parts.headers, bytes)
}

async fn status(client: &HttpClient, server: &FireworksServer, body: &Value) -> u16 {
    call(client, server, body).await.0.as_u16()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a JSON body")
}

/// The JSON chunks of a server-sent-event stream, and whether it ended with `[DONE]`.
fn chunks(bytes: &[u8]) -> (Vec<Value>, bool) {
    let text = String::from_utf8_lossy(bytes);
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap_or(event))
        .collect();
    let done = events.last() == Some(&"[DONE]");
    let chunks = events
        .iter()
        .filter(|event| **event != "[DONE]")
        .map(|event| serde_json::from_str(event).expect("a JSON chunk"))
        .collect();
    (chunks, done)
}

#[tokio::test]
async fn prompt_tokens_are_message_bytes_over_four_and_a_share_is_cached() {
    let server = start(config().cached_prompt_share(0.5)).await;
    let body = json!({
        "model": MODEL,
        "messages": [
            { "role": "system", "content": "abc" },
            { "role": "user", "content": "x".repeat(40) },
        ],
    });
    let (status, _, bytes) = call(&client(), &server, &body).await;
    assert_eq!(status, StatusCode::OK);
    let usage = &json_of(&bytes)["usage"];
    // ceil(3 / 4) + 40 / 4 = 11 prompt tokens, floor(11 * 0.5) = 5 of them cached.
    assert_eq!(usage["prompt_tokens"], 11, "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], 5,
        "{usage}"
    );
    assert_eq!(usage["completion_tokens"], 5, "{usage}");
    assert_eq!(usage["total_tokens"], 16, "{usage}");
    let stats = server.stats().model(MODEL);
    assert_eq!(
        (stats.requests, stats.served, stats.prompt_tokens),
        (1, 1, 11)
    );
    assert_eq!((stats.cached_prompt_tokens, stats.generated_tokens), (5, 5));
}

#[tokio::test]
async fn include_usage_ends_the_stream_with_openais_usage_chunk() {
    let server = start(config()).await;
    let mut body = request(MODEL, 3);
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let (status, _, bytes) = call(&client(), &server, &body).await;
    assert_eq!(status, StatusCode::OK);
    let (chunks, done) = chunks(&bytes);
    assert!(done);
    // Five tokens, the finish chunk, then the usage chunk with no choices.
    assert_eq!(chunks.len(), 7, "{chunks:?}");
    let finish = &chunks[5];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop", "{finish}");
    assert_eq!(finish["usage"], Value::Null, "{finish}");
    let last = &chunks[6];
    assert_eq!(last["object"], "chat.completion.chunk");
    assert_eq!(last["choices"], json!([]), "{last}");
    assert_eq!(
        last["usage"],
        json!({ "prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8 })
    );
    assert!(chunks[..6].iter().all(|chunk| chunk["usage"].is_null()));
}

#[tokio::test(start_paused = true)]
async fn prompt_limits_are_per_model_and_refill_continuously() {
    // 600 prompt tokens a minute: 10 a second, a bucket of 600.
    let limits = ModelLimits::new()
        .prompt_tokens_per_minute(600)
        .hint(HintStyle::SecondsAndMs);
    let server = start(config().model_limits(limits)).await;
    let client = client();
    let hundred = request(MODEL, 100);
    for _ in 0..6 {
        let (status, headers, _) = call(&client, &server, &hundred).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            header(&headers, "x-ratelimit-limit-tokens-prompt").as_deref(),
            Some("10")
        );
    }
    // The bucket is empty: 100 tokens fit again in exactly 10 s.
    let (status, headers, bytes) = call(&client, &server, &hundred).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_of(&bytes)["error"]["type"], "rate_limit_error");
    assert_eq!(header(&headers, "retry-after-ms").as_deref(), Some("10000"));
    assert_eq!(header(&headers, "retry-after").as_deref(), Some("10"));
    // The fast variant is another model, with a bucket of its own.
    assert_eq!(status_of(&client, &server, FAST, 100).await, 200);

    tokio::time::sleep(Duration::from_millis(9_990)).await;
    let (status, headers, _) = call(&client, &server, &hundred).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after-ms").as_deref(), Some("10"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(status_of(&client, &server, MODEL, 100).await, 200);
    // Continuously: 5 s later, 50 tokens fit and 51 do not.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status_of(&client, &server, MODEL, 51).await, 429);
    assert_eq!(status_of(&client, &server, MODEL, 50).await, 200);

    let stats = server.stats().model(MODEL);
    assert_eq!(
        (stats.requests, stats.served, stats.rate_limited),
        (11, 8, 3)
    );
    assert_eq!(stats.prompt_tokens, 750);
    assert_eq!(server.stats().model(FAST).served, 1);
    assert_eq!(server.stats().count(429), 3);
}

async fn status_of(
    client: &HttpClient,
    server: &FireworksServer,
    model: &str,
    prompt_tokens: usize,
) -> u16 {
    status(client, server, &request(model, prompt_tokens)).await
}

#[tokio::test]
async fn current_headers_give_the_limits_per_second() {
    let limits = ModelLimits::fireworks_serverless().requests_per_minute(6000);
    let server = start(config().model_limits(limits)).await;
    let (status, headers, _) = call(&client(), &server, &request(MODEL, 1)).await;
    assert_eq!(status, StatusCode::OK);
    let value = |name| header(&headers, name);
    assert_eq!(
        value("x-ratelimit-limit-tokens-prompt").as_deref(),
        Some("60000")
    );
    assert_eq!(
        value("x-ratelimit-limit-tokens-cache-adjusted-prompt").as_deref(),
        Some("15000")
    );
    assert_eq!(
        value("x-ratelimit-limit-tokens-generated").as_deref(),
        Some("600")
    );
    for absent in [
        "x-ratelimit-remaining-tokens-prompt",
        "x-ratelimit-remaining-tokens-generated",
        "x-ratelimit-limit-requests",
        "x-ratelimit-over-limit",
        "retry-after",
    ] {
        assert_eq!(value(absent), None, "{absent}");
    }
}

#[tokio::test(start_paused = true)]
async fn legacy_headers_count_down_per_minute() {
    let limits = ModelLimits::new()
        .requests_per_minute(3)
        .prompt_tokens_per_minute(1200)
        .uncached_prompt_tokens_per_minute(1200)
        .generated_tokens_per_minute(600)
        .fireworks_headers(FireworksHeaders::Legacy);
    let server = start(config().model_limits(limits)).await;
    let client = client();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (status, headers, _) = call(&client, &server, &request(MODEL, 4)).await;
        assert_eq!(status, StatusCode::OK);
        let value = |name| header(&headers, name).unwrap_or_default();
        seen.push([
            value("x-ratelimit-limit-requests"),
            value("x-ratelimit-remaining-requests"),
            value("x-ratelimit-limit-tokens-prompt"),
            value("x-ratelimit-remaining-tokens-prompt"),
            value("x-ratelimit-limit-tokens-generated"),
            value("x-ratelimit-remaining-tokens-generated"),
        ]);
        // The older page had no uncached prompt limit.
        assert_eq!(
            header(&headers, "x-ratelimit-limit-tokens-cache-adjusted-prompt"),
            None
        );
    }
    // Remaining counts are after this request's prompt; its 5 generated tokens are charged
    // as they are produced, after its headers left.
    assert_eq!(
        seen,
        [
            ["3", "2", "1200", "1196", "600", "600"].map(String::from),
            ["3", "1", "1200", "1192", "600", "595"].map(String::from),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn openai_headers_are_an_option() {
    let limits = ModelLimits::new()
        .requests_per_minute(60)
        .tokens_per_minute(600)
        .fireworks_headers(FireworksHeaders::None)
        .openai_headers(true);
    let server = start(config().model_limits(limits)).await;
    let client = client();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (_, headers, _) = call(&client, &server, &request(MODEL, 4)).await;
        let names = ["requests", "tokens"].map(|set| {
            ["limit", "remaining", "reset"].map(|what| {
                header(&headers, &format!("x-ratelimit-{what}-{set}")).unwrap_or_default()
            })
        });
        seen.push(names);
        assert_eq!(header(&headers, "x-ratelimit-limit-tokens-prompt"), None);
    }
    let text = |values: [&str; 3]| values.map(String::from);
    // 1 request a second, 10 tokens a second; reset is the time until the bucket is full.
    assert_eq!(
        seen,
        [
            [text(["60", "59", "1s"]), text(["600", "596", "400ms"])],
            // 4 prompt + 5 generated tokens of the first, 4 of the second.
            [text(["60", "58", "2s"]), text(["600", "587", "1.3s"])],
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn over_limit_is_said_from_the_last_quarter_then_429_without_a_hint() {
    // 600 generated tokens a minute, a bucket of 6 s (60 tokens); 5 tokens a completion.
    let limits = ModelLimits::new()
        .generated_tokens_per_minute(600)
        .window(Duration::from_secs(6));
    let server = start(config().model_limits(limits)).await;
    let client = client();
    let mut flags = Vec::new();
    for _ in 0..13 {
        let (status, headers, _) = call(&client, &server, &request(MODEL, 1)).await;
        flags.push((
            status.as_u16(),
            header(&headers, "x-ratelimit-over-limit").is_some(),
        ));
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(&headers, "retry-after"), None);
            assert_eq!(header(&headers, "retry-after-ms"), None);
        }
    }
    // Requests 1 to 10 find 60..15 tokens: fine; 11 and 12 find 10 and 5: served, over the
    // limit; 13 finds none: 429.
    let mut expected = vec![(200, false); 10];
    expected.extend([(200, true), (200, true), (429, true)]);
    assert_eq!(flags, expected);
    let stats = server.stats().model(MODEL);
    assert_eq!(
        (stats.served, stats.over_limit, stats.rate_limited),
        (12, 2, 1)
    );
    assert_eq!(stats.generated_tokens, 60);
}

#[tokio::test(start_paused = true)]
async fn generated_tokens_are_charged_as_they_stream() {
    // 6 generated tokens a minute, a bucket of 10 minutes (60): the refill is slow enough to
    // read the charge of each token; 10 tokens, 1 s apart.
    let limits = ModelLimits::new()
        .generated_tokens_per_minute(6)
        .window(Duration::from_secs(600))
        .fireworks_headers(FireworksHeaders::Legacy);
    let config = config()
        .model_limits(limits)
        .tokens_per_completion(10)
        .token_interval(Duration::from_secs(1));
    let server = start(config).await;
    let client = client();
    // A probe generates nothing and reads what is left.
    let mut probe = request(MODEL, 1);
    probe["max_tokens"] = json!(0);
    let left = || async {
        let (_, headers, _) = call(&client, &server, &probe).await;
        header(&headers, "x-ratelimit-remaining-tokens-generated").unwrap_or_default()
    };

    let mut stream = request(MODEL, 1);
    stream["stream"] = json!(true);
    let response = send(&client, &server, &stream).await;
    // Tokens left at 0 s, 1 s and 2 s; 0.25 tokens refilled by 2.5 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(left().await, "57");
    assert_eq!(server.stats().model(MODEL).generated_tokens, 3);
    let (chunks, done) = chunks(
        &response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    );
    assert!(done && chunks.len() == 11);
    assert_eq!(server.stats().model(MODEL).generated_tokens, 10);

    // A stream cut after 4 events is charged 4 tokens.
    server.push_script([Fault::ResetMidBody(4)]);
    let cut = send(&client, &server, &stream).await;
    assert!(cut.into_body().collect().await.is_err());
    assert_eq!(server.stats().model(MODEL).generated_tokens, 14);
}

#[tokio::test]
async fn a_request_that_can_never_fit_gets_429_without_a_hint() {
    let limits = ModelLimits::new()
        .prompt_tokens_per_minute(60)
        .hint(HintStyle::SecondsAndMs);
    let server = start(config().model_limits(limits)).await;
    let client = client();
    let (status, headers, bytes) = call(&client, &server, &request(MODEL, 61)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_of(&bytes)["error"]["code"], "request_too_large");
    assert_eq!(header(&headers, "retry-after-ms"), None);
    assert_eq!(header(&headers, "retry-after"), None);
    assert_eq!(status_of(&client, &server, MODEL, 60).await, 200);
}

#[tokio::test(start_paused = true)]
async fn limits_of_one_model_override_every_models_and_change_at_run_time() {
    let one = ModelLimits::new().requests_per_minute(1);
    let two = ModelLimits::new().requests_per_minute(2);
    let server = start(config().model_limits(one).limits_for(FAST, two)).await;
    let client = client();
    let mut statuses = Vec::new();
    for model in [MODEL, MODEL, FAST, FAST, FAST] {
        statuses.push(status_of(&client, &server, model, 1).await);
    }
    assert_eq!(statuses, [200, 429, 200, 200, 429]);

    // Without limits for every model, the first is free; the fast one keeps its own.
    server.set_model_limits(None);
    assert_eq!(status_of(&client, &server, MODEL, 1).await, 200);
    assert_eq!(status_of(&client, &server, FAST, 1).await, 429);
    // Back to every model's limits (none): free too. New limits start full.
    server.set_limits_for(FAST, None);
    assert_eq!(status_of(&client, &server, FAST, 1).await, 200);
    server.set_limits_for(MODEL, one);
    assert_eq!(status_of(&client, &server, MODEL, 1).await, 200);
    assert_eq!(status_of(&client, &server, MODEL, 1).await, 429);
}
