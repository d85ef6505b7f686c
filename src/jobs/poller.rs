//! [`JobPoller`]: the configuration of a wait, and the wait itself.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{response::Parts, Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::{
    error::{JobError, JobErrorKind, PollFailure},
    poll::{self, Polled},
    status::JobStatus,
};
use crate::{
    backoff::{Jitter, RandomSource, Schedule},
    classify::{Standard, StatusSet},
    context::Deadline,
    error::BoxError,
    headers,
};

/// Polls a job-status endpoint through a tower service until the job reaches a terminal state.
///
/// It is built from two functions: `make_request`, which builds one status request (called once
/// per poll: requests are not `Clone`), and `interpret`, which reads a successful answer into a
/// [`JobStatus`] (such as [`fireworks_json`](super::fireworks_json)). Everything else has a
/// default:
///
/// | setting | default | what it bounds |
/// |---|---|---|
/// | [`schedule`](Self::schedule) | `1 s * 2^n`, equal jitter, capped at 30 s | the wait between polls |
/// | [`deadline`](Self::deadline) | 24 h (a batch's completion window) | the whole wait |
/// | [`max_consecutive_failures`](Self::max_consecutive_failures) | 5 | transient failures in a row |
/// | [`retry_statuses`](Self::retry_statuses) | 429, 500, 502, 503, 504 | what counts as transient |
/// | [`max_body_bytes`](Self::max_body_bytes) | 1 MiB | one status body |
/// | [`on_progress`](Self::on_progress) | nothing | sees every status read |
///
/// See the [module docs](super) for why these choices and how it behaves.
#[derive(Clone)]
pub struct JobPoller<R, I, P = fn(&JobStatus)> {
    make_request: R,
    interpret: I,
    on_progress: P,
    schedule: Schedule,
    random: RandomSource,
    deadline: Duration,
    max_failures: u32,
    // The guide's classification, with the statuses of `retry_statuses`.
    policy: Standard,
    max_body_bytes: usize,
}

fn no_progress(_: &JobStatus) {}

