//! How a wait for a job can end without the job ending: [`JobError`].

use std::{error::Error as StdError, fmt};

use bytes::Bytes;
use http::StatusCode;

use super::status::JobStatus;
use crate::error::Error;

/// Why [`JobPoller::poll_until_done`](super::JobPoller::poll_until_done) stopped before the job
/// reached a terminal state.
///
/// A job that *ended* badly is not an error: a [`Failed`](super::JobState::Failed) or
/// [`Cancelled`](super::JobState::Cancelled) job is a successful wait, returned as `Ok`. An error
/// says that the *waiting* ended, and whether waiting again can help
/// ([`resumable`](Self::resumable)): the job lives on the server, so after a deadline or an
/// outage you can call `poll_until_done` again, now or after a restart, and pick up where it is.
///
/// `E` is the interpreter's error type.
#[derive(Debug)]
pub struct JobError<E> {
    kind: JobErrorKind<E>,
    last_status: Option<JobStatus>,
    polls: u32,
}

/// What ended a wait (see [`JobError`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum JobErrorKind<E> {
    /// The overall deadline passed, or the next poll could not have started before it.
    Deadline,
    /// This many polls in a row failed in a way another poll could fix; the last failure.
    TooManyFailures {
        /// Consecutive failed polls.
        failures: u32,
        /// How the last one failed.
        last: PollFailure,
    },
    /// The server answered a status another poll cannot fix (`401`: check the key, `404`: no
    /// such job), with the body it sent.
    Rejected {
        /// The status.
        status: StatusCode,
        /// The body: its first bytes up to the poller's body limit (what could be read of
        /// them, if it broke).
        body: Bytes,
    },
    /// A successful answer's body was larger than the poller's limit.
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The interpreter could not read a successful answer.
    Interpret(E),
}

/// How one poll failed in a way another poll can fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum PollFailure {
    /// The service failed (connect, timeout, reset) or the body could not be read. The error
    /// says whether the request reached the server ([`Error::reached_server`]).
    Error(Error),
    /// A retryable status (`429`, `5xx` by default) that outlived the stack's own retries.
    Status(StatusCode),
}

impl<E> JobError<E> {
    pub(super) fn new(kind: JobErrorKind<E>, last_status: Option<JobStatus>, polls: u32) -> Self {
        JobError {
            kind,
            last_status,
            polls,
        }
    }

    /// What ended the wait.
    pub fn kind(&self) -> &JobErrorKind<E> {
        &self.kind
    }

    /// What ended the wait, by value.
    pub fn into_kind(self) -> JobErrorKind<E> {
        self.kind
    }

    /// The last status read before the wait ended, if any poll succeeded.
    pub fn last_status(&self) -> Option<&JobStatus> {
        self.last_status.as_ref()
    }

    /// How many polls were sent (or started) in this wait.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// `true` for [`JobErrorKind::Deadline`].
    pub fn is_deadline(&self) -> bool {
        matches!(self.kind, JobErrorKind::Deadline)
    }

    /// Whether waiting again can reach a different end: `true` after a deadline or too many
    /// transient failures (the job may still be running), `false` when the server refused the
    /// poll or its answer could not be read (the same poll would fail the same way).
    pub fn resumable(&self) -> bool {
        matches!(
            self.kind,
            JobErrorKind::Deadline | JobErrorKind::TooManyFailures { .. }
        )
    }
}

impl<E: fmt::Display> fmt::Display for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JobErrorKind::Deadline => {
                f.write_str("job did not finish before the wait's deadline")?
            }
            JobErrorKind::TooManyFailures { failures, last } => write!(
                f,
                "{failures} job status polls failed in a row; last: {last}"
            )?,
            JobErrorKind::Rejected { status, .. } => {
                write!(f, "job status poll rejected with {status}")?
            }
            JobErrorKind::BodyTooLarge { limit } => {
                write!(f, "job status body larger than {limit} bytes")?
            }
            JobErrorKind::Interpret(e) => write!(f, "job status could not be read: {e}")?,
        }
        match &self.last_status {
            Some(last) => write!(
                f,
                " (after {} polls; last state {})",
                self.polls, last.raw_state
            ),
            None => write!(f, " (after {} polls)", self.polls),
        }
    }
}

impl<E: StdError + 'static> StdError for JobError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            JobErrorKind::TooManyFailures {
                last: PollFailure::Error(e),
                ..
            } => Some(e),
            JobErrorKind::Interpret(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for PollFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollFailure::Error(e) => {
                // The crate's error names the class of failure; its sources say what happened.
                write!(f, "{e}")?;
                let mut source = e.source();
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            PollFailure::Status(status) => write!(f, "status {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobState, JsonStatusError};

    #[test]
    fn display_source_and_resumability() {
        let last = JobStatus::new(JobState::Running, "JOB_STATE_RUNNING");
        let deadline: JobError<JsonStatusError> =
            JobError::new(JobErrorKind::Deadline, Some(last.clone()), 7);
        assert!(deadline.is_deadline() && deadline.resumable());
        assert_eq!(
            deadline.to_string(),
            "job did not finish before the wait's deadline (after 7 polls; last state JOB_STATE_RUNNING)"
        );
        let failures: JobError<JsonStatusError> = JobError::new(
            JobErrorKind::TooManyFailures {
                failures: 3,
                last: PollFailure::Error(Error::timeout(crate::error::TimeoutPhase::Attempt)),
            },
            None,
            3,
        );
        assert!(failures.resumable());
        assert!(failures.source().is_some());
        let interpret = JobError::new(JobErrorKind::Interpret(JsonStatusError::NoState), None, 1);
        assert!(!interpret.resumable());
        assert!(interpret.source().is_some());
        let rejected: JobError<JsonStatusError> = JobError::new(
            JobErrorKind::Rejected {
                status: StatusCode::NOT_FOUND,
                body: Bytes::new(),
            },
            Some(last),
            2,
        );
        assert!(!rejected.resumable() && rejected.source().is_none());
        assert!(rejected.to_string().contains("404"));
    }
}
