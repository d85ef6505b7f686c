//! Waiting for long-running jobs: batch results and training runs that outlive any request.
//!
//! The Fireworks guide gives batch *submission* a 60-second timeout because the results are
//! asynchronous, and asks trainer jobs to "reconnect and wait" after a preemption or a transient
//! failure. Both leave the client with the same task: ask the server, again and again, how the
//! job is doing, until it has ended. Done naively that task is either too eager (a tight loop
//! that hammers the status endpoint, in step with every other client) or too fragile (one
//! connection reset, one `503`, and a job that ran for hours is reported lost).
//!
//! [`JobPoller`] does it the way the rest of the crate sends requests:
//!
//! - **Any transport, one stack.** It polls through any tower
//!   `Service<http::Request<B>, Response = http::Response<ResB>>`, normally the
//!   [`fireworks`](crate::fireworks) preset, so each poll gets the stack's per-request timeouts,
//!   retries and shared rate-limit gate. The poller adds only what a *sequence* of requests needs.
//! - **Growing intervals, reusing the backoff module.** The wait between polls follows a
//!   [`Schedule`](crate::backoff::Schedule): `1 s * 2^n` with equal jitter, capped at 30 s, so
//!   a job that finishes quickly is seen quickly, a long one costs one request every 15–30 s,
//!   and many pollers spread out. A server's `Retry-After` stretches the next wait.
//! - **Two clocks.** Each poll's own deadline is the stack's
//!   ([`TimeoutByWorkload`](crate::TimeoutByWorkload)); the poller's
//!   [`deadline`](JobPoller::deadline) bounds the whole wait, and is published to the stack as
//!   each poll's [`Deadline`](crate::context::Deadline) (the earlier of the two wins), so no retry inside
//!   a poll outlives it.
//! - **Failures tolerated, within reason.** A poll that fails in a way another poll can fix (a
//!   connect failure, a timeout, a reset, a `503` that outlived the stack's retries) is counted;
//!   [`max_consecutive_failures`](JobPoller::max_consecutive_failures) of them in a row end the
//!   wait. A status another poll cannot fix (`401`, `404`) ends it at once.
//! - **Stateless, so it survives restarts.** The job's state lives on the server and the wait's
//!   state lives in its future: drop the future, or restart the process, and call
//!   [`poll_until_done`](JobPoller::poll_until_done) again for the same job to resume. That is
//!   the guide's "reconnect and wait".
//! - **A job that ended is not an error.** A failed or cancelled job ends the wait with
//!   `Ok(status)`; [`JobError`] means the *waiting* stopped, and says whether waiting again can
//!   help ([`JobError::resumable`]).
//!
//! Reading the status is yours to define (`Fn(&Parts, &Bytes) -> Result<JobStatus, E>`), with
//! [`fireworks_json`] ready-made for Fireworks' (and OpenAI's) batch documents. It reads only the
//! state and the progress (with `serde_json`, skipping the rest unbuilt); see its docs for the
//! limits, and [`JobStatus::body`] for the rest.
//!
//! # Example
//!
//! A job that is running, then completed, behind a service that fails once in between:
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower_reliability::jobs::{fireworks_json, get_request, JobPoller, JobState};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut answers = vec![
//!     Ok(r#"{"state":"JOB_STATE_COMPLETED","progress":{"percent":100}}"#),
//!     Err("connection reset"),
//!     Ok(r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":40}}"#),
//! ];
//! // Any tower service will do; a real program uses the `fireworks` preset over its client.
//! let mut service = tower::service_fn(move |_request: http::Request<Full<Bytes>>| {
//!     let answer = answers.pop().unwrap_or(Err("no more answers"));
//!     async move { answer.map(|body| http::Response::new(Full::new(Bytes::from(body)))) }
//! });
//!
//! let uri = http::Uri::from_static("http://localhost/v1/accounts/me/batchJobs/b1");
//! let mut seen = Vec::new();
//! let mut poller = JobPoller::new(get_request(uri, http::HeaderMap::new()), fireworks_json)
//!     .first_interval(Duration::from_secs(1))
//!     .max_interval(Duration::from_secs(30))
//!     .deadline(Duration::from_secs(600))
//!     .max_consecutive_failures(3)
//!     .on_progress(|status| seen.push(status.progress));
//!
//! let status = poller.poll_until_done(&mut service).await?;
//! assert_eq!(status.state, JobState::Succeeded);
//! drop(poller);
//! assert_eq!(seen, [Some(40.0), Some(100.0)]);
//! # Ok(())
//! # }
//! ```
//!
//! With the preset, polls are quick metadata reads like a batch submission, so
//! [`Workload::BatchSubmit`](crate::Workload::BatchSubmit) suits them (60 s per poll, 20 s per
//! attempt); the `batch_job` example shows the whole flow against the crate's test server.

mod error;
mod json;
mod poll;
mod poller;
mod request;
mod status;

pub use error::{JobError, JobErrorKind, PollFailure};
pub use json::{fireworks_json, JsonStatusError};
pub use poller::JobPoller;
pub use request::get_request;
pub use status::{JobState, JobStatus};
