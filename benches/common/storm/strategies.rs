//! The four ways of calling a rate-limited, sometimes failing API that the storm compares.
//! Each sends [`REQUEST_JSON`](crate::chat::REQUEST_JSON) (or a body of the caller's) as a
//! POST, reads the whole response body, and reports an [`Outcome`]; every attempt on the wire
//! is recorded in the strategy's [`RunLog`]. Network errors are outcomes, never panics.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
    Uri,
};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
use tower::ServiceExt;
use tower_reliability::rate_limit::{RateLimitAware, Scope};

use crate::{
    chat::{chat_request_with, drain_body, REQUEST_JSON},
    tower_retry::{is_retryable_status, tower_retry_stack},
    traffic::{
        preset::{self, hyper_client, Preset, Wording},
        record::{CountAttempts, Outcome, RunLog},
    },
};

/// A request in flight, to its outcome.
pub type PendingOutcome = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A client strategy: sends one logical request, retries included.
pub trait Strategy: Send + Sync {
    /// Sends one logical request with this JSON body. The caller enforces the deadline by
    /// dropping the future.
    fn send_body(&self, body: Bytes) -> PendingOutcome;

    /// Sends one logical request with [`REQUEST_JSON`].
    fn send(&self) -> PendingOutcome {
        self.send_body(Bytes::from_static(REQUEST_JSON))
    }
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
            Kind::Fireworks => Arc::new(Fireworks::new(uri, deadline, log, RateLimitAware::new())),
        }
    }
}

type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// [`Kind::GuideLoop`].
struct GuideLoop {
    client: CountAttempts<HyperClient>,
    uri: Uri,
    log: Arc<RunLog>,
}

impl Strategy for GuideLoop {
    fn send_body(&self, body: Bytes) -> PendingOutcome {
        let (client, uri, log) = (self.client.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            const ATTEMPTS: u32 = 5;
            let mut attempt = 0;
            loop {
                // The guide's loop catches only HTTP errors: a connection error ends it.
                let request = chat_request_with(&uri, body.clone());
                let response = match client.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(error) => return log.failed(format!("client error: {error}")),
                };
                let status = response.status();
                let read = drain_body(response.into_body()).await;
                attempt += 1;
                if status.is_success() || !is_retryable_status(status) || attempt == ATTEMPTS {
                    return log.outcome(status, read, "");
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
    fn send_body(&self, body: Bytes) -> PendingOutcome {
        let request = self
            .client
            .post(&*self.url)
            .header(AUTHORIZATION, "Bearer bench-key")
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body);
        let log = self.log.clone();
        Box::pin(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let read = response.bytes().await.map(|body| body.len());
                    log.outcome(status, read, "")
                }
                Err(error) => log.failed(format!("client error: {error}")),
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
    fn send_body(&self, body: Bytes) -> PendingOutcome {
        let (service, uri, log) = (self.service.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            match service.oneshot(chat_request_with(&uri, body)).await {
                Ok(response) => {
                    let status = response.status();
                    let read = drain_body(response.into_body()).await;
                    log.outcome(status, read, "")
                }
                Err(error) if error.is::<tower::timeout::error::Elapsed>() => Outcome::TimedOut,
                Err(error) => log.failed(format!("client error: {error}")),
            }
        })
    }
}

/// [`Kind::Fireworks`] (with a fresh default gate), or with a gate of the caller's (the
/// adaptive and token parts' lanes).
pub struct Fireworks {
    service: Preset,
    uri: Uri,
    log: Arc<RunLog>,
    /// The rate-limit scope every request is put in, if not the default (its model).
    scope: Option<Scope>,
}

impl Fireworks {
    /// The preset sending to `uri`, its total deadline the run's, its gate `rate_limit`.
    pub fn new(uri: Uri, deadline: Duration, log: Arc<RunLog>, rate_limit: RateLimitAware) -> Self {
        Fireworks {
            service: preset::preset(deadline, rate_limit, log.clone()),
            uri,
            log,
            scope: None,
        }
    }

    /// Puts every request in `scope` (a request extension) instead of its model's.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }
}

/// How the storm words the preset's errors: the message too.
const WORDING: Wording = Wording {
    refused: "refused: the rate-limit gate's wait would pass the deadline",
    with_message: true,
};

impl Strategy for Fireworks {
    fn send_body(&self, body: Bytes) -> PendingOutcome {
        let (service, log) = (self.service.clone(), self.log.clone());
        let mut request = chat_request_with(&self.uri, body);
        if let Some(scope) = &self.scope {
            request.extensions_mut().insert(scope.clone());
        }
        Box::pin(async move { preset::send_request(service, request, &log, WORDING).await })
    }
}
