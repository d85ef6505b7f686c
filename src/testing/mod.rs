//! An in-process, Fireworks-compatible HTTP server that fails on demand.
//!
//! The layers of this crate exist to survive what real LLM APIs do under load: `429`s with
//! (or without, or with nonsense) `Retry-After` hints, `503 Service Overloaded`, gateways
//! timing out, connections reset before or in the middle of a response, streams that go
//! silent. Those are hard to provoke against the real service and impossible to provoke
//! *reproducibly*. [`FireworksServer`] speaks enough of the Fireworks (OpenAI-compatible)
//! inference API for a real HTTP client to talk to it, and lets a test decide exactly what
//! goes wrong and then count exactly what reached the server.
//!
//! # What it serves
//!
//! * `POST /inference/v1/chat/completions` — needs `Authorization: Bearer <key>` (`401`
//!   otherwise), a JSON body (`400` if it is not JSON) with a string `model` and an array of
//!   message objects `messages` (`422` if missing or ill-typed), and a known model (`404`
//!   otherwise). It answers a `chat.completion` JSON document, or with `"stream": true`
//!   `text/event-stream` events: one `chat.completion.chunk` per token, one final chunk with
//!   `finish_reason` and `usage`, then `data: [DONE]`; each event after the first is sent one
//!   token interval after the previous. `max_tokens` lowers the number of tokens. With
//!   `"stream_options": {"include_usage": true}` the usage comes as OpenAI sends it instead:
//!   `"usage": null` on every chunk, then one more chunk with empty `choices` and the usage.
//!   `usage` has `prompt_tokens` (see [Token accounting](#token-accounting)),
//!   `completion_tokens`, `total_tokens`, and `prompt_tokens_details.cached_tokens` when
//!   [`ServerConfig::cached_prompt_share`] is set.
//! * `GET /inference/v1/models` — the configured models in OpenAI's list shape.
//! * `POST /echo-hash` — `{"len": N, "hash": "<hex>"}` of the request body (see
//!   [`body_hash`]), so a test can prove that a retried request carried identical bytes. It
//!   needs no API key but honours faults and the rate limit like the chat endpoint.
//! * `POST /v1/accounts/{account}/batchJobs` — creates a batch job from any JSON object
//!   (`400` / `422` otherwise) and answers
//!   `{"name": "accounts/{account}/batchJobs/<id>", "state": "JOB_STATE_PENDING"}`.
//! * `GET /v1/accounts/{account}/batchJobs/{id}` — the job's `state`, which advances with the
//!   clock: `JOB_STATE_PENDING`, then `JOB_STATE_RUNNING` with `"progress": {"percent": N}`,
//!   then `JOB_STATE_COMPLETED` once the job duration has passed
//!   ([`FireworksServer::set_job_duration`], 2 s by default); `404` for an unknown job. Both
//!   job endpoints need the API key and honour faults and the rate limit like the chat endpoint.
//!
//! Every error is shaped like Fireworks':
//! `{"error":{"object":"error","type":"…","message":"…","code":…}}`.
//!
//! # What goes wrong
//!
//! * a **script** of [`Fault`]s, first in first out, one per chat, `/echo-hash` or batch job
//!   request ([`FireworksServer::push_script`]);
//! * when the script is empty, a seedable random [`FaultMix`] of `500`/`502`/`503`/`504` and
//!   connection resets;
//! * a request **quota** as OpenAI-compatible servers keep it: a bucket refilled continuously,
//!   `x-ratelimit-{limit,remaining,reset}-requests` on every answer it counts (`reset`: until
//!   the bucket is full again), and `429` with the exact wait in the `Retry-After` style of
//!   your choice ([`RateLimitConfig`], [`HintStyle`]). It runs on Tokio's clock, so paused-time
//!   tests drive it;
//! * **per-model limits** as Fireworks enforces them: prompt, uncached prompt and generated
//!   tokens per minute (and optionally requests, or OpenAI's single token limit), each a
//!   bucket refilled continuously, one set per model; Fireworks' limit headers (today's per
//!   second, or the older per minute with remaining counts), OpenAI's as an option,
//!   `x-ratelimit-over-limit: yes` from the last quarter of a bucket, and `429` when a request
//!   does not fit ([`ModelLimits`], [`ServerConfig::model_limits`],
//!   [`ServerConfig::limits_for`]). They run on Tokio's clock too;
//! * an **outage**: every request answers one status until cleared
//!   ([`FireworksServer::set_outage`]).
//!
//! [`FireworksServer::stats`] then tells how many requests, connections, statuses, resets and
//! stalls the server saw, counted when they happen rather than when a client notices, and per
//! model the requests served and refused and the tokens served ([`ModelStats`]).
//!
//! # Token accounting
//!
//! * **Prompt tokens**: for each message, the UTF-8 bytes of its text (a string `content`, or
//!   the `text` of each part of an array `content`) divided by four, rounded up; summed over
//!   the messages. Nothing else counts (roles, tool calls, images). A message of `4 * n`
//!   ASCII bytes is `n` tokens.
//! * **Cached prompt tokens**: `floor(prompt * share)` with the
//!   [`cached_prompt_share`](ServerConfig::cached_prompt_share) (none by default).
//! * **Generated tokens**: one a content token, `min(tokens_per_completion, max_tokens)` in
//!   all, charged to the model's limits and counted in [`ModelStats`] **as they are
//!   produced**: a streamed token when its event is sent, a JSON completion when its body is.
//!   A stream cut short is charged what it sent; `usage` always reports the whole completion.
//! * The prompt (and one request) is charged when the request is admitted.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower_reliability::testing::{Fault, FireworksServer, ServerConfig};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = FireworksServer::start(ServerConfig::default()).await?;
//!     // The first request is refused as overloaded, the next one is served.
//!     server.push_script([Fault::Status(503)]);
//!
//!     let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//!     let body = r#"{"model":"accounts/fireworks/models/llama-v3p1-8b-instruct",
//!                    "messages":[{"role":"user","content":"Hi"}]}"#;
//!     let mut statuses = Vec::new();
//!     for _ in 0..2 {
//!         let request = http::Request::post(server.chat_url())
//!             .header("authorization", "Bearer test-key")
//!             .header("content-type", "application/json")
//!             .body(Full::new(Bytes::from(body)))?;
//!         let response = client.request(request).await?;
//!         statuses.push(response.status().as_u16());
//!         response.into_body().collect().await?;
//!     }
//!
//!     assert_eq!(statuses, [503, 200]);
//!     let stats = server.stats();
//!     assert_eq!((stats.requests, stats.count(503), stats.count(200)), (2, 1, 1));
//!     server.shutdown().await;
//!     Ok(())
//! }
//! ```

mod answer;
mod body;
mod chat;
mod completion;
mod config;
mod conn;
mod echo;
mod errors;
mod faults;
mod jobs;
mod limit_headers;
mod limiters;
mod meter;
mod model_buckets;
mod model_limits;
mod models;
mod pipeline;
mod prompt;
mod rate_limit;
mod refill;
mod routes;
mod server;
mod sse;
mod state;
mod stats;

pub use config::{HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL};
pub use echo::body_hash;
pub use faults::{Fault, FaultMix};
pub use model_limits::{FireworksHeaders, ModelLimits};
pub use server::FireworksServer;
pub use stats::{ModelStats, Stats};
