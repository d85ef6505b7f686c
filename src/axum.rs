//! axum integration (feature `axum`): [`Error`] converts into a response.
//!
//! A gateway in front of an LLM API must answer its own callers when the upstream call fails,
//! and the answer should tell them what to do, in the shape their OpenAI-compatible client
//! already understands. The status is chosen by where the failure happened:
//!
//! | [`ErrorKind`] | status | why |
//! |---|---|---|
//! | `Timeout(_)` | 504 Gateway Timeout | the upstream did not answer in time |
//! | `RateLimited { retry_after }` | 429, with `Retry-After` and `retry-after-ms` when known | the shared gate holds requests: your caller should back off too |
//! | `Connect` | 502 Bad Gateway | the upstream could not be reached |
//! | `Inner` | 502 Bad Gateway | the upstream client failed |
//!
//! The body is Fireworks' error shape:
//! `{"error":{"object":"error","type":"...","message":"...","code":504}}`. The message is this
//! crate's own description of the failure: it never includes the inner error's text (which
//! could carry upstream URLs or other details your callers should not see).
//!
//! With `HandleErrorLayer`, the conversion is one line:
//!
//! ```
//! use axum::{body::Body, error_handling::HandleErrorLayer, response::IntoResponse, Router};
//! use tower::ServiceBuilder;
//! use tower_reliability::{fireworks, retry::ReplayBody, Error, Workload};
//!
//! async fn handle(err: Error) -> impl IntoResponse {
//!     err
//! }
//! # let upstream = tower::service_fn(|_: http::Request<ReplayBody<Body>>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//! # });
//! // `upstream`: your HTTP client, e.g. `tower_reliability::client::fireworks`'s inner client.
//! let proxy = ServiceBuilder::new()
//!     .layer(HandleErrorLayer::new(handle))
//!     .layer(fireworks::layer(Workload::Interactive))
//!     .service(upstream);
//! let app: Router = Router::new().route_service("/v1/chat/completions", proxy);
//! ```

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::error::{Error, ErrorKind};

impl Error {
    /// The HTTP status a gateway should answer with for this failure.
    pub fn gateway_status(&self) -> StatusCode {
        match self.kind() {
            ErrorKind::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_type(&self) -> &'static str {
        match self.kind() {
            ErrorKind::Timeout(_) => "timeout_error",
            ErrorKind::RateLimited { .. } => "rate_limit_error",
            ErrorKind::Connect => "upstream_unreachable",
            _ => "upstream_error",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.gateway_status();
        let body = serde_json::json!({
            "error": {
                "object": "error",
                "type": self.error_type(),
                "message": self.to_string(),
                "code": status.as_u16(),
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after() {
            let headers = response.headers_mut();
            // Whole seconds, rounded up, for `Retry-After`; milliseconds for clients that read
            // the finer header (the OpenAI SDKs do).
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            headers.insert("retry-after-ms", HeaderValue::from(wait.as_millis() as u64));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::TimeoutPhase;

    async fn json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn timeouts_are_504_in_fireworks_error_shape() {
        let response = Error::timeout(TimeoutPhase::BodyIdle).into_response();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = json(response).await;
        assert_eq!(body["error"]["object"], "error");
        assert_eq!(body["error"]["type"], "timeout_error");
        assert_eq!(body["error"]["code"], 504);
    }

    #[tokio::test]
    async fn local_rate_limiting_is_429_with_retry_after() {
        let response = Error::rate_limited(Some(Duration::from_millis(2500))).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(response.headers()["retry-after-ms"], "2500");
        assert_eq!(json(response).await["error"]["type"], "rate_limit_error");
        let no_wait = Error::rate_limited(None).into_response();
        assert!(no_wait.headers().get(header::RETRY_AFTER).is_none());
    }

    #[tokio::test]
    async fn connect_failures_are_502_and_hide_the_inner_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect to 10.1.2.3:443 refused",
        );
        let response = Error::from_inner(io).into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body = json(response).await;
        assert_eq!(body["error"]["type"], "upstream_unreachable");
        assert!(!body.to_string().contains("10.1.2.3"));
    }
}
