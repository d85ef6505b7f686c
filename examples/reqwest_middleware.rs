//! The same layers inside a reqwest-middleware `ClientWithMiddleware`, against the local
//! Fireworks-compatible server: a 429 with `retry-after-ms` and a 503 are retried, and a
//! streaming request body is replayed byte for byte.
//!
//! ```text
//! cargo run --example reqwest_middleware --features reqwest-middleware,testing
//! ```

use std::time::Instant;

use bytes::Bytes;
use reqwest_middleware::ClientBuilder;
use tower_reliability::{
    middleware::ReliabilityMiddleware,
    testing::{body_hash, Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    Workload,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = FireworksServer::start(ServerConfig::default()).await?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ReliabilityMiddleware::new(Workload::Interactive))
        .build();

    server.push_script([
        Fault::StatusWithHeaders(429, vec![("retry-after-ms".into(), "1500".into())]),
        Fault::Status(503),
    ]);
    let started = Instant::now();
    let body = serde_json::json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let response = client
        .post(server.chat_url())
        .bearer_auth(DEFAULT_API_KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    println!(
        "chat: {} after {:.1?} (a 429 and a 503 retried)",
        response.status(),
        started.elapsed()
    );

    server.push_script([Fault::Status(502)]);
    let chunks = ["streamed ", "request ", "body"]
        .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c.as_bytes())));
    let response = client
        .post(server.echo_url())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await?;
    let echo: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    println!(
        "echo: server hash {} == expected {} (replayed after a 502)",
        echo["hash"],
        body_hash(b"streamed request body")
    );
    println!("server saw {:?}", server.stats().statuses);
    Ok(())
}
