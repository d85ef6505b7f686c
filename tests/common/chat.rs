//! Chat completion requests for the local `FireworksServer`, and the server itself.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower_reliability::testing::{FireworksServer, ServerConfig, DEFAULT_MODEL};

/// `POST url` with `Authorization: Bearer key`, a JSON content type and this body.
pub fn chat_request(url: &str, key: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("a valid request")
}

/// A valid chat completion body for [`DEFAULT_MODEL`]: one user message saying `content`.
pub fn chat_json(content: &str, stream: bool) -> String {
    serde_json::json!({
        "model": DEFAULT_MODEL,
        "messages": [{ "role": "user", "content": content }],
        "stream": stream,
    })
    .to_string()
}

/// The smallest chat completion for [`DEFAULT_MODEL`]: "Hi", at most one token back.
pub fn one_token_chat() -> String {
    format!(
        r#"{{"model":"{DEFAULT_MODEL}","messages":[{{"role":"user","content":"Hi"}}],"max_tokens":1}}"#
    )
}

/// A server configuration with short completions: 5 tokens, 1 ms apart.
pub fn fast_server() -> ServerConfig {
    ServerConfig::default()
        .tokens_per_completion(5)
        .token_interval(Duration::from_millis(1))
}

/// The local server with this configuration, started on 127.0.0.1.
pub async fn start(config: ServerConfig) -> FireworksServer {
    FireworksServer::start(config).await.expect("server starts")
}
