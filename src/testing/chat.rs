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
use super::completion::{Completion, Prompt};
use super::conn::ConnControl;
use super::errors::error_answer;
use super::meter::GeneratedMeter;
use super::model_buckets::{Charge, Verdict};
use super::pipeline::{self, Auth};
use super::prompt::{cached_tokens, prompt_tokens};
use super::sse::completion_events;
use super::state::{lock, Shared};

/// The fields of a chat request the server looks at; others are ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Map<String, Value>>,
    stream: Option<bool>,
    /// Read leniently: only `include_usage: true` matters.
    stream_options: Option<Value>,
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
/// unknown model, `429` from the model's limits, else the completion.
fn answer(shared: &Arc<Shared>, body: &[u8]) -> Answer {
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
    let prompt = prompt_tokens(&request.messages);
    let share = shared.config.cached_prompt_share;
    let cached = cached_tokens(prompt, share);
    let charge = Charge {
        prompt,
        uncached_prompt: prompt - cached,
    };
    let lane = shared.limits.lane(&request.model);
    let verdict = lane.as_ref().map(|lane| lock(lane).admit(charge));
    let (limit_headers, over_limit) = match verdict {
        None => (HeaderMap::new(), false),
        Some(Verdict::Admitted {
            headers,
            over_limit,
        }) => (headers, over_limit),
        Some(Verdict::Refused { headers, too_large }) => {
            shared.stats.model(&request.model, |stats| {
                stats.requests += 1;
                stats.rate_limited += 1;
            });
            return refusal(too_large).headers(&headers);
        }
    };
    shared.stats.model(&request.model, |stats| {
        stats.requests += 1;
        stats.served += 1;
        stats.over_limit += u64::from(over_limit);
        stats.prompt_tokens = stats.prompt_tokens.saturating_add(prompt);
        stats.cached_prompt_tokens = stats.cached_prompt_tokens.saturating_add(cached);
    });
    let prompt = Prompt {
        tokens: prompt,
        cached: (share > 0.0).then_some(cached),
    };
    let completion = Completion::new(
        shared.completion_id(),
        request.model.clone(),
        prompt,
        tokens,
        tokens < configured,
    );
    let produced = u64::try_from(tokens).unwrap_or(u64::MAX);
    let meter = GeneratedMeter::new(Arc::clone(shared), request.model, lane, produced);
    let answer = if request.stream == Some(true) {
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        Answer::events(completion_events(&completion, include_usage))
    } else {
        Answer::json(StatusCode::OK, &completion.to_json()).steps(tokens)
    };
    answer.meter(meter).headers(&limit_headers)
}

/// The `429` of a model's limits.
fn refusal(too_large: bool) -> Answer {
    if too_large {
        error_answer(
            StatusCode::TOO_MANY_REQUESTS,
            "Request too large: it needs more tokens than the model's rate limit ever allows.",
            Some("request_too_large"),
        )
    } else {
        error_answer(
            StatusCode::TOO_MANY_REQUESTS,
            "Token rate limit exceeded for this model, please try again later.",
            Some("rate_limit_exceeded"),
        )
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
