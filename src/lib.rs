//! Tower layers that make any HTTP client behave like a careful production client of an LLM API.
//!
//! The [Fireworks AI reliability guide] asks four things of a client; each is a
//! [`tower_layer::Layer`], generic over any `Service<http::Request<B>, Response =
//! http::Response<ResB>>` — a hyper-util client, a reqwest client behind a tower adapter, a
//! service inside axum, or any tower stack:
//!
//! | Guide section | Layer | What it does |
//! |---|---|---|
//! | Timeout configuration | [`TimeoutByWorkload`] | a deadline per [`Workload`] over all attempts and waits; an idle-read timeout on the body, so long streams live while tokens flow |
//! | Which errors are retryable | [`RetryOnStatus`] | retries 429/500/502/503/504 and failures that never reached the server, never 400/401/404/422; budgeted; replays any body |
//! | Exponential backoff with jitter | [`JitteredBackoff`] | `1 s * 2^n + U(0, 1 s)` (or full / equal / decorrelated jitter), honouring `retry-after-ms` / `Retry-After`, capped, deadline-aware |
//! | Handling 429 rate limits | [`RateLimitAware`] | one gate per model (as providers limit) that learns from 429s and rate-limit headers, holds every request while the server has said stop, and paces requests and tokens at what the server counts once throttled, interactive work first (shared by a fleet through Redis with the `redis` feature) |
//! | The dashboard vs client-side failures | [`Error`] | every failure says whether it ever reached the server |
//! | Long-running training jobs | [`jobs::JobPoller`] | polls a job until it ends, surviving transient failures and restarts |
//!
//! The [`fireworks`] preset stacks them in the recommended order with the guide's numbers:
//!
//! ```text
//! TimeoutByWorkload     total deadline, body idle timeout
//!   RetryOnStatus       what to retry, attempt cap, budget, body replay
//!     JitteredBackoff   when to retry
//!       RateLimitAware  whether anyone may send now
//!         AttemptTimeout  per-attempt time to headers
//!           inner client
//! ```
//!
//! # Example
//!
//! A hyper-util client with the preset, calling a local server that answers 503 once:
//!
//! ```
//! # use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_reliability::{fireworks, ReplayBody, RetryReport, Workload};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let url = doc_server::start().await;
//! let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
//! let mut service = ServiceBuilder::new()
//!     .layer(fireworks::layer(Workload::Interactive))
//!     .service(client);
//!
//! let request = http::Request::post(format!("{url}/inference/v1/chat/completions"))
//!     .header("content-type", "application/json")
//!     .body(Full::new(Bytes::from_static(br#"{"model":"m","messages":[]}"#)))?;
//! let response = service.ready().await?.call(request).await?;
//! assert_eq!(response.status(), 200);
//! let report = response.extensions().get::<RetryReport>().copied();
//! assert_eq!(report.map(|r| r.attempts), Some(2), "the 503 was retried once");
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(&body[..], b"ok");
//! # Ok(())
//! # }
//! # mod doc_server {
//! #     use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! #     use hyper::{server::conn::http1, service::service_fn, Response};
//! #     use hyper_util::rt::TokioIo;
//! #     pub async fn start() -> String {
//! #         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #         let addr = listener.local_addr().unwrap();
//! #         let seen = Arc::new(AtomicUsize::new(0));
//! #         tokio::spawn(async move {
//! #             loop {
//! #                 let Ok((stream, _)) = listener.accept().await else { return };
//! #                 let seen = seen.clone();
//! #                 tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(move |_req| {
//! #                     let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
//! #                     async move {
//! #                         let mut r = Response::new(http_body_util::Full::new(bytes::Bytes::from_static(if first { b"busy" } else { b"ok" })));
//! #                         if first { *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE; r.headers_mut().insert("retry-after-ms", "10".parse().unwrap()); }
//! #                         Ok::<_, std::convert::Infallible>(r)
//! #                     }
//! #                 })));
//! #             }
//! #         });
//! #         format!("http://{addr}")
//! #     }
//! # }
//! ```
//!
//! **The client's body type.** [`RetryOnStatus`] sends every attempt as a
//! `Request<`[`ReplayBody<B>`](ReplayBody)`>` (the same bytes each time), so whatever you wrap
//! below it — a hyper-util client, a `service_fn` mock — must accept `Request<ReplayBody<B>>`,
//! not the caller's `Request<B>`: build the client with `build_http::<ReplayBody<Full<Bytes>>>()`
//! ([`fireworks::RequestBody`] names it). Building it for `Full<Bytes>` fails with an E0599 on
//! `ready` that does not name the body. The wrapped service's response body must be `Unpin`
//! (hyper's `Incoming`, `Full` and `String` are; `Box::pin` others). A `service_fn` mock is on
//! [`RetryOnStatus`] and [`fireworks::layer`].
//!
//! # How the layers talk
//!
//! Through values in the request ([`context::Deadline`], [`context::RetryContext`]) and response
//! ([`RetryReport`]), so each works alone or under other crates' layers: see [`context`]. A
//! request a layer chose not to send says why ([`Error::not_sent_reason`]), and a retry's
//! budget cost comes back by one rule ([`context`], "The refund contract").
//!
//! # Names and configuration
//!
//! Each layer `X` comes with its service `XService` and its future `x::future::ResponseFuture`
//! (tower's scheme), and each service has `get_ref` / `get_mut` / `into_inner`. Layers are
//! configured with chained setters named for what they set
//! (`RetryOnStatus::new().max_attempts(3)`); configuration values ([`TimeoutProfile`],
//! [`rate_limit::GateConfig`], [`backoff::Schedule`], ...) with `with_*` setters and getters.
//!
//! # Feature flags
//!
//! - `hyper-util` (default): recognise hyper / hyper-util client errors precisely.
//! - `rustls`: [`client`], a hyper-util HTTPS client for Fireworks with the preset on top.
//! - `reqwest-middleware`: [`middleware`], the same layers as a reqwest-middleware `Middleware`.
//! - `axum`: [`Error`] converts into an axum response ([`axum`](mod@crate::axum)).
//! - `metrics`: counters and histograms through the `metrics` facade ([`observe`]).
//! - `backoff`: [`JitteredBackoff::from_backoff`], for users migrating from the unmaintained
//!   `backoff` crate.
//! - `redis`: [`rate_limit::RedisStore`], one rate-limit state shared by a fleet of processes.
//! - `testing`: [`testing`], an in-process Fireworks-compatible fault-injecting server.
//!
//! [Fireworks AI reliability guide]: https://docs.fireworks.ai

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod backoff;
pub mod classify;
#[cfg(feature = "rustls")]
pub mod client;
pub mod context;
pub mod error;
pub mod fireworks;
pub mod headers;
pub mod jobs;
mod json;
mod macros;
#[cfg(feature = "reqwest-middleware")]
pub mod middleware;
pub mod observe;
pub mod rate_limit;
mod readiness;
pub mod retry;
mod scoped;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
pub mod timeout;
mod workload;

pub use backoff::JitteredBackoff;
pub use context::RetryReport;
pub use error::{BoxError, Error, ErrorKind};
pub use rate_limit::RateLimitAware;
pub use retry::{ReplayBody, RetryOnStatus};
pub use timeout::TimeoutByWorkload;
pub use workload::{TimeoutProfile, Workload};
