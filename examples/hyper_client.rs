//! The `fireworks` preset over a hyper-util client.
//!
//! Runs against the crate's local Fireworks-compatible server (no API key, no network), which
//! is told to answer the first request with a 503 and the second with a 429 carrying
//! `retry-after-ms`; the preset retries both and the third attempt succeeds.
//!
//! ```text
//! cargo run --example hyper_client --features testing
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    retry::ReplayBody,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    RetryReport, Workload,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = FireworksServer::start(ServerConfig::default()).await?;
    server.push_script([
        Fault::Status(503),
        Fault::StatusWithHeaders(429, vec![("retry-after-ms".into(), "250".into())]),
    ]);

    // Any hyper-util client works; its request body type is the preset's replayable body.
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let mut service = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .service(client);

    let body = serde_json::json!({
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
    });
    let request = http::Request::post(server.chat_url())
        .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;

    let started = std::time::Instant::now();
    let response = service.ready().await?.call(request).await?;
    let status = response.status();
    let report = response.extensions().get::<RetryReport>().copied();
    let body = response.into_body().collect().await?.to_bytes();
    let reply: serde_json::Value = serde_json::from_slice(&body)?;

    println!("status   {status} after {:?}", started.elapsed());
    if let Some(report) = report {
        println!(
            "attempts {} (waited {:?} between them)",
            report.attempts, report.waited
        );
    }
    println!("reply    {}", reply["choices"][0]["message"]["content"]);
    println!("server   {:?}", server.stats().statuses);
    Ok(())
}
