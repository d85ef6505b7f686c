//! The rate-limit gate alone over the scripted [`Mock`]: building it, tripping its breaker,
//! and callers sent at once.

use std::sync::Arc;

use tokio::{task::JoinHandle, time::Instant};
use tower::{Layer, Service};
use tower_reliability::{
    rate_limit::{LocalStore, RateLimitStore, Signal},
    RateLimitAware,
};

use super::{call, post, Mock};

/// The gate over `mock`, keeping its state in `store`.
pub fn gate_over(store: &Arc<LocalStore>, mock: &Mock) -> <RateLimitAware as Layer<Mock>>::Service {
    RateLimitAware::with_store(store.clone()).layer(mock.clone())
}

/// Records failures until the breaker trips (however many its policy needs).
pub fn trip(store: &LocalStore, now: Instant) {
    for _ in 0..10_000 {
        if store.breaker_engaged() {
            return;
        }
        store.record(now, Signal::Failing, None);
    }
    panic!("the breaker never tripped");
}

/// `n` callers, each on its own task with its own clone of `svc`, sending `post("{}")`.
pub fn spawn_calls<S>(svc: &S, n: usize) -> Vec<JoinHandle<Result<(), S::Error>>>
where
    S: Service<http::Request<http_body_util::Full<bytes::Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send + 'static,
{
    (0..n)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { call(&mut svc, post("{}")).await.map(|_| ()) })
        })
        .collect()
}
