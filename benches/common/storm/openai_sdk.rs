//! The OpenAI SDK's default retry policy (openai-python's `_base_client.py`), over a hyper-util
//! client: 2 retries (3 attempts) on 408, 409, 429, 5xx and connection errors; before a retry,
//! the server's hint (`retry-after-ms` in milliseconds, else `Retry-After` in seconds) when it
//! is above 0 and at most 60 s, else `min(0.5 s × 2^n, 8 s) × (1 − 0.25 × U(0, 1))`, `n` the
//! retries so far. (Neither `x-should-retry` nor an HTTP-date `Retry-After` is read: the local
//! server sends neither.)

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use tower::ServiceExt;

use super::strategies::{PendingOutcome, Strategy};
use crate::{
    chat::{chat_request_with, drain_body},
    traffic::{
        preset::hyper_client,
        record::{CountAttempts, RunLog},
    },
};

/// The SDK's `DEFAULT_MAX_RETRIES`.
const MAX_RETRIES: u32 = 2;
/// The longest server hint the SDK honours.
const MAX_HINT: Duration = Duration::from_secs(60);
/// The SDK's `INITIAL_RETRY_DELAY` and `MAX_RETRY_DELAY`.
const INITIAL_DELAY: f64 = 0.5;
const MAX_DELAY: f64 = 8.0;

/// The OpenAI SDK's default policy, sending to one URL.
pub struct OpenAiSdk {
    client: CountAttempts<Client<HttpConnector, Full<Bytes>>>,
    uri: Uri,
    log: Arc<RunLog>,
}

impl OpenAiSdk {
    /// The policy sending to `uri`, recording its attempts in `log`.
    pub fn new(uri: Uri, log: Arc<RunLog>) -> Self {
        OpenAiSdk {
            client: CountAttempts::new(hyper_client(), log.clone()),
            uri,
            log,
        }
    }
}

impl Strategy for OpenAiSdk {
    fn send_body(&self, body: Bytes) -> PendingOutcome {
        let (client, uri, log) = (self.client.clone(), self.uri.clone(), self.log.clone());
        Box::pin(async move {
            let mut retries = 0;
            loop {
                let request = chat_request_with(&uri, body.clone());
                let (status, hint, read) = match client.clone().oneshot(request).await {
                    Ok(response) => {
                        let (status, hint) = (response.status(), hint(response.headers()));
                        (
                            Some(status),
                            hint,
                            drain_body(response.into_body()).await.ok(),
                        )
                    }
                    Err(_) => (None, None, None),
                };
                let retryable = status.is_none_or(should_retry);
                if !retryable || retries == MAX_RETRIES {
                    return match status {
                        Some(status) => log.outcome(status, read.ok_or(()), ""),
                        None => log.failed("connection error"),
                    };
                }
                tokio::time::sleep(delay(hint, retries)).await;
                retries += 1;
            }
        })
    }
}

/// The statuses the SDK retries.
fn should_retry(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// The server's hint: `retry-after-ms` (milliseconds), else `Retry-After` (seconds); decimals
/// accepted, anything unparsable ignored.
fn hint(headers: &HeaderMap) -> Option<f64> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))
}

/// The wait before retry number `retries + 1`.
fn delay(hint: Option<f64>, retries: u32) -> Duration {
    if let Some(hint) = hint.filter(|&h| h > 0.0 && h <= MAX_HINT.as_secs_f64()) {
        return Duration::from_secs_f64(hint);
    }
    let backoff = (INITIAL_DELAY * 2f64.powi(retries as i32)).min(MAX_DELAY);
    Duration::from_secs_f64(backoff * (1.0 - 0.25 * fastrand::f64()))
}
