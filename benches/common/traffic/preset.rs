//! The client under test: `fireworks::layer(Workload::Interactive)` over a hyper-util client,
//! its total deadline set to the run's, every attempt counted in a [`RunLog`]; and sending one
//! logical request through it.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tower::{Layer, ServiceExt};
use tower_reliability::{
    error::TimeoutPhase, fireworks, rate_limit::RateLimitAware, retry::ReplayBody, ErrorKind,
    RetryReport, TimeoutByWorkload, TimeoutProfile, Workload,
};

use super::record::{CountAttempts, Outcome, RunLog};
use crate::chat::{chat_request, drain_body};

/// A plain hyper-util HTTP/1 client.
pub fn hyper_client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// The preset around a counted hyper-util client.
pub type Preset =
    fireworks::FireworksService<CountAttempts<Client<HttpConnector, ReplayBody<Full<Bytes>>>>>;

/// `fireworks::layer(Workload::Interactive)` with its total deadline set to `deadline` (a body
/// idle timeout of 30 s) and its gate `rate_limit`, recording every attempt in `log`.
pub fn preset(deadline: Duration, rate_limit: RateLimitAware, log: Arc<RunLog>) -> Preset {
    let interactive = Workload::Interactive;
    let timeouts = TimeoutByWorkload::new(interactive).profile(
        interactive,
        TimeoutProfile::new(deadline).with_idle_read(Duration::from_secs(30)),
    );
    let layer = fireworks::layer(interactive)
        .timeouts(timeouts)
        .rate_limit(rate_limit);
    layer.layer(CountAttempts::new(hyper_client(), log))
}

/// How [`send`] words the reason of a failure that is an error rather than an answer.
#[derive(Debug, Clone, Copy)]
pub struct Wording {
    /// The reason when the gate refuses a request whose wait would pass the deadline.
    pub refused: &'static str,
    /// Whether any other error's reason ends with its message (after its kind).
    pub with_message: bool,
}

/// Sends one logical request to `uri` through `service` and reads the response to its end;
/// why it failed, if it did, goes to `log`.
#[allow(dead_code)] // The fleet's; the storm sends requests of its own.
pub async fn send(service: Preset, uri: &Uri, log: &RunLog, wording: Wording) -> Outcome {
    send_request(service, chat_request(uri), log, wording).await
}

/// [`send`] with a request of the caller's (its own body, a rate-limit scope).
pub async fn send_request(
    service: Preset,
    request: Request<Full<Bytes>>,
    log: &RunLog,
    wording: Wording,
) -> Outcome {
    match service.oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            // Why retrying stopped, when it stopped on a retryable answer.
            let stopped = response
                .extensions()
                .get::<RetryReport>()
                .and_then(|report| report.stopped)
                .map_or_else(String::new, |reason| format!(", {reason:?}"));
            let read = drain_body(response.into_body()).await;
            log.outcome(status, read, &stopped)
        }
        Err(error) => match error.kind() {
            ErrorKind::Timeout(TimeoutPhase::Deadline) => Outcome::TimedOut,
            ErrorKind::RateLimited { .. } => log.failed(wording.refused),
            kind if wording.with_message => log.failed(format!("error {kind:?}: {error}")),
            kind => log.failed(format!("error {kind:?}")),
        },
    }
}
