//! Newcomer program (a), written from the README's quickstart and the `fireworks` docs: a
//! hyper-util client with the preset, against the local server (one 503, then a success).
//!
//! ```text
//! cargo run --example newcomer_hyper_preset --features testing
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    RetryReport, Workload,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = FireworksServer::start(ServerConfig::default()).await?;
    server.push_script([Fault::Status(503)]);

    // The client receives the preset's replayable body: `fireworks::RequestBody<B>`.
    let client =
        Client::builder(TokioExecutor::new()).build_http::<fireworks::RequestBody<Full<Bytes>>>();
    let mut service = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .service(client);

    let body =
        format!(r#"{{"model":"{DEFAULT_MODEL}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let mut request = http::Request::post(server.chat_url())
        .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    request.extensions_mut().insert(Workload::Agentic);

    let response = service.ready().await?.call(request).await?;
    let status = response.status();
    let attempts = response
        .extensions()
        .get::<RetryReport>()
        .map(|r| r.attempts);
    let body = response.into_body().collect().await?.to_bytes();
    println!("{status} after {attempts:?} attempts, {} bytes", body.len());
    assert_eq!((status.as_u16(), attempts), (200, Some(2)));
    Ok(())
}
