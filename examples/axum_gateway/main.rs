//! A small OpenAI-compatible gateway: axum's `Router` with state forwards
//! `POST /v1/chat/completions` (streaming too) and `GET /v1/models` to an upstream through the
//! preset, as the last hop that retries (see `gateway.rs`).
//!
//! ```text
//! cargo run --example axum_gateway --features axum,rustls,testing
//! curl -N localhost:3000/v1/chat/completions -d '{"model":"accounts/fireworks/models/llama-v3p1-8b-instruct","messages":[{"role":"user","content":"hi"}],"stream":true}'
//! curl -X POST 'localhost:3000/admin/outage?status=503'    # then ask again, and watch the log
//! ```
//!
//! Settings (environment):
//!
//! - `GATEWAY_UPSTREAM`: where requests go. Unset or `local`: an in-process
//!   Fireworks-compatible server (one 502, then 503s at random 20 % of the time, seeded), with
//!   the fault knobs of `admin.rs` under `/admin/`. `fireworks`: the real Fireworks API (paid:
//!   only when asked for like this). Anything else: the base URL of an OpenAI-compatible API,
//!   such as `http://127.0.0.1:8000/v1`.
//! - `GATEWAY_API_KEY`, else `FIREWORKS_API_KEY`: the key sent upstream (required for
//!   `fireworks`; optional for another URL; ignored for `local`).
//! - `PORT`: where the gateway listens on 127.0.0.1 (3000; `0` for any free port).
//! - `RUST_LOG`: the log filter (`axum_gateway=info,tower_reliability=debug`: every answer,
//!   and every retry decision, wait and gate closure).

mod admin;
mod gateway;

use gateway::Gateway;
use tower_reliability::{
    client, fireworks,
    testing::{Fault, FaultMix, FireworksServer, ServerConfig, DEFAULT_API_KEY},
    Workload,
};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the gateway sends requests.
enum Upstream {
    /// The in-process server, with its handle for the admin routes.
    Local(FireworksServer),
    /// A remote API: its base URL and key.
    Remote { base: String, key: Option<String> },
}

async fn upstream() -> Result<Upstream, BoxError> {
    let setting = std::env::var("GATEWAY_UPSTREAM").unwrap_or_default();
    let key = std::env::var("GATEWAY_API_KEY")
        .or_else(|_| std::env::var("FIREWORKS_API_KEY"))
        .ok();
    match setting.trim() {
        "" | "local" => {
            let config =
                ServerConfig::default().fault_mix(FaultMix::default().status_503(0.2).seed(1));
            let server = FireworksServer::start(config).await?;
            server.push_script([Fault::Status(502)]);
            Ok(Upstream::Local(server))
        }
        "fireworks" => match key {
            Some(key) => Ok(Upstream::Remote {
                base: fireworks::BASE_URL.to_string(),
                key: Some(key),
            }),
            None => {
                Err("GATEWAY_UPSTREAM=fireworks needs GATEWAY_API_KEY or FIREWORKS_API_KEY".into())
            }
        },
        url => Ok(Upstream::Remote {
            base: url.to_string(),
            key,
        }),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("axum_gateway=info,tower_reliability=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let upstream_client = client::fireworks(Workload::Interactive);
    let app = match upstream().await? {
        Upstream::Local(server) => {
            let base = format!("{}/inference/v1", server.base_url());
            tracing::info!(%base, "upstream: the local server (fault knobs under /admin/)");
            let gateway = Gateway::new(upstream_client, &base, Some(DEFAULT_API_KEY))?;
            gateway::router(gateway).merge(admin::router(server))
        }
        Upstream::Remote { base, key } => {
            tracing::info!(%base, with_key = key.is_some(), "upstream: remote");
            let gateway = Gateway::new(upstream_client, &base, key.as_deref())?;
            gateway::router(gateway)
        }
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    // The first line a script waits for: where to send requests.
    tracing::info!("gateway on http://{}/v1", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
