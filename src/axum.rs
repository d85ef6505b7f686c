//! axum integration (feature `axum`): [`Error`] converts into a response, and [`relay`] passes
//! an upstream answer on, for a gateway that is the last hop to retry.
//!
//! A gateway in front of an LLM API must answer its own callers when the upstream call fails,
//! and the answer should tell them what to do, in the shape their OpenAI-compatible client
//! already understands. The status is chosen by where the failure happened:
//!
//! | [`ErrorKind`] | status | `x-should-retry` | why |
//! |---|---|---|---|
//! | `Timeout(_)` | 504 Gateway Timeout | `false` | the upstream did not answer in time; the deadline already covered the gateway's retries |
//! | `RateLimited { retry_after }` | 429, with `Retry-After` and `retry-after-ms` when known | `true` when the wait is under 60 s, else `false` | the shared gate holds requests: your caller should back off too, and can retry once it opens if its SDK waits that long |
//! | `Connect` | 502 Bad Gateway | `false` | the upstream could not be reached, though the gateway retried |
//! | `Inner` | 502 Bad Gateway | `false` | the upstream client failed |
//!
//! `x-should-retry` is the header the OpenAI SDKs (Python, Node) obey before anything else:
//! without it they retry every 429 and 5xx twice more, and each of their retries is a whole
//! new round of the gateway's (one call, up to 15 upstream attempts). They wait
//! `retry-after-ms` / `Retry-After` only when it is short (openai-node: below 60 s), hence the
//! bound. [`relay`] gives upstream answers the same advice.
//!
//! The body is Fireworks' error shape:
//! `{"error":{"object":"error","type":"...","message":"...","code":504}}`. The message is this
//! crate's own description of the failure: it never includes the inner error's text (which
//! could carry upstream URLs or other details your callers should not see). [`invalid_request`]
//! answers the gateway's own refusals (too large, no such route) in the same shape.
//!
//! With `HandleErrorLayer`, the conversion is one line:
//!
//! ```
//! use axum::{body::Body, error_handling::HandleErrorLayer, response::IntoResponse, Router};
//! use tower::ServiceBuilder;
//! use tower_reliability::{fireworks, Error, ReplayBody, Workload};
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
//!
//! (That passes upstream answers through as they are; a handler that calls [`relay`] on them
//! also gives them the retry advice and the error event at the end of a failed stream.)

mod advice;
mod relay;
mod sse;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

pub use relay::relay;

use crate::error::{Error, ErrorKind};
use advice::Advice;

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

    /// `{"error": {...}}` in Fireworks' shape, for a response body or a stream's error event.
    pub(crate) fn error_json(&self) -> serde_json::Value {
        error_json(self.error_type(), &self.to_string(), self.gateway_status())
    }
}

fn error_json(kind: &str, message: &str, status: StatusCode) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "object": "error",
            "type": kind,
            "message": message,
            "code": status.as_u16(),
        }
    })
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.gateway_status(), axum::Json(self.error_json())).into_response();
        Advice::for_error(&self).apply(response.headers_mut());
        response
    }
}

/// The gateway's own refusal of a request (too large, no such route, wrong method), in the
/// same JSON error shape with type `invalid_request_error`, and `x-should-retry: false`: the
/// same request will be refused again.
///
/// ```
/// use http::StatusCode;
///
/// let response = tower_reliability::axum::invalid_request(StatusCode::NOT_FOUND, "No such route.");
/// assert_eq!(response.status(), StatusCode::NOT_FOUND);
/// assert_eq!(response.headers()["x-should-retry"], "false");
/// ```
pub fn invalid_request(status: StatusCode, message: &str) -> Response {
    let body = error_json("invalid_request_error", message, status);
    let mut response = (status, axum::Json(body)).into_response();
    Advice {
        retry: false,
        after: None,
    }
    .apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header;
    use http_body_util::BodyExt;

    use super::*;
    use crate::error::TimeoutPhase;

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

    #[test]
    fn failures_the_gateway_already_retried_say_not_again() {
        let timeout = Error::timeout(TimeoutPhase::Deadline).into_response();
        assert_eq!(timeout.headers()["x-should-retry"], "false");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let unreachable = Error::from_inner(refused).into_response();
        assert_eq!(unreachable.headers()["x-should-retry"], "false");
    }

    #[tokio::test]
    async fn local_rate_limiting_is_429_with_retry_after() {
        let response = Error::rate_limited(Some(Duration::from_millis(2500))).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(response.headers()["retry-after-ms"], "2500");
        assert_eq!(response.headers()["x-should-retry"], "true");
        assert_eq!(json(response).await["error"]["type"], "rate_limit_error");
        let no_wait = Error::rate_limited(None).into_response();
        assert!(no_wait.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(no_wait.headers()["x-should-retry"], "false");
        let long = Error::rate_limited(Some(Duration::from_secs(90))).into_response();
        assert_eq!(long.headers()[header::RETRY_AFTER], "90");
        assert_eq!(long.headers()["x-should-retry"], "false");
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
