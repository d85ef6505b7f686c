//! The state shared by the server handle, its accept loop and every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use http::HeaderMap;
use tokio::sync::watch;

use super::body::StallUntil;
use super::config::{RateLimitConfig, ServerConfig};
use super::faults::{Fault, FaultMix, FaultSource};
use super::jobs::JobStore;
use super::limiters::Limiters;
use super::rate_limit::TokenBucket;
use super::stats::StatsRecorder;

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Configuration, counters and the knobs tests turn at run time.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) stats: StatsRecorder,
    pub(crate) jobs: JobStore,
    pub(crate) limits: Limiters,
    faults: Mutex<FaultSource>,
    bucket: Mutex<Option<TokenBucket>>,
    outage: Mutex<Option<u16>>,
    completions: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig, shutdown: watch::Receiver<bool>) -> Self {
        let faults = FaultSource::new(config.fault_mix, config.script.iter().cloned());
        let bucket = config.rate_limit.map(TokenBucket::new);
        let limits = Limiters::new(&config);
        Self {
            config,
            stats: StatsRecorder::default(),
            jobs: JobStore::default(),
            limits,
            faults: Mutex::new(faults),
            bucket: Mutex::new(bucket),
            outage: Mutex::new(None),
            completions: AtomicU64::new(0),
            shutdown,
        }
    }

    pub(crate) fn next_fault(&self) -> Fault {
        lock(&self.faults).next_fault()
    }

    pub(crate) fn push_script(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.faults).push(faults);
    }

    pub(crate) fn clear_script(&self) {
        lock(&self.faults).clear();
    }

    pub(crate) fn script_len(&self) -> usize {
        lock(&self.faults).len()
    }

    pub(crate) fn set_fault_mix(&self, mix: FaultMix) {
        lock(&self.faults).set_mix(mix);
    }

    /// Takes a rate-limit token: `None` without a limit, else the bucket's verdict.
    pub(crate) fn acquire(&self) -> Option<Result<HeaderMap, HeaderMap>> {
        lock(&self.bucket).as_mut().map(TokenBucket::acquire)
    }

    pub(crate) fn set_rate_limit(&self, limit: Option<RateLimitConfig>) {
        *lock(&self.bucket) = limit.map(TokenBucket::new);
    }

    pub(crate) fn outage(&self) -> Option<u16> {
        *lock(&self.outage)
    }

    pub(crate) fn set_outage(&self, status: Option<u16>) {
        *lock(&self.outage) = status;
    }

    /// A fresh completion id, `chatcmpl-<n>`.
    pub(crate) fn completion_id(&self) -> String {
        let n = self.completions.fetch_add(1, Ordering::Relaxed) + 1;
        format!("chatcmpl-{n:012x}")
    }

    /// Resolves when the server starts shutting down (or is gone).
    pub(crate) fn stall_until(&self) -> StallUntil {
        let mut shutdown = self.shutdown.clone();
        Box::pin(async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        })
    }
}
