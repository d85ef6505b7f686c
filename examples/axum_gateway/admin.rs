//! Knobs on the local upstream, so that what the gateway does under a rate limit or an outage
//! can be watched from the outside (with curl, or an OpenAI SDK pointed at the gateway). Only
//! mounted when the upstream is the in-process server.
//!
//! | route | effect |
//! |---|---|
//! | `POST /admin/outage?status=503` | every upstream request answers that status (503 by default) |
//! | `DELETE /admin/outage` | the outage ends |
//! | `POST /admin/throttle?count=3&retry_after=2` | the next `count` upstream requests answer 429 with `Retry-After: retry_after` |
//! | `POST /admin/stall?after=3` | the next streamed answer goes silent after `after` events (the gateway cuts it at its idle-read timeout) |
//! | `POST /admin/reset` | no outage, no queued or random faults, counters at zero |
//! | `GET /admin/stats` | what reached the upstream: `{"requests": N, "statuses": {"503": N, ...}}` |

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use http::{StatusCode, Uri};
use tower_reliability::testing::{Fault, FaultMix, FireworksServer};

/// The admin routes for `server`.
pub fn router(server: FireworksServer) -> Router {
    Router::new()
        .route("/admin/outage", post(outage).delete(end_outage))
        .route("/admin/throttle", post(throttle))
        .route("/admin/stall", post(stall))
        .route("/admin/reset", post(reset))
        .route("/admin/stats", get(stats))
        .with_state(server)
}

/// The query parameter `name` of `uri` as a whole number, `default` when absent.
fn number(uri: &Uri, name: &str, default: u64) -> Result<u64, BadParam> {
    let value = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value));
    match value {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| BadParam(name.to_string())),
    }
}

/// A query parameter that is not a whole number.
struct BadParam(String);

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        let message = format!("`{}` must be a whole number", self.0);
        (StatusCode::BAD_REQUEST, message).into_response()
    }
}

async fn outage(State(server): State<FireworksServer>, uri: Uri) -> Response {
    let status = match number(&uri, "status", 503) {
        Ok(status) if (400..=599).contains(&status) => status as u16,
        Ok(_) => return (StatusCode::BAD_REQUEST, "`status` must be 400..=599").into_response(),
        Err(bad) => return bad.into_response(),
    };
    server.set_outage(status);
    tracing::info!(status, "admin: upstream outage begins");
    StatusCode::NO_CONTENT.into_response()
}

async fn end_outage(State(server): State<FireworksServer>) -> StatusCode {
    server.set_outage(None);
    tracing::info!("admin: upstream outage ends");
    StatusCode::NO_CONTENT
}

async fn throttle(State(server): State<FireworksServer>, uri: Uri) -> Response {
    let (count, retry_after) = match (number(&uri, "count", 1), number(&uri, "retry_after", 1)) {
        (Ok(count), Ok(retry_after)) => (count.min(1000), retry_after),
        (Err(bad), _) | (_, Err(bad)) => return bad.into_response(),
    };
    let fault =
        Fault::StatusWithHeaders(429, vec![("retry-after".into(), retry_after.to_string())]);
    server.push_script((0..count).map(|_| fault.clone()));
    tracing::info!(count, retry_after, "admin: upstream 429s queued");
    StatusCode::NO_CONTENT.into_response()
}

async fn stall(State(server): State<FireworksServer>, uri: Uri) -> Response {
    let after = match number(&uri, "after", 3) {
        Ok(after) => usize::try_from(after).unwrap_or(usize::MAX),
        Err(bad) => return bad.into_response(),
    };
    server.push_script([Fault::StallAfterEvents(after)]);
    tracing::info!(after, "admin: the next answer stalls");
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(server): State<FireworksServer>) -> StatusCode {
    server.set_outage(None);
    server.clear_script();
    server.set_fault_mix(FaultMix::default());
    server.reset_stats();
    tracing::info!("admin: upstream reset");
    StatusCode::NO_CONTENT
}

async fn stats(State(server): State<FireworksServer>) -> Json<serde_json::Value> {
    let stats = server.stats();
    let statuses: serde_json::Map<String, serde_json::Value> = stats
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), (*count).into()))
        .collect();
    Json(serde_json::json!({ "requests": stats.requests, "statuses": statuses }))
}
