//! A small OpenAI-compatible gateway: axum's `Router` with state forwards
//! `POST /v1/chat/completions` (streaming too) to Fireworks through the preset. Failures become
//! proper answers: 504 for timeouts, 429 with `Retry-After` while the shared gate is closed,
//! 502 when the upstream cannot be reached, in Fireworks' JSON error shape.
//!
//! With `FIREWORKS_API_KEY` set the upstream is the real API; otherwise a local
//! Fireworks-compatible server with a few injected faults.
//!
//! ```text
//! cargo run --example axum_gateway --features axum,rustls,testing
//! curl -N localhost:3000/v1/chat/completions -d '{"model":"accounts/fireworks/models/llama-v3p1-8b-instruct","messages":[{"role":"user","content":"hi"}],"stream":true}'
//! ```

mod gateway;

use gateway::Gateway;
use tower_reliability::{
    client, fireworks,
    testing::{Fault, FaultMix, FireworksServer, ServerConfig, DEFAULT_API_KEY},
    Workload,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (base, key, _local) = match std::env::var("FIREWORKS_API_KEY") {
        Ok(key) => (fireworks::BASE_URL.to_string(), key, None),
        Err(_) => {
            let config =
                ServerConfig::default().fault_mix(FaultMix::default().status_503(0.2).seed(1));
            let server = FireworksServer::start(config).await?;
            server.push_script([Fault::Status(502)]);
            eprintln!(
                "FIREWORKS_API_KEY not set: upstream is the local server at {}",
                server.base_url()
            );
            let base = format!("{}/inference/v1", server.base_url());
            (base, DEFAULT_API_KEY.to_string(), Some(server))
        }
    };
    let gateway = Gateway::new(client::fireworks(Workload::Interactive), &base, &key)?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    eprintln!(
        "gateway on http://{}/v1/chat/completions",
        listener.local_addr()?
    );
    axum::serve(listener, gateway::router(gateway)).await?;
    Ok(())
}
