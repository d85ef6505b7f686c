//! `POST /echo-hash`: answers `{"len": N, "hash": "<hex>"}` for the request body, so a test can
//! prove that a replayed request carried the very same bytes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::answer::Answer;
use super::conn::ConnControl;
use super::pipeline::{self, Auth};
use super::state::Shared;

/// The 64-bit FNV-1a hash of `bytes`, as 16 lowercase hex digits: the `hash` that
/// `POST /echo-hash` answers for a body of these bytes.
///
/// ```
/// use tower_reliability::testing::body_hash;
///
/// assert_eq!(body_hash(b""), "cbf29ce484222325");
/// assert_eq!(body_hash(b"a"), "af63dc4c8601ec8c");
/// ```
pub fn body_hash(bytes: &[u8]) -> String {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    });
    format!("{hash:016x}")
}

/// The route's handler; it needs no API key but honours faults and the rate limit.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(control): Extension<Arc<ConnControl>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::run(&shared, control, &headers, body, Auth::Open, |body| {
        let value = json!({ "len": body.len(), "hash": body_hash(&body) });
        Answer::json(StatusCode::OK, &value)
    })
    .await
}
