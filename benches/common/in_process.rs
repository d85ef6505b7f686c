//! The in-process side of the overhead benchmark: an inner service that answers at once, and a
//! type-erased loop that sends requests through any stack built on it.

use std::{
    convert::Infallible,
    fmt::Debug,
    hint::black_box,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{header::CONTENT_TYPE, HeaderName, HeaderValue, Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

use super::chat::{chat_request, drain_body};

/// The body of every answer: a short chat completion.
pub const RESPONSE_JSON: &[u8] = br#"{"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"2, 3 and 5."},"finish_reason":"stop"}]}"#;

/// The URI requests are addressed to (never resolved: nothing leaves the process).
pub const URI: &str = "http://api.bench.invalid/inference/v1/chat/completions";

const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
// Constants, not `from_static` calls: evaluated at compile time in every build, so the
// instruction counts of the stacks do not move with the inliner's choices.
const REMAINING_VALUE: HeaderValue = HeaderValue::from_static("599");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The inner service, for `tower::service_fn`: reads the request body as a client sending it
/// would, then answers `200` with [`RESPONSE_JSON`] and the headers an LLM API sends.
pub async fn answer<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body,
    B::Error: Debug,
{
    let sent = drain_body(request.into_body())
        .await
        .expect("in-memory request bodies do not fail");
    black_box(sent);
    let mut response = Response::new(Full::new(Bytes::from_static(RESPONSE_JSON)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(REMAINING, REMAINING_VALUE);
    Ok(response)
}

/// Sends requests through one stack; boxed so stacks of different types sit in one list.
pub trait RequestLoop {
    /// Sends `requests` requests one after another on `runtime`, reading each response body to
    /// its end, and returns the time taken.
    fn run(&mut self, runtime: &Runtime, requests: u64) -> Duration;

    /// The sizes in bytes of the stack's response future and of its response body (what
    /// each request moves around).
    fn sizes(&self) -> (usize, usize);
}

/// A [`RequestLoop`] over a service `S`.
pub struct StackLoop<S> {
    service: S,
    uri: Uri,
}

impl<S> StackLoop<S> {
    /// Boxes `service` as a [`RequestLoop`].
    pub fn boxed<ResB>(service: S) -> Box<dyn RequestLoop>
    where
        S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + 'static,
        S::Error: Debug,
        ResB: Body,
        ResB::Error: Debug,
    {
        Box::new(StackLoop {
            service,
            uri: Uri::from_static(URI),
        })
    }
}

impl<S, ResB> RequestLoop for StackLoop<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>>,
    S::Error: Debug,
    ResB: Body,
    ResB::Error: Debug,
{
    fn run(&mut self, runtime: &Runtime, requests: u64) -> Duration {
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..requests {
                let request = chat_request(&self.uri);
                let service = self.service.ready().await.expect("the stack is ready");
                let response = service.call(request).await.expect("the stack answers");
                let read = drain_body(response.into_body())
                    .await
                    .expect("the response body reads");
                black_box(read);
            }
            start.elapsed()
        })
    }

    fn sizes(&self) -> (usize, usize) {
        (
            std::mem::size_of::<S::Future>(),
            std::mem::size_of::<ResB>(),
        )
    }
}
