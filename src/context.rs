//! How the layers talk to each other: the deadline, the retry context and the retry report.
//!
//! Each layer works alone or under another crate's layers, so nothing here is private plumbing:
//!
//! - [`Deadline`]: when the whole request must be done. [`TimeoutByWorkload`] publishes it to
//!   the layers inside it; [`JitteredBackoff`] and [`RateLimitAware`] never start a wait that
//!   would end past it. Read it with [`Deadline::of`].
//! - [`RetryContext`]: present on the request of every *retry* (never on a first attempt):
//!   which attempt this is, how the previous one ended, and the wait the server asked for.
//! - [`RetryReport`]: put on a response's extensions when it took more than one attempt or when
//!   retrying stopped early, so callers can see what happened.
//!
//! ## How the deadline travels
//!
//! On the success path every allocation counts, and an extension insert costs up to three. So
//! [`TimeoutByWorkload`] publishes its deadline *ambiently*: while the layers inside it run in
//! its future (a plain tower stack, reqwest-middleware, axum handlers), [`Deadline::of`] sees it
//! without any allocation. A `Deadline` in the request's extensions takes precedence; set
//! [`TimeoutByWorkload::deadline_in_extensions`] when a layer inside hops to another task (for
//! example `tower::buffer`), or insert one yourself.
//!
//! ## The refund contract
//!
//! [`RetryOnStatus`] takes a retry's cost from its [`RetryBudget`] when it decides to retry.
//! The cost comes back when, and only when, that retry never left: it was not handed to the
//! service below, or a layer below still held it when its outcome came (or when the caller
//! went away). A layer that holds a request before sending it tells the retry layer so in one
//! way only:
//!
//! 1. while it holds a retry (one whose request carries a [`RetryContext`]), it keeps the
//!    [`WaitGuard`] of [`RetryContext::begin_wait`], and drops it when it hands the request on;
//! 2. when it gives up on the request without sending it, it fails with
//!    [`Error::not_sent`](crate::Error::not_sent) saying why.
//!
//! [`JitteredBackoff`] and [`RateLimitAware`] do both. Then whatever sits between them and the
//! retry layer, the retry layer is right: a foreign error type that keeps ours as its source
//! still says "not sent" ([`Error::not_sent_reason`](crate::Error::not_sent_reason)); a
//! foreign `tower::timeout` that fires while the backoff is still waiting fails an attempt that
//! never left (the guard is still held when its error arrives), so the retry layer hands back
//! the last response and refunds the retry instead of counting a timeout; a caller that goes
//! away mid-wait gets the cost back. An attempt that did leave keeps its cost, whatever its
//! outcome, a deadline included.
//!
//! [`TimeoutByWorkload`]: crate::TimeoutByWorkload
//! [`TimeoutByWorkload::deadline_in_extensions`]: crate::TimeoutByWorkload::deadline_in_extensions
//! [`RetryOnStatus`]: crate::RetryOnStatus
//! [`RetryBudget`]: crate::retry::RetryBudget
//! [`JitteredBackoff`]: crate::JitteredBackoff
//! [`RateLimitAware`]: crate::RateLimitAware

use std::{
    cell::Cell,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use http::StatusCode;
use tokio::time::Instant;

use crate::{
    error::ErrorKind,
    scoped::{self, Published},
    workload::Workload,
};

thread_local! {
    /// What the innermost running [`Ambient::scope`] published on this thread (see
    /// [`crate::scoped`]).
    static AMBIENT: Cell<Option<Ambient>> = const { Cell::new(None) };
}

/// What an enclosing [`TimeoutByWorkload`](crate::TimeoutByWorkload) publishes to the layers
/// inside it while they run in its future: the deadline, and the request's workload (which
/// [`RateLimitAware`](crate::RateLimitAware) reads for its priority).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ambient {
    pub(crate) deadline: Deadline,
    pub(crate) workload: Option<Workload>,
}

impl Ambient {
    /// Runs `f` with this published: the earlier of its deadline and any enclosing one, and
    /// its workload (else the enclosing one).
    #[inline]
    pub(crate) fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        let _restore = self.enter();
        f()
    }

    /// Publishes this until the returned guard is dropped, as [`scope`](Self::scope) does
    /// for a closure (a caller that builds a large value inside avoids moving it out).
    #[inline]
    pub(crate) fn enter(self) -> impl Drop {
        let effective = match Ambient::current() {
            Some(outer) => Ambient {
                deadline: self.deadline.min(outer.deadline),
                workload: self.workload.or(outer.workload),
            },
            None => self,
        };
        Published::set(&AMBIENT, Some(effective))
    }

    /// What the innermost running scope published, if any.
    fn current() -> Option<Ambient> {
        scoped::current(&AMBIENT)
    }

    /// The workload published by an enclosing [`TimeoutByWorkload`](crate::TimeoutByWorkload).
    pub(crate) fn workload() -> Option<Workload> {
        Ambient::current().and_then(|a| a.workload)
    }
}

