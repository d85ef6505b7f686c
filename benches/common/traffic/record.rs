//! What happened during a run, recorded as it happens and summarised afterwards: every attempt
//! that reached the wire (when its answer came, its status) and every logical request (arrival,
//! end, outcome), with why those that failed did.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode};
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

/// One attempt: when its answer (or failure) came, seconds since the start, and its status (0:
/// no response, e.g. a connection error or an attempt abandoned in flight).
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord {
    pub at: f64,
    pub status: u16,
}

/// One logical request: when it arrived and ended (seconds since the start), and how.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    pub arrived: f64,
    pub finished: f64,
    pub outcome: Outcome,
}

impl RequestRecord {
    /// Seconds from arrival to the end.
    pub fn latency(&self) -> f64 {
        self.finished - self.arrived
    }
}

/// The log of one client in one run (a storm's strategy, a fleet's worker).
#[derive(Debug)]
pub struct RunLog {
    start: Instant,
    attempts: Mutex<Vec<AttemptRecord>>,
    requests: Mutex<Vec<RequestRecord>>,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl RunLog {
    /// An empty log whose clock starts at `start` (may be in the future: times before it are
    /// negative).
    pub fn new(start: Instant) -> Arc<Self> {
        Arc::new(RunLog {
            start,
            attempts: Mutex::default(),
            requests: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    /// Seconds since the start.
    pub fn now(&self) -> f64 {
        let now = Instant::now();
        if now >= self.start {
            (now - self.start).as_secs_f64()
        } else {
            -(self.start - now).as_secs_f64()
        }
    }

    /// Records an attempt that just ended with `status` (0: no response).
    pub fn attempt(&self, status: u16) {
        let at = self.now();
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.push(AttemptRecord { at, status });
        }
    }

    /// Records a logical request that arrived at `arrived` and just ended.
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

    /// Records why a request failed (a final status, an error kind), for the breakdown, and
    /// fails it.
    pub fn failed(&self, reason: impl Into<String>) -> Outcome {
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry(reason.into()).or_insert(0) += 1;
        }
        Outcome::Failed
    }

    /// What a response means once its body was read (`read`): 2xx is a success, anything else a
    /// failure, whose reason (the status, and `detail` if any) is recorded.
    pub fn outcome<E>(&self, status: StatusCode, read: Result<usize, E>, detail: &str) -> Outcome {
        match (status.is_success(), read) {
            (true, Ok(_)) => Outcome::Success,
            (true, Err(_)) => self.failed("response body broke off"),
            (false, _) => self.failed(format!("final {}{detail}", status.as_u16())),
        }
    }

    /// How many requests failed for each reason.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.attempts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Every finished request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A tower layer's service that records every call of `inner` (one attempt on the wire) in a
/// [`RunLog`]: put it directly around the HTTP client, under any retry logic.
#[derive(Debug, Clone)]
pub struct CountAttempts<S> {
    inner: S,
    log: Arc<RunLog>,
}

impl<S> CountAttempts<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, log: Arc<RunLog>) -> Self {
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
    /// The future of one counted attempt; dropped before it ends, it counts as "no response".
    pub struct CountedAttempt<F> {
        #[pin]
        inner: F,
        log: Option<Arc<RunLog>>,
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
