//! Fireworks-shaped error answers:
//! `{"error":{"object":"error","type":"<type>","message":"<msg>","code":<code or null>}}`.

use http::StatusCode;
use serde_json::json;

use super::answer::Answer;

/// The `type` Fireworks uses for an error of this status.
pub(crate) fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        500..=599 => "internal_server_error",
        _ => "invalid_request_error",
    }
}

/// The message of an injected status fault.
fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        503 => "Service Overloaded",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// The status an injected fault code stands for: codes outside `200..=599` become `500`.
fn fault_status(code: u16) -> StatusCode {
    match StatusCode::from_u16(code) {
        Ok(status) if (200..=599).contains(&code) => status,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A Fireworks-shaped error answer.
pub(crate) fn error_answer(status: StatusCode, message: &str, code: Option<&str>) -> Answer {
    let body = json!({
        "error": {
            "object": "error",
            "type": error_type(status),
            "message": message,
            "code": code,
        }
    });
    Answer::json(status, &body)
}

/// The answer of [`Fault::Status`](super::Fault::Status) and of an outage.
pub(crate) fn status_fault_answer(code: u16) -> Answer {
    let status = fault_status(code);
    error_answer(status, default_message(status), None)
}
