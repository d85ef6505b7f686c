//! Newcomer program (d), written from the README's guide sections and the `retry` / `backoff`
//! docs: a stack of the layers alone, `RetryOnStatus` with its own status set and
//! `JitteredBackoff` inside it (seeded), over a hyper-util client, against the local server
//! (two 503s, then a success).
//!
//! ```text
//! cargo run --example newcomer_custom_stack --features testing
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    retry::StatusSet,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    JitteredBackoff, ReplayBody, RetryOnStatus, RetryReport,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = FireworksServer::start(ServerConfig::default()).await?;
    server.push_script([Fault::Status(503), Fault::Status(503)]);

    // Every service below `RetryOnStatus` receives `Request<ReplayBody<B>>`.
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let mut service = ServiceBuilder::new()
        .layer(
            RetryOnStatus::new()
                .statuses(StatusSet::GUIDE.with(409))
                .max_attempts(4),
        )
        // Inside the retry layer: it waits before each retry (above it, it would see none).
        .layer(
            JitteredBackoff::new()
                .base(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200))
                .seed(7),
        )
        .service(client);

    let body =
        format!(r#"{{"model":"{DEFAULT_MODEL}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let request = http::Request::post(server.chat_url())
        .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;

    let response = service.ready().await?.call(request).await?;
    let status = response.status();
    let report = response.extensions().get::<RetryReport>().copied();
    let body = response.into_body().collect().await?.to_bytes();
    println!("{status}, {report:?}, {} bytes", body.len());
    assert_eq!(
        (status.as_u16(), report.map(|r| r.attempts)),
        (200, Some(3))
    );
    Ok(())
}
