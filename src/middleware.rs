//! reqwest-middleware integration (feature `reqwest-middleware`).
//!
//! [`ReliabilityMiddleware`] runs the very same tower layers inside a
//! [`reqwest_middleware::ClientWithMiddleware`]: the timeouts, the classification, the backoff
//! and the shared rate-limit state are not re-implemented, the middleware drives the tower
//! stack over the rest of the middleware chain. Compared with `reqwest-retry`:
//!
//! - `Retry-After` / `retry-after-ms` are honoured (reqwest-middleware#146, #247);
//! - a streaming (non-cloneable) request body is buffered up to the replay cap and replayed
//!   byte for byte, instead of failing (reqwest-middleware#44); a body over the cap is sent
//!   once, a `warn` event says so, and the response's extensions carry the
//!   [`RetryReport`](crate::RetryReport) (`response.extensions().get::<RetryReport>()`) as they
//!   do for every request that was retried or stopped early;
//! - every clone of the client shares one rate-limit gate and one retry budget.
//!
//! A request picks its [`Workload`] with `RequestBuilder::with_extension(Workload::Agentic)`.
//!
//! What reqwest promises stays true through the adapter: `Response::url()` is the final URL
//! after redirects, and extensions that middlewares further down write into the shared
//! `Extensions` flow back out (those of the attempt that decided the outcome).
//!
//! Errors: failures of the inner client come back as they were
//! ([`reqwest_middleware::Error::Reqwest`], so `is_connect()` and friends still work); this
//! crate's own failures before the response (the deadline, local rate limiting) come back as
//! [`reqwest_middleware::Error::Middleware`] wrapping an [`Error`]: use
//! [`reliability_error`] to get at it (and at its [`Error::report`]: attempts and waits; a
//! failure handed back as reqwest's own error carries none). A stream that stalls past the idle-read timeout fails
//! later, where reqwest reads the body (`bytes()`, `chunk()`, `bytes_stream()`): a
//! `reqwest::Error` whose `is_timeout()` is `true`; [`find_reliability_error`] finds the typed
//! error ([`TimeoutPhase::BodyIdle`](crate::error::TimeoutPhase::BodyIdle)) in it.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use tower_reliability::{middleware::ReliabilityMiddleware, Workload};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(ReliabilityMiddleware::new(Workload::Interactive))
//!     .build();
//! let response = client
//!     .post("https://api.fireworks.ai/inference/v1/chat/completions")
//!     .with_extension(Workload::Agentic)
//!     .body(r#"{"model":"...","messages":[]}"#)
//!     .send()
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub(crate) mod errors;

use std::{
    future::poll_fn,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http::Extensions;
use http_body_util::BodyExt;
use reqwest_middleware::{Middleware, Next};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::{BoxError, Error},
    fireworks::{self, FireworksLayer},
    retry::ReplayBody,
    workload::Workload,
};

/// The [`fireworks`] layers as a `reqwest_middleware::Middleware`.
///
/// Clones (and every client built with one) share the rate-limit state and the retry budget.
#[derive(Debug, Clone)]
pub struct ReliabilityMiddleware {
    layer: FireworksLayer,
}

impl ReliabilityMiddleware {
    /// The preset with the guide's values for `workload`.
    pub fn new(workload: Workload) -> Self {
        ReliabilityMiddleware::from_layer(fireworks::layer(workload))
    }

    /// A customised preset.
    pub fn from_layer(layer: FireworksLayer) -> Self {
        ReliabilityMiddleware { layer }
    }

    /// The layers in use.
    pub fn layer(&self) -> &FireworksLayer {
        &self.layer
    }
}

/// This crate's [`Error`] inside a `reqwest_middleware::Error`, if there is one: a failure
/// of the layers ([`Error::Middleware`](reqwest_middleware::Error::Middleware)), or a timeout
/// reqwest reports while reading the body (inside
/// [`Error::Reqwest`](reqwest_middleware::Error::Reqwest)). See [`find_reliability_error`].
pub fn reliability_error(error: &reqwest_middleware::Error) -> Option<&Error> {
    match error {
        reqwest_middleware::Error::Middleware(e) => find_reliability_error(e.as_ref()),
        reqwest_middleware::Error::Reqwest(e) => find_reliability_error(e),
    }
}

/// This crate's [`Error`] anywhere in an error's source chain, I/O errors' payloads included.
///
/// A body-idle timeout surfaces where reqwest reads the body — `response.bytes()`,
/// `response.chunk()`, `bytes_stream()` — as a `reqwest::Error` (kind decode / body). Its
/// `is_timeout()` is `true` (the adapter hands the body's timeout to reqwest as an
/// `io::ErrorKind::TimedOut`), and this finds the typed error with its phase:
///
/// ```no_run
/// # async fn run(response: reqwest::Response) {
/// use tower_reliability::{middleware::find_reliability_error, error::TimeoutPhase};
///
/// match response.bytes().await {
///     Ok(body) => { /* ... */ }
///     Err(e) if e.is_timeout() => {
///         let phase = find_reliability_error(&e).and_then(|ours| ours.timeout_phase());
///         assert_eq!(phase, Some(TimeoutPhase::BodyIdle));
///     }
///     Err(e) => { /* ... */ }
/// }
/// # }
/// ```
pub fn find_reliability_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(ours) = error.downcast_ref::<Error>() {
            return Some(ours);
        }
        // `io::Error::source` skips its payload: look at the payload itself.
        if let Some(payload) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(ours) = find_reliability_error(payload) {
                return Some(ours);
            }
        }
        next = error.source();
    }
    None
}

