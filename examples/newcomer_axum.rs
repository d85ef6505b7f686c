//! Newcomer program (c), written from the README's axum and "Mixing with tower" sections: an
//! axum gateway whose upstream is the preset under tower's `buffer`, `concurrency_limit` and
//! `timeout`, with tower-http's `TraceLayer` on the router. Runs one request through it to the
//! local server (one 503 upstream, then a success) and exits.
//!
//! ```text
//! cargo run --example newcomer_axum --features axum,testing
//! ```

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use http::{StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{buffer::Buffer, BoxError, ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;
use tower_reliability::{
    fireworks,
    testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    Error, Workload,
};

/// The upstream client: the preset over hyper-util, behind tower's layers. `buffer` makes it
/// `Clone` for the router's state; its error is a `BoxError`.
type Upstream =
    Buffer<http::Request<Body>, <UpstreamService as tower::Service<http::Request<Body>>>::Future>;
type UpstreamService = tower::limit::ConcurrencyLimit<
    tower::timeout::Timeout<
        fireworks::FireworksService<
            Client<
                hyper_util::client::legacy::connect::HttpConnector,
                fireworks::RequestBody<Body>,
            >,
        >,
    >,
>;

#[derive(Clone)]
struct Gateway {
    upstream: Upstream,
    base: Uri,
}

async fn chat(State(gateway): State<Gateway>, request: Request) -> Response {
    // Rewrite the URI to the upstream's: the router saw `/v1/chat/completions` on us.
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let upstream_path = path.replacen("/v1/", "/inference/v1/", 1);
    parts.uri = match format!(
        "{}{}",
        gateway.base.to_string().trim_end_matches('/'),
        upstream_path
    )
    .parse()
    {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    parts.headers.remove(http::header::HOST);
    match gateway
        .upstream
        .oneshot(http::Request::from_parts(parts, body))
        .await
    {
        Ok(response) => tower_reliability::axum::relay(response),
        Err(error) => answer(error),
    }
}

/// tower's layers box the error: get ours back, or answer for theirs.
fn answer(error: BoxError) -> Response {
    match error.downcast::<Error>() {
        Ok(ours) => ours.into_response(),
        Err(other) if other.is::<tower::timeout::error::Elapsed>() => {
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = FireworksServer::start(ServerConfig::default()).await?;
    server.push_script([Fault::Status(503)]);

    let client = Client::builder(TokioExecutor::new()).build_http::<fireworks::RequestBody<Body>>();
    let upstream = ServiceBuilder::new()
        .buffer(64)
        .concurrency_limit(16)
        .timeout(Duration::from_secs(120))
        .layer(fireworks::layer(Workload::Interactive))
        .service(client);
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .layer(TraceLayer::new_for_http())
        .with_state(Gateway {
            upstream,
            base: server.base_url().parse()?,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // One call through the gateway, as an SDK would make it.
    let caller = Client::builder(TokioExecutor::new()).build_http::<String>();
    let body =
        format!(r#"{{"model":"{DEFAULT_MODEL}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let request = http::Request::post(format!("http://{address}/v1/chat/completions"))
        .header("authorization", format!("Bearer {DEFAULT_API_KEY}"))
        .header("content-type", "application/json")
        .body(body)?;
    let response = caller.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("{status}, {} bytes", body.len());
    assert_eq!(status, StatusCode::OK);
    Ok(())
}
