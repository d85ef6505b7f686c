//! What happened in one worker process, recorded as it happens: every attempt that reached the
//! wire (when its answer came, its status) and every logical request (arrival, end, outcome).

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

/// How a logical request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response, body read.
    Success,
    /// Gave up before the deadline: a final error status, an error, or a refusal to wait.
    Failed,
    /// The deadline passed first.
    TimedOut,
}

/// One attempt: when its answer came (seconds since the common start) and its status (0: no
/// response, e.g. a connection error or an attempt abandoned in flight).
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord {
    pub at: f64,
    pub status: u16,
}

/// One logical request, seconds since the common start.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    pub arrived: f64,
    pub finished: f64,
    pub outcome: Outcome,
}

/// The log of one worker.
#[derive(Debug)]
pub struct Log {
    start: Instant,
    attempts: Mutex<Vec<AttemptRecord>>,
    requests: Mutex<Vec<RequestRecord>>,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Log {
    /// An empty log whose clock starts at `start` (may be in the future: times before it are
    /// negative).
    pub fn new(start: Instant) -> Arc<Self> {
        Arc::new(Log {
            start,
            attempts: Mutex::default(),
            requests: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    /// Seconds since the common start.
    pub fn now(&self) -> f64 {
        let now = Instant::now();
        if now >= self.start {
            (now - self.start).as_secs_f64()
        } else {
            -(self.start - now).as_secs_f64()
        }
    }

    pub fn attempt(&self, status: u16) {
        let at = self.now();
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.push(AttemptRecord { at, status });
        }
    }

    pub fn request(&self, arrived: f64, outcome: Outcome) {
        let finished = self.now();
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(RequestRecord {
                arrived,
                finished,
                outcome,
            });
        }
    }

    pub fn failure(&self, reason: impl Into<String>) {
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry(reason.into()).or_insert(0) += 1;
        }
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.attempts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Records every call of `inner` (one attempt on the wire) in a [`Log`]: put it directly around
/// the HTTP client, under the preset.
#[derive(Debug, Clone)]
pub struct CountAttempts<S> {
    inner: S,
    log: Arc<Log>,
}

impl<S> CountAttempts<S> {
    pub fn new(inner: S, log: Arc<Log>) -> Self {
        CountAttempts { inner, log }
    }
}

impl<S, B, ResB> Service<Request<B>> for CountAttempts<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CountedAttempt<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        CountedAttempt {
            inner: self.inner.call(request),
            log: Some(self.log.clone()),
        }
    }
}

pin_project! {
    /// One counted attempt; dropped before it ends, it counts as "no response".
    pub struct CountedAttempt<F> {
        #[pin]
        inner: F,
        log: Option<Arc<Log>>,
    }

    impl<F> PinnedDrop for CountedAttempt<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(log) = this.project().log.take() {
                log.attempt(0);
            }
        }
    }
}

impl<F, ResB, E> Future for CountedAttempt<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(log) = this.log.take() {
            log.attempt(result.as_ref().map_or(0, |r| r.status().as_u16()));
        }
        Poll::Ready(result)
    }
}
