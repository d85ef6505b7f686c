//! A streaming chat completion through `client::fireworks`: HTTPS via rustls, the workload's
//! connect timeout at the connector, the preset on top. Tokens are printed as they arrive.
//!
//! With `FIREWORKS_API_KEY` set it calls the real API (model from `FIREWORKS_MODEL`);
//! otherwise it starts the crate's local Fireworks-compatible server and calls that.
//!
//! ```text
//! cargo run --example fireworks_chat --features rustls,testing
//! FIREWORKS_API_KEY=fw-... cargo run --example fireworks_chat --features rustls,testing
//! ```

use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_reliability::{
    client, fireworks,
    testing::{FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    Workload,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (base_url, api_key, model, _server) = match std::env::var("FIREWORKS_API_KEY") {
        Ok(key) => {
            let model = std::env::var("FIREWORKS_MODEL")
                .unwrap_or_else(|_| "accounts/fireworks/models/llama-v3p1-8b-instruct".into());
            (fireworks::BASE_URL.to_string(), key, model, None)
        }
        Err(_) => {
            let server =
                FireworksServer::start(ServerConfig::default().tokens_per_completion(24)).await?;
            eprintln!(
                "FIREWORKS_API_KEY not set: using the local server at {}",
                server.base_url()
            );
            let url = format!("{}/inference/v1", server.base_url());
            (
                url,
                DEFAULT_API_KEY.to_string(),
                DEFAULT_MODEL.to_string(),
                Some(server),
            )
        }
    };

    let mut service = client::fireworks::<Full<Bytes>>(Workload::Interactive);
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "In one paragraph: why do clients add jitter to retries?"}],
        "stream": true,
    });
    let request = http::Request::post(format!("{base_url}/chat/completions"))
        .header(http::header::AUTHORIZATION, client::bearer(&api_key)?)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;

    let response = service.ready().await?.call(request).await?;
    eprintln!("status {}", response.status());
    // The body keeps its idle timer inline (no allocation), so it is `!Unpin`: pin it on the
    // stack to read it frame by frame.
    let mut body = std::pin::pin!(response.into_body());
    let mut pending = String::new();
    let mut stdout = std::io::stdout();
    // Server-sent events: `data: {json}` lines separated by blank lines, ending `data: [DONE]`.
    // A stall mid-stream surfaces here as the idle-read timeout error.
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            for line in event.lines() {
                let Some(payload) = line.strip_prefix("data: ") else {
                    continue;
                };
                if payload.trim() == "[DONE]" {
                    println!();
                    return Ok(());
                }
                let chunk: serde_json::Value = serde_json::from_str(payload)?;
                if let Some(token) = chunk["choices"][0]["delta"]["content"].as_str() {
                    print!("{token}");
                    stdout.flush()?;
                }
            }
        }
    }
    println!();
    Ok(())
}
