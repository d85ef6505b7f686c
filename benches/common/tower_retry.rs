//! The retry stack a user writes today with tower 0.5 alone: `tower::retry::Retry` with a
//! `Policy` that rebuilds the buffered request for each attempt, waits with
//! `ExponentialBackoffMaker` and spends a `TpsBudget`, under `tower::timeout::Timeout`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{
    retry::{
        backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff},
        budget::{Budget, TpsBudget},
        Policy, Retry,
    },
    timeout::Timeout,
    util::rng::HasherRng,
};

/// The guide's retryable statuses: 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Retries 429/5xx responses and every error, up to `max_attempts` attempts in all, with
/// tower's exponential backoff (1 s minimum, 30 s cap, jitter up to 100 % of the base) and
/// tower's default `TpsBudget` (10 retries/s floor plus 20 % of recent requests).
///
/// As in any tower `Retry`, the policy is cloned per request: every request gets a copy of the
/// same backoff, random state included.
#[derive(Clone, Debug)]
pub struct TowerRetryPolicy {
    attempts_left: u32,
    backoff: ExponentialBackoff,
    budget: Arc<TpsBudget>,
}

impl TowerRetryPolicy {
    /// `max_attempts` attempts in all (the first included).
    pub fn new(max_attempts: u32) -> Self {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            1.0,
            HasherRng::default(),
        )
        .expect("valid backoff parameters");
        TowerRetryPolicy {
            attempts_left: max_attempts,
            backoff: maker.make_backoff(),
            budget: Arc::new(TpsBudget::default()),
        }
    }
}

impl<ResB, E> Policy<Request<Full<Bytes>>, Response<ResB>, E> for TowerRetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<ResB>, E>,
    ) -> Option<Self::Future> {
        let retryable = match result {
            Ok(response) => is_retryable_status(response.status()),
            Err(_) => true,
        };
        if !retryable {
            self.budget.deposit();
            return None;
        }
        if self.attempts_left <= 1 || !self.budget.withdraw() {
            return None;
        }
        self.attempts_left -= 1;
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, request: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

/// `Timeout(total)` over `Retry(policy)` over `inner`: the whole request, retries included,
/// bounded by `total`.
pub fn tower_retry_stack<S>(
    inner: S,
    max_attempts: u32,
    total: Duration,
) -> Timeout<Retry<TowerRetryPolicy, S>> {
    Timeout::new(
        Retry::new(TowerRetryPolicy::new(max_attempts), inner),
        total,
    )
}
