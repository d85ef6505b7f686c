//! Newcomer program (b), written from the README's reqwest section and the `middleware` docs:
//! reqwest-middleware with `ReliabilityMiddleware`, against the local server (a 429 with a
//! short hint, then a success).
//!
//! ```text
//! cargo run --example newcomer_reqwest --features reqwest-middleware,testing
//! ```

use tower_reliability::{
    middleware::{reliability_error, ReliabilityMiddleware},
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    RetryReport, Workload,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = FireworksServer::start(ServerConfig::default()).await?;
    server.push_script([Fault::StatusWithHeaders(
        429,
        vec![("retry-after-ms".into(), "100".into())],
    )]);

    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReliabilityMiddleware::new(Workload::Interactive))
        .build();
    let body =
        format!(r#"{{"model":"{DEFAULT_MODEL}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let sent = client
        .post(server.chat_url())
        .bearer_auth(DEFAULT_API_KEY)
        .header("content-type", "application/json")
        .with_extension(Workload::Agentic)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            // The crate's own error, when the failure is ours (deadline, local rate limit).
            eprintln!("failed: {error} ({:?})", reliability_error(&error));
            return Err(error.into());
        }
    };
    let status = response.status();
    let attempts = response
        .extensions()
        .get::<RetryReport>()
        .map(|r| r.attempts);
    let text = response.text().await?;
    println!("{status} after {attempts:?} attempts, {} bytes", text.len());
    assert_eq!((status.as_u16(), attempts), (200, Some(2)));
    Ok(())
}