#[async_trait::async_trait]
impl Middleware for ReliabilityMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = request.url().clone();
        let mut request: http::Request<reqwest::Body> = request.try_into()?;
        if let Some(workload) = extensions.get::<Workload>() {
            request.extensions_mut().insert(*workload);
        }
        // Every attempt runs the rest of the chain on its own copy of the extensions; the
        // copy of the attempt that decided the outcome is written back.
        let written_back = Arc::new(Mutex::new(None));
        let inner = NextService {
            next,
            extensions: extensions.clone(),
            written_back: written_back.clone(),
        };
        let mut service = self.layer.layer(inner);
        let result = match poll_fn(|cx| {
            Service::<http::Request<reqwest::Body>>::poll_ready(&mut service, cx)
        })
        .await
        {
            Ok(()) => service.call(request).await,
            Err(e) => Err(e),
        };
        let last_attempt = written_back.lock().ok().and_then(|mut e| e.take());
        if let Some(last_attempt) = last_attempt {
            extensions.extend(last_attempt);
        }
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                // reqwest's `url()` is the final URL, after redirects.
                let url = parts
                    .extensions
                    .remove::<FinalUrl>()
                    .map_or(url, |FinalUrl(url)| url);
                let mut builder = http::Response::builder()
                    .status(parts.status)
                    .version(parts.version);
                if let Some(headers) = builder.headers_mut() {
                    *headers = parts.headers;
                }
                if let Some(ext) = builder.extensions_mut() {
                    ext.extend(parts.extensions);
                }
                let body = body.map_err(timeout_as_io);
                let response = reqwest::ResponseBuilderExt::url(builder, url)
                    .body(reqwest::Body::wrap(body))
                    .map_err(reqwest_middleware::Error::middleware)?;
                Ok(reqwest::Response::from(response))
            }
            // The URL was dropped when the error was wrapped (it can carry credentials); the
            // caller, who knows it, gets it back as reqwest's own errors have it.
            Err(error) => Err(into_middleware_error(error).with_url(url)),
        }
    }
}

/// Hands inner failures back as they were, and wraps this crate's own.
fn into_middleware_error(error: Error) -> reqwest_middleware::Error {
    use crate::ErrorKind;
    if !matches!(error.kind(), ErrorKind::Inner | ErrorKind::Connect) {
        return reqwest_middleware::Error::middleware(error);
    }
    match error.into_source() {
        Some(source) => match source.downcast::<reqwest_middleware::Error>() {
            Ok(original) => *original,
            Err(other) => reqwest_middleware::Error::middleware(Error::from_inner(other)),
        },
        None => reqwest_middleware::Error::middleware(Error::from_inner("inner service failed")),
    }
}

/// The URL a response came from (after redirects), carried from the bottom of the stack to the
/// adapter.
#[derive(Clone)]
struct FinalUrl(reqwest::Url);

/// A body error of this crate that is a timeout becomes an `io::ErrorKind::TimedOut` around it,
/// the shape `reqwest::Error::is_timeout` recognises; [`find_reliability_error`] still finds it.
fn timeout_as_io(error: Error) -> BoxError {
    if error.is_timeout() {
        Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, error))
    } else {
        Box::new(error)
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The rest of the middleware chain as the tower service at the bottom of the stack.
#[derive(Clone)]
struct NextService<'a> {
    next: Next<'a>,
    extensions: Extensions,
    written_back: Arc<Mutex<Option<Extensions>>>,
}

impl<'a, B> Service<http::Request<ReplayBody<B>>> for NextService<'a>
where
    B: http_body::Body + Send + Sync + 'static,
    B::Error: Into<crate::BoxError>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest_middleware::Error;
    type Future = BoxFuture<'a, reqwest_middleware::Result<http::Response<reqwest::Body>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<ReplayBody<B>>) -> Self::Future {
        let next = self.next.clone();
        let mut extensions = self.extensions.clone();
        let written_back = self.written_back.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.try_into_bytes() {
                Ok(bytes) => reqwest::Body::from(bytes),
                Err(streaming) => reqwest::Body::wrap(streaming),
            };
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))?;
            let result = next.run(request, &mut extensions).await;
            if let Ok(mut slot) = written_back.lock() {
                *slot = Some(extensions);
            }
            let response = result?;
            let url = FinalUrl(response.url().clone());
            let mut response = http::Response::from(response);
            response.extensions_mut().insert(url);
            Ok(response)
        })
    }
}

impl std::fmt::Debug for NextService<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextService").finish_non_exhaustive()
    }
}
