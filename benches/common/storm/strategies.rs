//! The four ways of calling a rate-limited, sometimes failing API that the storm compares.
//! Each sends [`REQUEST_JSON`](crate::chat::REQUEST_JSON) as a POST, reads the whole response
//! body, and reports an [`Outcome`]; every attempt on the wire is recorded in the strategy's
//! [`RunLog`]. Network errors are outcomes, never panics.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
    StatusCode, Uri,
};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
use tower::{Layer, ServiceExt};
use tower_reliability::{
    fireworks, retry::ReplayBody, ErrorKind, RetryReport, TimeoutByWorkload, TimeoutPhase,
    TimeoutProfile, Workload,
};

use super::record::{CountAttempts, Outcome, RunLog};
use crate::{
    chat::{chat_request, drain_body, REQUEST_JSON},
    tower_retry::{is_retryable_status, tower_retry_stack},
};

/// A request in flight, to its outcome.
pub type PendingOutcome = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A client strategy: sends one logical request, retries included.
pub trait Strategy: Send + Sync {
    /// Sends one logical request. The caller enforces the deadline by dropping the future.
    fn send(&self) -> PendingOutcome;
}

/// The strategies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Fireworks guide's own loop: 5 attempts, `1 s * 2^n + U(0, 1 s)` on
    /// 429/500/502/503/504, nothing caught but those statuses.
    GuideLoop,
    /// reqwest + reqwest-middleware + reqwest-retry with its documented setup,
    /// `ExponentialBackoff::builder().build_with_max_retries(3)` (1 s to 30 min, full jitter).
    ReqwestRetry,
    /// tower 0.5 `Retry` with `ExponentialBackoffMaker` (1 s to 30 s) and `TpsBudget`,
    /// retrying 429/5xx and errors, 5 attempts, under a `Timeout` of the deadline.
    TowerRetry,
    /// `fireworks::layer(Workload::Interactive)` with its total deadline set to the run's.
    Fireworks,
}

impl Kind {
    /// Every strategy, in table order.
    pub const ALL: [Kind; 4] = [
        Kind::GuideLoop,
        Kind::ReqwestRetry,
        Kind::TowerRetry,
        Kind::Fireworks,
    ];

    /// The name in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Kind::GuideLoop => "guide's loop (hyper-util)",
            Kind::ReqwestRetry => "reqwest-retry 0.9",
            Kind::TowerRetry => "tower 0.5 retry",
            Kind::Fireworks => "fireworks::layer",
        }
    }

    /// A short path-safe name (each strategy gets its own nginx bucket under it).
    pub fn slug(self) -> &'static str {
        match self {
            Kind::GuideLoop => "guide",
            Kind::ReqwestRetry => "reqwest",
            Kind::TowerRetry => "tower",
            Kind::Fireworks => "fireworks",
        }
    }

    /// The strategy sending to `url`, recording its attempts in `log`.
    pub fn build(self, url: &str, deadline: Duration, log: Arc<RunLog>) -> Arc<dyn Strategy> {
        let uri: Uri = url.parse().expect("a valid URL");
        match self {
            Kind::GuideLoop => Arc::new(GuideLoop {
                client: CountAttempts::new(hyper_client(), log.clone()),
                uri,
                log,
            }),
            Kind::ReqwestRetry => Arc::new(ReqwestRetry::new(url, log)),
            Kind::TowerRetry => Arc::new(TowerRetry {
                service: tower_retry_stack(
                    CountAttempts::new(hyper_client(), log.clone()),
                    5,
                    deadline,
                ),
                uri,
                log,
            }),
            Kind::Fireworks => {
                let interactive = Workload::Interactive;
                let timeouts = TimeoutByWorkload::new(interactive).profile(
                    interactive,
                    TimeoutProfile::new(deadline).with_idle_read(Duration::from_secs(30)),
                );
                let layer = fireworks::layer(interactive).timeouts(timeouts);
                Arc::new(Fireworks {
                    service: layer.layer(CountAttempts::new(hyper_client(), log.clone())),
                    uri,
                    log,
                })
            }
        }
    }
}

fn hyper_client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a response means once its body was read (`read`): 2xx is a success, anything else a
/// failure, whose reason (the status, and `detail` if any) goes to `log`.
fn outcome_of<E>(
    log: &RunLog,
    status: StatusCode,
    read: Result<usize, E>,
    detail: &str,
) -> Outcome {
    match (status.is_success(), read) {
        (true, Ok(_)) => Outcome::Success,
        (true, Err(_)) => failed(log, "response body broke off".to_owned()),
        (false, _) => failed(log, format!("final {}{detail}", status.as_u16())),
    }
}

