//! The gateway itself: one shared client in the `Router`'s state, and the routes. `main.rs`
//! picks the upstream and serves it; `tests/axum_gateway.rs` drives this same router.
//!
//! - `POST /v1/chat/completions` (streaming too) and `GET /v1/models` go to the upstream
//!   through the preset, and its answers come back through `relay`: an error status says
//!   whether the caller should try again (`x-should-retry`, `Retry-After`), since the gateway
//!   has retried already, and a stream that stalls ends with an SSE error event.
//! - Failures of the stack become 504 / 429 / 502 in the JSON error shape (`Error`'s
//!   `IntoResponse`), and so do the gateway's own refusals: a body over
//!   [`MAX_REQUEST_BYTES`] (413), an unknown route (404), a wrong method (405).
//! - Every answer is logged (target `axum_gateway`): route, status, attempts and time waited
//!   between them, and why retrying stopped; the layers log each retry (target
//!   `tower_reliability`, level `debug`).

use std::time::Instant;

use axum::{
    extract::{rejection::BytesRejection, DefaultBodyLimit, State},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode, Uri};
use http_body_util::Full;
use tower::ServiceExt;
use tower_reliability::{
    axum::{invalid_request, relay},
    client::{self, FireworksClient},
    RetryReport,
};

/// The largest request body the gateway takes (axum's default, made explicit so the 413's
/// message can say it).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// What every request handler shares: one client (one rate-limit gate, one retry budget).
#[derive(Clone)]
pub struct Gateway {
    upstream: FireworksClient<Full<Bytes>>,
    base_url: String,
    authorization: Option<HeaderValue>,
}

/// Why a [`Gateway`] could not be built.
#[derive(Debug)]
pub enum ConfigError {
    /// The upstream base URL is not an absolute `http(s)://` URL.
    BaseUrl(String),
    /// The API key cannot be sent in a header.
    ApiKey,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::BaseUrl(url) => write!(f, "upstream base URL {url:?} is not http(s)://"),
            ConfigError::ApiKey => f.write_str("the API key is not a valid header value"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Gateway {
    /// A gateway to the OpenAI-compatible API at `base_url` (e.g.
    /// `https://api.fireworks.ai/inference/v1`), authenticating with `api_key` if given.
    pub fn new(
        upstream: FireworksClient<Full<Bytes>>,
        base_url: &str,
        api_key: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let valid = base_url
            .parse::<Uri>()
            .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")));
        if !valid {
            return Err(ConfigError::BaseUrl(base_url));
        }
        let authorization = api_key
            .map(client::bearer)
            .transpose()
            .map_err(|_| ConfigError::ApiKey)?;
        Ok(Gateway {
            upstream,
            base_url,
            authorization,
        })
    }

    /// Sends one request upstream through the preset; the answer, relayed or made from the
    /// failure.
    async fn forward(&self, method: Method, path: &'static str, body: Bytes) -> Response {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}/{path}", self.base_url));
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(_) => return invalid_request(StatusCode::BAD_REQUEST, "Invalid request."),
        };
        let started = Instant::now();
        match self.upstream.clone().oneshot(request).await {
            Ok(response) => {
                let report = response.extensions().get::<RetryReport>();
                tracing::info!(
                    route = path,
                    status = response.status().as_u16(),
                    attempts = report.map_or(1, |r| r.attempts),
                    waited_ms = report.map_or(0, |r| r.waited.as_millis() as u64),
                    stopped = ?report.and_then(|r| r.stopped),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "upstream answered"
                );
                relay(response)
            }
            Err(error) => {
                tracing::warn!(
                    route = path,
                    status = error.gateway_status().as_u16(),
                    error = %error,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "upstream call failed"
                );
                error.into_response()
            }
        }
    }
}

async fn chat_completions(
    State(gateway): State<Gateway>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => {
            gateway
                .forward(Method::POST, "chat/completions", body)
                .await
        }
        Err(rejection) => refuse(rejection),
    }
}

async fn models(State(gateway): State<Gateway>) -> Response {
    gateway.forward(Method::GET, "models", Bytes::new()).await
}

/// A body the gateway could not take (too large, or it broke off), in the JSON error shape.
fn refuse(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let message = format!("Request body is larger than {MAX_REQUEST_BYTES} bytes.");
        return invalid_request(status, &message);
    }
    invalid_request(status, "The request body could not be read.")
}

async fn not_found(uri: Uri) -> Response {
    let message = format!("No such route: {}.", uri.path());
    invalid_request(StatusCode::NOT_FOUND, &message)
}

async fn method_not_allowed() -> Response {
    invalid_request(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// The gateway's routes.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(gateway)
}