/// The instant by which a request must be done (every attempt and every wait included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline at the given instant.
    pub fn at(instant: Instant) -> Self {
        Deadline(instant)
    }

    /// A deadline `after` from now.
    pub fn after(after: Duration) -> Self {
        Deadline(crate::time::after(Instant::now(), after))
    }

    /// The instant.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left from `now` (zero once passed).
    pub fn remaining(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// The deadline of a request: the earlier of its `Deadline` extension and the deadline
    /// published by an enclosing [`TimeoutByWorkload`](crate::TimeoutByWorkload), if any.
    pub fn of<B>(request: &http::Request<B>) -> Option<Deadline> {
        let explicit = request.extensions().get::<Deadline>().copied();
        Deadline::earliest(explicit, Deadline::ambient())
    }

    /// The deadline published by an enclosing [`TimeoutByWorkload`](crate::TimeoutByWorkload),
    /// if this code runs inside one.
    pub fn ambient() -> Option<Deadline> {
        Ambient::current().map(|a| a.deadline)
    }

    /// Runs `f` with this deadline published ambiently (the earlier of it and any enclosing one).
    pub(crate) fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        Ambient {
            deadline: self,
            workload: None,
        }
        .scope(f)
    }

    /// The earlier of two optional deadlines.
    pub(crate) fn earliest(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

/// How the previous attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A response with this (retryable) status.
    Status(StatusCode),
    /// An error of this kind.
    Error(ErrorKind),
}

/// Put on the request of every retry by [`RetryOnStatus`](crate::RetryOnStatus).
///
/// Clones share one wait log, so the layers inside can record the waits they made and the
/// retry layer (and [`JitteredBackoff`](crate::JitteredBackoff)'s decorrelated jitter) can read
/// them back.
#[derive(Debug, Clone)]
pub struct RetryContext {
    attempt: u32,
    previous: Outcome,
    server_hint: Option<Duration>,
    waits: Arc<WaitLog>,
}

#[derive(Debug, Default)]
struct WaitLog {
    last_nanos: AtomicU64,
    total_nanos: AtomicU64,
    /// Waits in progress in the layers inside (backoff, gate): the attempt is not sent yet.
    waiting: std::sync::atomic::AtomicU32,
}

