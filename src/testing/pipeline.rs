//! The steps a workload request (chat completions, `/echo-hash`, the batch-job endpoints) goes through, in order:
//!
//! 1. its body is read (`413` past the size limit, `400` if it cannot be read);
//! 2. its fault is drawn (the script's head, else the random mix); [`Fault::Status`],
//!    [`Fault::StatusWithHeaders`] and [`Fault::ResetBeforeResponse`] answer right there;
//! 3. authentication, where the endpoint needs it (`401`);
//! 4. the rate limit (`429`);
//! 5. the endpoint itself;
//! 6. the answer is sent, shaped by the body fault, if any.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderMap, AUTHORIZATION};
use http::StatusCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::answer::{render, Answer};
use super::conn::ConnControl;
use super::errors::{error_answer, status_fault_answer};
use super::faults::Fault;
use super::state::Shared;

/// An answer refusing a request (boxed: it is large and the happy path should not pay for it).
pub(crate) type Refusal = Box<Answer>;

/// Whether an endpoint asks for the API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    Required,
    Open,
}

/// Runs a workload request through every step; `endpoint` gets the body once admitted.
pub(crate) async fn run(
    shared: &Shared,
    control: Arc<ConnControl>,
    headers: &HeaderMap,
    body: Body,
    auth: Auth,
    endpoint: impl FnOnce(Bytes) -> Answer,
) -> Response {
    let interval = shared.config.token_interval;
    let body = read_body(body, shared.config.max_body_bytes).await;
    let fault = shared.next_fault();
    match &fault {
        Fault::Status(code) => return status_fault_answer(*code).into_response(interval),
        Fault::StatusWithHeaders(code, extra) => {
            return status_fault_answer(*code)
                .text_headers(extra)
                .into_response(interval)
        }
        Fault::ResetBeforeResponse => return reset(shared, &control).await,
        _ => {}
    }
    let answer = match admit(shared, headers, body, auth) {
        Ok((body, limits)) => endpoint(body).headers(&limits),
        Err(refusal) => *refusal,
    };
    render(answer, fault, shared, control).await
}

/// Authentication, then the rate limit: the body and the rate-limit headers, or the refusal.
fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, Refusal>,
    auth: Auth,
) -> Result<(Bytes, HeaderMap), Refusal> {
    let body = body?;
    if auth == Auth::Required {
        check_auth(shared, headers)?;
    }
    match shared.acquire() {
        None => Ok((body, HeaderMap::new())),
        Some(Ok(limits)) => Ok((body, limits)),
        Some(Err(limits)) => Err(Box::new(
            error_answer(
                StatusCode::TOO_MANY_REQUESTS,
                "Request rate limit exceeded, please try again later.",
                Some("rate_limit_exceeded"),
            )
            .headers(&limits),
        )),
    }
}

/// Checks `Authorization: Bearer <key>` against the configured key.
pub(crate) fn check_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = shared.config.api_key.as_deref() else {
        return Ok(());
    };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Box::new(error_answer(
            StatusCode::UNAUTHORIZED,
            "Missing API key: send `Authorization: Bearer <API key>`.",
            Some("missing_api_key"),
        )));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    if key == Some(expected) {
        Ok(())
    } else {
        Err(Box::new(error_answer(
            StatusCode::UNAUTHORIZED,
            "The API key you provided is invalid.",
            Some("invalid_api_key"),
        )))
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let refusal = match Limited::new(body, limit).collect().await {
        Ok(collected) => return Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => error_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("Request body is larger than {limit} bytes."),
            None,
        ),
        Err(_) => error_answer(
            StatusCode::BAD_REQUEST,
            "The request body could not be read.",
            None,
        ),
    };
    Err(Box::new(refusal))
}

/// Resets the connection without answering; the response future never completes before the
/// connection is gone (or the server shuts down).
async fn reset(shared: &Shared, control: &ConnControl) -> Response {
    shared.stats.connection_reset();
    control.close(true);
    shared.stall_until().await;
    status_fault_answer(503).into_response(shared.config.token_interval)
}