/// Notes `reason` in `log` and fails.
fn failed(log: &RunLog, reason: String) -> Outcome {
    log.failure(reason);
    Outcome::Failed
}

type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// [`Kind::GuideLoop`].
struct GuideLoop {
    client: CountAttempts<HyperClient>,
    uri: Uri,
    log: Arc<RunLog>,
}

impl Strategy for GuideLoop {
    fn send(&self) -> PendingOutcome {
        let (client, uri, log) = (self.client.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            const ATTEMPTS: u32 = 5;
            let mut attempt = 0;
            loop {
                // The guide's loop catches only HTTP errors: a connection error ends it.
                let response = match client.clone().oneshot(chat_request(&uri)).await {
                    Ok(response) => response,
                    Err(error) => return failed(&log, format!("client error: {error}")),
                };
                let status = response.status();
                let read = drain_body(response.into_body()).await;
                attempt += 1;
                if status.is_success() || !is_retryable_status(status) || attempt == ATTEMPTS {
                    return outcome_of(&log, status, read, "");
                }
                let jitter = Duration::from_secs_f64(fastrand::f64());
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1)) + jitter).await;
            }
        })
    }
}

/// [`Kind::ReqwestRetry`].
struct ReqwestRetry {
    client: ClientWithMiddleware,
    url: Arc<str>,
    log: Arc<RunLog>,
}

impl ReqwestRetry {
    fn new(url: &str, log: Arc<RunLog>) -> Self {
        let policy = ExponentialBackoff::builder().build_with_max_retries(3);
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(RetryTransientMiddleware::new_with_policy(policy))
            // Inside the retry middleware: sees every attempt.
            .with(CountReqwestAttempts { log: log.clone() })
            .build();
        ReqwestRetry {
            client,
            url: url.into(),
            log,
        }
    }
}

impl Strategy for ReqwestRetry {
    fn send(&self) -> PendingOutcome {
        let request = self
            .client
            .post(&*self.url)
            .header(AUTHORIZATION, "Bearer bench-key")
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Bytes::from_static(REQUEST_JSON));
        let log = self.log.clone();
        Box::pin(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let read = response.bytes().await.map(|body| body.len());
                    outcome_of(&log, status, read, "")
                }
                Err(error) => failed(&log, format!("client error: {error}")),
            }
        })
    }
}

/// Records every attempt reqwest-retry makes.
struct CountReqwestAttempts {
    log: Arc<RunLog>,
}

#[async_trait::async_trait]
impl Middleware for CountReqwestAttempts {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let result = next.run(request, extensions).await;
        self.log
            .attempt(result.as_ref().map_or(0, |r| r.status().as_u16()));
        result
    }
}

/// [`Kind::TowerRetry`].
struct TowerRetry {
    service: tower::timeout::Timeout<
        tower::retry::Retry<crate::tower_retry::TowerRetryPolicy, CountAttempts<HyperClient>>,
    >,
    uri: Uri,
    log: Arc<RunLog>,
}

impl Strategy for TowerRetry {
    fn send(&self) -> PendingOutcome {
        let (service, uri, log) = (self.service.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            match service.oneshot(chat_request(&uri)).await {
                Ok(response) => {
                    let status = response.status();
                    let read = drain_body(response.into_body()).await;
                    outcome_of(&log, status, read, "")
                }
                Err(error) if error.is::<tower::timeout::error::Elapsed>() => Outcome::TimedOut,
                Err(error) => failed(&log, format!("client error: {error}")),
            }
        })
    }
}

/// [`Kind::Fireworks`].
struct Fireworks {
    service:
        fireworks::FireworksService<CountAttempts<Client<HttpConnector, ReplayBody<Full<Bytes>>>>>,
    uri: Uri,
    log: Arc<RunLog>,
}

impl Strategy for Fireworks {
    fn send(&self) -> PendingOutcome {
        let (service, uri, log) = (self.service.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            match service.oneshot(chat_request(&uri)).await {
                Ok(response) => {
                    let status = response.status();
                    // Why retrying stopped, when it stopped on a retryable answer.
                    let stopped = response
                        .extensions()
                        .get::<RetryReport>()
                        .and_then(|report| report.stopped)
                        .map_or_else(String::new, |reason| format!(", {reason:?}"));
                    let read = drain_body(response.into_body()).await;
                    outcome_of(&log, status, read, &stopped)
                }
                Err(error) => match error.kind() {
                    ErrorKind::Timeout(TimeoutPhase::Deadline) => Outcome::TimedOut,
                    ErrorKind::RateLimited { .. } => failed(
                        &log,
                        "refused: the rate-limit gate's wait would pass the deadline".to_owned(),
                    ),
                    kind => failed(&log, format!("error {kind:?}: {error}")),
                },
            }
        })
    }
}