/// Marks a wait in progress on a [`RetryContext`] until dropped: while one is alive, the
/// attempt has not been handed to the client, so its outcome (or a caller that goes away)
/// gives the retry's budget cost back. See "The refund contract" in the
/// [module docs](crate::context).
#[derive(Debug)]
pub struct WaitGuard {
    waits: Arc<WaitLog>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waits.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryContext {
    /// A context for attempt number `attempt` (2 for the first retry). Only the retry layer
    /// makes one.
    pub(crate) fn new(attempt: u32, previous: Outcome, server_hint: Option<Duration>) -> Self {
        RetryContext {
            attempt,
            previous,
            server_hint,
            waits: Arc::default(),
        }
    }

    /// The same logical request's next attempt: keeps the wait log.
    pub(crate) fn next(&self, previous: Outcome, server_hint: Option<Duration>) -> Self {
        RetryContext {
            attempt: self.attempt + 1,
            previous,
            server_hint,
            waits: self.waits.clone(),
        }
    }

    /// The number of this attempt: 2 for the first retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How the previous attempt ended.
    pub fn previous(&self) -> Outcome {
        self.previous
    }

    /// The wait the server asked for on the previous attempt (`retry-after-ms` / `Retry-After`),
    /// uncapped.
    pub fn server_hint(&self) -> Option<Duration> {
        self.server_hint
    }

    /// Records a wait made before this attempt.
    pub fn record_wait(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.waits.last_nanos.store(nanos, Ordering::Relaxed);
        self.waits.total_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The last wait recorded for this logical request.
    pub fn last_wait(&self) -> Option<Duration> {
        match self.waits.last_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Marks a wait in progress before this attempt is sent: hold the guard while holding the
    /// request, drop it when handing the request on. If you give the request up instead, fail
    /// with [`Error::not_sent`](crate::Error::not_sent). This is the whole refund contract
    /// (see the [module docs](crate::context)).
    ///
    /// A layer of your own that holds requests (a queue, a wait of its own) does this in its
    /// `call`:
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::Request;
    /// use tower_reliability::context::RetryContext;
    ///
    /// async fn hold_then_send<B>(request: Request<B>) -> Request<B> {
    ///     // Only retries carry a context: a first attempt has no budget cost to give back.
    ///     let guard = request.extensions().get::<RetryContext>().map(RetryContext::begin_wait);
    ///     tokio::time::sleep(Duration::from_millis(10)).await; // held: not sent yet
    ///     drop(guard); // handing the request on
    ///     request
    /// }
    /// ```
    pub fn begin_wait(&self) -> WaitGuard {
        self.waits.waiting.fetch_add(1, Ordering::AcqRel);
        WaitGuard {
            waits: self.waits.clone(),
        }
    }

    /// Whether a layer inside is still waiting before sending this attempt.
    pub fn is_waiting(&self) -> bool {
        self.waits.waiting.load(Ordering::Acquire) > 0
    }

    /// All waits recorded for this logical request.
    pub fn total_wait(&self) -> Duration {
        Duration::from_nanos(self.waits.total_nanos.load(Ordering::Relaxed))
    }
}

/// Why [`RetryOnStatus`](crate::RetryOnStatus) handed back a retryable outcome without retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The attempt cap was reached.
    AttemptsExhausted,
    /// The shared retry budget was empty (an outage must not multiply load).
    BudgetExhausted,
    /// The request body was larger than the replay cap, so it was sent once.
    BodyNotReplayable,
    /// The retryable response's body was too large or too slow to set aside.
    ResponseNotDrainable,
    /// The next attempt could not start in time: its wait would pass the deadline, the server
    /// asked for a wait above the cap, or the rate-limit gate stayed closed.
    NextAttemptRefused,
    /// The server said `x-should-retry: false`.
    ServerSaidNo,
    /// The deadline came while a later attempt was in flight or waiting: the last real
    /// response is handed back instead of a timeout.
    DeadlineReached,
}

/// Put on the response's extensions by [`RetryOnStatus`](crate::RetryOnStatus) when the request
/// took more than one attempt, or when a retryable response was handed back without retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryReport {
    /// Attempts sent (1 = no retry).
    pub attempts: u32,
    /// Total time spent waiting between attempts, as recorded by the layers inside.
    pub waited: Duration,
    /// Why retrying stopped with a retryable outcome, if it did.
    pub stopped: Option<StopReason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ambient_deadline_nests_to_the_earliest() {
        assert_eq!(Deadline::ambient(), None);
        let outer = Deadline::after(Duration::from_secs(10));
        let inner = Deadline::after(Duration::from_secs(20));
        outer.scope(|| {
            assert_eq!(Deadline::ambient(), Some(outer));
            inner.scope(|| assert_eq!(Deadline::ambient(), Some(outer)));
            let req = http::Request::new(());
            assert_eq!(Deadline::of(&req), Some(outer));
        });
        let mut req = http::Request::new(());
        req.extensions_mut().insert(inner);
        assert_eq!(Deadline::of(&req), Some(inner));
        // An explicit deadline later than the enclosing one does not hide it.
        outer.scope(|| assert_eq!(Deadline::of(&req), Some(outer)));
    }

    /// A scope puts back what enclosed it when it ends, also when its code panics (a layer's
    /// `call` that panics inside `catch_unwind` must not leave its deadline published).
    #[tokio::test(start_paused = true)]
    async fn a_scope_restores_the_enclosing_one_on_exit_and_on_panic() {
        let outer = Deadline::after(Duration::from_secs(10));
        let inner = Deadline::after(Duration::from_secs(5));
        outer.scope(|| {
            inner.scope(|| assert_eq!(Deadline::ambient(), Some(inner)));
            assert_eq!(Deadline::ambient(), Some(outer), "restored on exit");
            let panicked = std::panic::catch_unwind(|| inner.scope(|| panic!("in the scope")));
            assert!(panicked.is_err());
            assert_eq!(Deadline::ambient(), Some(outer), "restored on unwind");
        });
        assert_eq!(Deadline::ambient(), None);
        let workload = Ambient {
            deadline: outer,
            workload: Some(Workload::BatchSubmit),
        };
        workload.scope(|| {
            inner.scope(|| assert_eq!(Ambient::workload(), Some(Workload::BatchSubmit)));
        });
        assert_eq!(Ambient::workload(), None);
    }

    /// Nothing published by one task's poll is seen by another task's: the value lives only
    /// while the scope's synchronous code runs.
    #[tokio::test(start_paused = true)]
    async fn a_scope_is_not_seen_outside_its_own_code() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let other = deadline.scope(|| tokio::spawn(async { Deadline::ambient() }));
        assert_eq!(other.await.expect("task"), None);
    }

    #[test]
    fn wait_log_is_shared_across_attempts() {
        let first = RetryContext::new(2, Outcome::Status(StatusCode::TOO_MANY_REQUESTS), None);
        first.record_wait(Duration::from_millis(1500));
        let second = first.next(Outcome::Error(ErrorKind::Connect), None);
        second.record_wait(Duration::from_millis(500));
        assert_eq!(second.attempt(), 3);
        assert_eq!(first.last_wait(), Some(Duration::from_millis(500)));
        assert_eq!(first.total_wait(), Duration::from_secs(2));
    }
}
