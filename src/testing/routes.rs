//! The router, and the layer in front of it that counts every request and status and answers
//! every request during an outage.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::{Request, StatusCode};
use tower_service::Service;

use super::conn::ConnControl;
use super::errors::{error_answer, status_fault_answer};
use super::state::Shared;
use super::{chat, echo, jobs, models};

/// The chat completions path.
pub(crate) const CHAT_PATH: &str = "/inference/v1/chat/completions";
/// The model list path.
pub(crate) const MODELS_PATH: &str = "/inference/v1/models";
/// The body-hash echo path.
pub(crate) const ECHO_PATH: &str = "/echo-hash";

/// The endpoints, with Fireworks-shaped `404` and `405` answers for everything else.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(CHAT_PATH, post(chat::handle))
        .route(MODELS_PATH, get(models::handle))
        .route(ECHO_PATH, post(echo::handle))
        .route(jobs::COLLECTION_PATH, post(jobs::create))
        .route(jobs::JOB_PATH, get(jobs::status))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn not_found() -> Response {
    error_answer(StatusCode::NOT_FOUND, "Not found.", None).into_response(Duration::ZERO)
}

async fn method_not_allowed() -> Response {
    error_answer(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.", None)
        .into_response(Duration::ZERO)
}

/// Serves one request: counts it, answers the outage status if one is set, else routes it
/// (with the connection's control attached), and counts the status decided.
pub(crate) async fn dispatch<B>(
    shared: Arc<Shared>,
    mut router: Router,
    control: Arc<ConnControl>,
    mut request: Request<B>,
) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    shared.stats.request(request.uri().path());
    let response = match shared.outage() {
        Some(code) => status_fault_answer(code).into_response(shared.config.token_interval),
        None => {
            request.extensions_mut().insert(control);
            match router.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    shared.stats.status(response.status().as_u16());
    response
}
