//! `TimeoutByWorkload`: how long a request may take, phase by phase.
//!
//! One timeout number cannot serve an LLM API: a chat reply and a thirty-minute long-context
//! generation need different budgets, and a streamed response can legitimately last far longer
//! than any sane time-to-first-byte. Following the guide (and httpx's phases), this module
//! splits time into:
//!
//! - the **deadline** ([`TimeoutByWorkload`]): everything until the response head, all retries
//!   and waits included;
//! - the **idle read** ([`TimeoutBody`]): the longest silence between two body frames, which
//!   keeps long streams alive while tokens flow and cuts stalled ones;
//! - the **per attempt** limit ([`AttemptTimeout`]): an optional cap on one attempt's time to
//!   headers, retried by [`RetryOnStatus`](crate::RetryOnStatus).
//!
//! Connect, write and pool timeouts need the connector's cooperation; they live in
//! [`TimeoutProfile`](crate::TimeoutProfile) for connector builders to apply.
//!
//! The design follows tower-http's `TimeoutBody`, with the clock running only while the reader
//! is actually waiting on the server.

mod attempt;
mod body;
pub mod future;
mod layer;
mod service;

pub use attempt::{AttemptTimeout, AttemptTimeoutService};
pub use body::TimeoutBody;
pub use layer::TimeoutByWorkload;
pub use service::TimeoutByWorkloadService;
