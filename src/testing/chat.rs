//! `POST /inference/v1/chat/completions`: validates an OpenAI-style chat request and answers
//! with a generated completion, as one JSON document or as a stream of server-sent events.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::answer::Answer;
use super::completion::Completion;
use super::conn::ConnControl;
use super::errors::error_answer;
use super::pipeline::{self, Auth};
use super::sse::completion_events;
use super::state::Shared;

/// The fields of a chat request the server looks at; others are ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Map<String, Value>>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
}

/// The route's handler.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(control): Extension<Arc<ConnControl>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::run(&shared, control, &headers, body, Auth::Required, |body| {
        answer(&shared, &body)
    })
    .await
}

/// `400` for a body that is not JSON, `422` for missing or ill-typed fields, `404` for an
/// unknown model, else the completion.
fn answer(shared: &Shared, body: &[u8]) -> Answer {
    let request: ChatRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return parse_error(&error),
    };
    if request.messages.is_empty() {
        return error_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`messages` must contain at least one message.",
            None,
        );
    }
    if !shared.config.models.contains(&request.model) {
        let message = format!(
            "Model not found, inaccessible, and/or not deployed: {}",
            request.model
        );
        return error_answer(StatusCode::NOT_FOUND, &message, Some("NOT_FOUND"));
    }
    let configured = shared.config.tokens_per_completion;
    let tokens = match request.max_tokens {
        Some(max) => configured.min(usize::try_from(max).unwrap_or(usize::MAX)),
        None => configured,
    };
    let completion = Completion::new(
        shared.completion_id(),
        request.model,
        prompt_tokens(&request.messages),
        tokens,
        tokens < configured,
    );
    if request.stream == Some(true) {
        Answer::events(completion_events(&completion))
    } else {
        Answer::json(StatusCode::OK, &completion.to_json()).steps(tokens)
    }
}

fn parse_error(error: &serde_json::Error) -> Answer {
    match error.classify() {
        serde_json::error::Category::Data => error_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Invalid request: {error}"),
            None,
        ),
        _ => error_answer(
            StatusCode::BAD_REQUEST,
            &format!("The request body is not valid JSON: {error}"),
            None,
        ),
    }
}

/// A rough prompt size: the words of every text content.
fn prompt_tokens(messages: &[Map<String, Value>]) -> usize {
    messages
        .iter()
        .filter_map(|message| message.get("content").and_then(Value::as_str))
        .map(|content| content.split_whitespace().count())
        .sum()
}
