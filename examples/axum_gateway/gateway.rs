//! The gateway itself: one shared client in the `Router`'s state, and the routes. `main.rs`
//! picks the upstream and serves it; `tests/axum_gateway.rs` drives this same router.

use axum::{
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use tower::ServiceExt;
use tower_reliability::client::{self, FireworksClient};

/// What every request handler shares: one client (one rate-limit gate, one retry budget).
#[derive(Clone)]
pub struct Gateway {
    upstream: FireworksClient<Full<Bytes>>,
    base_url: String,
    authorization: HeaderValue,
}

impl Gateway {
    /// A gateway to the OpenAI-compatible API at `base_url` (e.g.
    /// `https://api.fireworks.ai/inference/v1`), authenticating with `api_key`.
    pub fn new(
        upstream: FireworksClient<Full<Bytes>>,
        base_url: &str,
        api_key: &str,
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        Ok(Gateway {
            upstream,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization: client::bearer(api_key)?,
        })
    }
}

async fn chat_completions(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let request = http::Request::post(format!("{}/chat/completions", gateway.base_url))
        .header(http::header::AUTHORIZATION, gateway.authorization.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body));
    let request = match request {
        Ok(request) => request,
        Err(_) => return http::StatusCode::BAD_REQUEST.into_response(),
    };
    match gateway.upstream.oneshot(request).await {
        // Streamed straight through: server-sent events flow as the upstream sends them, and a
        // stall surfaces as the idle-read timeout, which ends the stream.
        Ok(response) => response.map(Body::new),
        Err(error) => error.into_response(),
    }
}

/// The gateway's routes.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(gateway)
}