impl<R, I> JobPoller<R, I> {
    /// A poller that sends `make_request()` and reads answers with `interpret`, with the
    /// defaults above.
    pub fn new<B, E>(make_request: R, interpret: I) -> Self
    where
        R: FnMut() -> Request<B>,
        I: FnMut(&Parts, &Bytes) -> Result<JobStatus, E>,
    {
        JobPoller {
            make_request,
            interpret,
            on_progress: no_progress,
            schedule: Schedule::default().with_jitter(Jitter::Equal),
            random: RandomSource::default(),
            deadline: Duration::from_secs(24 * 60 * 60),
            max_failures: 5,
            policy: Standard::new(),
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl<R, I, P> JobPoller<R, I, P> {
    /// Calls `on_progress` with every status read, in order, the final one included, before the
    /// next wait starts.
    ///
    /// A callback rather than a channel: it runs inline in the wait's own future, so it sees
    /// every status exactly once and in order, costs nothing when unused, and needs no task or
    /// buffer. It should be quick and must not block. To publish the latest status to other
    /// tasks, send it on from here, for example into a `tokio::sync::watch` channel:
    /// `move |status| { tx.send_replace(Some(status.clone())); }`.
    pub fn on_progress<P2>(self, on_progress: P2) -> JobPoller<R, I, P2>
    where
        P2: FnMut(&JobStatus),
    {
        JobPoller {
            make_request: self.make_request,
            interpret: self.interpret,
            on_progress,
            schedule: self.schedule,
            random: self.random,
            deadline: self.deadline,
            max_failures: self.max_failures,
            policy: self.policy,
            max_body_bytes: self.max_body_bytes,
        }
    }

    /// Replaces the schedule of waits between polls: wait `n` (from 0) is
    /// `schedule.delay(n, ..)`, so [`Schedule::base`] is the first interval's scale and
    /// [`Schedule::cap`] the longest interval.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The scale of the first interval (the schedule's base; default 1 s).
    pub fn first_interval(mut self, interval: Duration) -> Self {
        self.schedule = self.schedule.with_base(interval);
        self
    }

    /// The longest interval between polls (the schedule's cap; default 30 s).
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.schedule = self.schedule.with_cap(interval);
        self
    }

    /// The jitter mode of the intervals (default [`Jitter::Equal`]: at least half the nominal
    /// interval, so many pollers spread out without any of them polling in a burst).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.schedule = self.schedule.with_jitter(jitter);
        self
    }

    /// Makes the jitter reproducible.
    pub fn seed(mut self, seed: u64) -> Self {
        self.random = RandomSource::seeded(seed);
        self
    }

    /// Uses this source of randomness for the jitter.
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// The longest the whole wait may take, counted from each call of
    /// [`poll_until_done`](Self::poll_until_done) (default 24 h). Each poll's own time limit is
    /// the stack's business (its [`TimeoutByWorkload`](crate::TimeoutByWorkload)); this one
    /// bounds them all. The layers of this crate see it as each poll's [`Deadline`], published
    /// around the call as `TimeoutByWorkload` publishes its own, so the earlier of the two wins
    /// (a `Deadline` you put in the request's extensions is only ever made earlier).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Gives up after this many transient poll failures in a row (default 5, at least 1). A
    /// successful poll starts the count again.
    pub fn max_consecutive_failures(mut self, failures: u32) -> Self {
        self.max_failures = failures.max(1);
        self
    }

    /// The statuses that count as a transient failure (default [`StatusSet::GUIDE`]); any other
    /// status that is not a success ends the wait as
    /// [`Rejected`](super::JobErrorKind::Rejected). Statuses are judged by
    /// [`classify::Standard`](crate::classify::Standard), as the retry layer judges them: a
    /// response with `x-should-retry: true` is transient too.
    pub fn retry_statuses(mut self, statuses: StatusSet) -> Self {
        self.policy = self.policy.statuses(statuses);
        self
    }

    /// The largest status body read (default 1 MiB).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The schedule of waits between polls.
    pub fn current_schedule(&self) -> Schedule {
        self.schedule
    }

    /// Polls through `service` until the job reaches a terminal state, and returns that status
    /// (a [`Failed`](super::JobState::Failed) or [`Cancelled`](super::JobState::Cancelled) job
    /// included: the wait succeeded, the job did not).
    ///
    /// The first poll is sent at once; then each wait follows the schedule, stretched to a
    /// server's `retry-after-ms` / `Retry-After` when that is longer: on a job still running
    /// (`200`/`202` with the hint, the long-running-operation pattern) as after a transient
    /// failure (where the rate-limit gate's wait counts too).
    ///
    /// **Stateless, so resumable.** Everything this wait knows lives in its future: the job's
    /// state lives on the server. Drop the future (a cancelled task, a `select!`, a restarted
    /// process) and call this again for the same job: it polls at once, resumes from wherever
    /// the job is, and its deadline and intervals start again. Dropping it leaves nothing behind:
    /// no task, no timer, no request in flight.
    ///
    /// **Deadline.** The call returns [`Deadline`](super::JobErrorKind::Deadline) by the
    /// deadline: a poll in flight when it passes is dropped, and a wait that would end at or past
    /// it is not started (as the backoff layer refuses a retry it could not make in time), so
    /// the error comes as soon as no further poll can be made.
    ///
    /// # Errors
    ///
    /// See [`JobError`]: the deadline, too many transient failures in a row, a status another
    /// poll cannot fix, an oversized body, or the interpreter's error.
    pub async fn poll_until_done<S, B, ResB, E>(
        &mut self,
        service: &mut S,
    ) -> Result<JobStatus, JobError<E>>
    where
        R: FnMut() -> Request<B>,
        I: FnMut(&Parts, &Bytes) -> Result<JobStatus, E>,
        P: FnMut(&JobStatus),
        S: Service<Request<B>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ResB: http_body::Body,
        ResB::Error: Into<BoxError>,
    {
        let deadline = Instant::now().checked_add(self.deadline).map(Deadline::at);
        let mut last: Option<JobStatus> = None;
        let mut polls = 0u32;
        let mut failures = 0u32;
        let mut waits = 0u32;
        let mut previous_wait = None;
        loop {
            polls = polls.saturating_add(1);
            let poll = poll::once(
                service,
                (self.make_request)(),
                deadline,
                &self.policy,
                self.max_body_bytes,
            );
            let polled = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline.instant(), poll).await {
                    Ok(polled) => polled,
                    Err(_) => return Err(JobError::new(JobErrorKind::Deadline, last, polls)),
                },
                None => poll.await,
            };
            let hint = match polled {
                Polled::Answer(parts, body) => {
                    let status = match (self.interpret)(&parts, &body) {
                        Ok(status) => status,
                        Err(e) => {
                            return Err(JobError::new(JobErrorKind::Interpret(e), last, polls))
                        }
                    };
                    failures = 0;
                    (self.on_progress)(&status);
                    if status.is_terminal() {
                        return Ok(status);
                    }
                    last = Some(status);
                    // The long-running-operation pattern: `202 Accepted` with `Retry-After`
                    // says when to look again.
                    headers::retry_after(&parts.headers, SystemTime::now())
                }
                Polled::Failed(failure, hint) => {
                    failures = failures.saturating_add(1);
                    if deadline.is_some_and(|d| Instant::now() >= d.instant()) {
                        return Err(JobError::new(JobErrorKind::Deadline, last, polls));
                    }
                    if let Some(kind) = self.too_many(failure, failures, polls) {
                        return Err(JobError::new(kind, last, polls));
                    }
                    hint
                }
                Polled::Refused(kind) => return Err(JobError::new(kind, last, polls)),
            };
            let wait = self.next_wait(waits, previous_wait, hint);
            waits = waits.saturating_add(1);
            previous_wait = Some(wait);
            if !sleep_before(deadline, wait).await {
                return Err(JobError::new(JobErrorKind::Deadline, last, polls));
            }
        }
    }

    /// A failed poll, the `failures`-th in a row: logged, and the end once there are too many.
    fn too_many<E>(
        &self,
        failure: PollFailure,
        failures: u32,
        polls: u32,
    ) -> Option<JobErrorKind<E>> {
        tracing::debug!(
            target: "tower_reliability",
            poll = polls,
            failures,
            error = %failure,
            "job status poll failed"
        );
        (failures >= self.max_failures).then_some(JobErrorKind::TooManyFailures {
            failures,
            last: failure,
        })
    }

    /// The wait before the next poll: the schedule's, or the server's hint when it is longer.
    fn next_wait(
        &mut self,
        waits: u32,
        previous_wait: Option<Duration>,
        hint: Option<Duration>,
    ) -> Duration {
        let computed = self
            .schedule
            .delay(waits, previous_wait, self.random.unit());
        hint.map_or(computed, |hint| hint.max(computed))
    }
}

/// Sleeps `wait` if it ends before `deadline` (`true`); `false` at once otherwise.
async fn sleep_before(deadline: Option<Deadline>, wait: Duration) -> bool {
    match deadline {
        Some(deadline) => match Instant::now().checked_add(wait) {
            Some(next) if next < deadline.instant() => {
                tokio::time::sleep_until(next).await;
                true
            }
            _ => false,
        },
        None => {
            tokio::time::sleep(wait).await;
            true
        }
    }
}

impl<R, I, P> fmt::Debug for JobPoller<R, I, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPoller")
            .field("schedule", &self.schedule)
            .field("deadline", &self.deadline)
            .field("max_consecutive_failures", &self.max_failures)
            .field("retry_statuses", &self.policy.retried_statuses())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}
