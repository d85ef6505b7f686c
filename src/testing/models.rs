//! `GET /inference/v1/models`: the configured models in OpenAI's list shape.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::answer::Answer;
use super::completion::unix_now;
use super::pipeline::check_auth;
use super::state::Shared;

/// The route's handler; it needs the API key but draws no faults and takes no rate-limit token.
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let interval = shared.config.token_interval;
    if let Err(refusal) = check_auth(&shared, &headers) {
        return (*refusal).into_response(interval);
    }
    let created = unix_now();
    let data: Vec<Value> = shared
        .config
        .models
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "fireworks" }))
        .collect();
    Answer::json(StatusCode::OK, &json!({ "object": "list", "data": data })).into_response(interval)
}
