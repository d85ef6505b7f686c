//! The request every benchmark sends: a chat completion as an LLM client posts it, and reading a
//! response body to its end (so body wrappers are part of what is measured).

use std::pin::pin;

use bytes::{Buf, Bytes};
use http::{
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
    HeaderValue, Method, Request, Uri,
};
use http_body::Body;
use http_body_util::{BodyExt, Full};

/// A 200-byte chat completion request body.
pub const REQUEST_JSON: &[u8] = br#"{"model":"accounts/fireworks/models/llama-v3p1-8b-instruct","messages":[{"role":"user","content":"Name three prime numbers, please."}],"max_tokens":32,"temperature":0.2,"stream":false,"n":1,"top_p":1}"#;

// Constants, not `from_static` calls: evaluated at compile time in every build, so the
// instruction counts of the stacks do not move with the inliner's choices.
const BEARER: HeaderValue = HeaderValue::from_static("Bearer bench-key");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `POST uri` with [`REQUEST_JSON`] and three headers (authorization, content type, accept).
#[allow(dead_code)] // The storm sends bodies of its own.
pub fn chat_request(uri: &Uri) -> Request<Full<Bytes>> {
    chat_request_with(uri, Bytes::from_static(REQUEST_JSON))
}

/// `POST uri` with this JSON `body` and the headers of [`chat_request`].
#[allow(dead_code)] // Only the storm sends bodies of its own.
pub fn chat_request_with(uri: &Uri, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(AUTHORIZATION, BEARER);
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(ACCEPT, JSON);
    request
}

/// Reads `body` to its end and returns how many data bytes it had.
pub async fn drain_body<B: Body>(body: B) -> Result<usize, B::Error> {
    let mut body = pin!(body);
    let mut read = 0;
    while let Some(frame) = body.as_mut().frame().await {
        if let Ok(data) = frame?.into_data() {
            read += data.remaining();
        }
    }
    Ok(read)
}
