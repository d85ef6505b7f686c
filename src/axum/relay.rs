//! [`relay`]: an upstream answer, passed on by a gateway that is the last hop to retry.

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{header, HeaderMap};

use super::{advice::Advice, sse::SseErrorTail};
use crate::{context::RetryReport, error::BoxError};

/// Passes an upstream response on to the gateway's caller, as the last hop that retries.
///
/// For a response that came through [`RetryOnStatus`](crate::RetryOnStatus) (the
/// [`fireworks`](mod@crate::fireworks) preset), two things change; everything else streams
/// through untouched:
///
/// - **An error status says whether to try again**, in the headers the OpenAI SDKs obey
///   first: `x-should-retry: false` when the gateway has already retried it (attempts or retry
///   budget spent, or the server said no) or does not retry that status at all, so the SDK's
///   own retries do not repeat the whole round; `x-should-retry: true` for a 429 or 503 whose
///   hint (`Retry-After`, passed on) was too long for the gateway's deadline but short enough
///   for the caller to wait. An answer the gateway could not retry at all (a request body over
///   the replay cap) keeps the upstream's own headers.
/// - **A server-sent-event stream that fails** (a stall past the idle-read timeout, a broken
///   connection) ends with a last `data: {"error": {...}}` event in the error shape of
///   [`Error`](crate::Error)'s response, instead of a broken chunked body: the SDKs raise it as
///   an `APIError`, with its message, rather than as a network error. Its `Content-Length`, if
///   any, is dropped.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use tower::ServiceExt;
/// # use tower_reliability::{fireworks, ReplayBody, Workload};
/// # async fn run(request: http::Request<axum::body::Body>) -> Response {
/// # let client = tower::service_fn(|_: http::Request<ReplayBody<axum::body::Body>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
/// # });
/// # let upstream = tower_layer::Layer::layer(&fireworks::layer(Workload::Interactive), client);
/// match upstream.oneshot(request).await {
///     Ok(response) => tower_reliability::axum::relay(response),
///     Err(error) => error.into_response(),
/// }
/// # }
/// ```
pub fn relay<B>(response: http::Response<B>) -> Response
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let report = parts.extensions.get::<RetryReport>();
    if let Some(advice) = Advice::for_response(parts.status, &parts.headers, report) {
        advice.apply(&mut parts.headers);
    }
    let body = if is_event_stream(&parts.headers) {
        parts.headers.remove(header::CONTENT_LENGTH);
        Body::new(SseErrorTail::new(body))
    } else {
        Body::new(body)
    };
    Response::from_parts(parts, body)
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderValue, StatusCode};
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::context::StopReason;

    fn upstream(status: u16, stopped: Option<StopReason>) -> http::Response<Full<Bytes>> {
        let mut response = http::Response::new(Full::new(Bytes::from_static(b"{}")));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response.extensions_mut().insert(RetryReport {
            attempts: 5,
            waited: Duration::from_secs(15),
            stopped,
        });
        response
    }

    #[test]
    fn a_503_retried_to_the_cap_says_not_again() {
        let response = relay(upstream(503, Some(StopReason::AttemptsExhausted)));
        assert_eq!(response.headers()["x-should-retry"], "false");
    }

    #[test]
    fn successes_pass_untouched() {
        let response = relay(upstream(200, None));
        assert!(response.headers().get("x-should-retry").is_none());
    }

    #[tokio::test]
    async fn only_event_streams_get_the_error_tail() {
        let mut response = upstream(200, None);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(2));
        let relayed = relay(response);
        assert!(relayed.headers().get(header::CONTENT_LENGTH).is_none());
        let json = relay(upstream(200, None));
        assert_eq!(json.into_body().collect().await.unwrap().to_bytes(), "{}");
    }
}
