//! What one poll learned: the job's [`JobState`] and its [`JobStatus`].

use std::fmt;

use bytes::Bytes;

/// Where a job is in its life, reduced to what a waiting client must decide: keep waiting, or
/// stop.
///
/// The server's own name for the state is kept in [`JobStatus::raw_state`]: several server
/// states map to one variant here (`JOB_STATE_WRITING_RESULTS` is still [`Running`](Self::Running),
/// `JOB_STATE_EXPIRED` is [`Failed`](Self::Failed)), and the raw name tells them apart.
///
/// The variant is a plain `Copy` value rather than carrying the unknown name itself, so it can be
/// matched and compared cheaply; the name is in [`JobStatus::raw_state`] for every state alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Accepted, not started: queued, validating, being created, or re-queued after a
    /// preemption.
    Pending,
    /// Working: running, writing results, or being cancelled.
    Running,
    /// Done, successfully. Terminal.
    Succeeded,
    /// Done, unsuccessfully (failed or expired). Terminal.
    Failed,
    /// Cancelled. Terminal.
    Cancelled,
    /// A state this crate does not know. Not terminal: the poller keeps waiting (until its
    /// deadline), so a state a server adds tomorrow cannot end a wait early by mistake.
    Unknown,
}

impl JobState {
    /// Reads a server's state name: Fireworks' `JOB_STATE_*` names, and the same words without
    /// the prefix in any case (so OpenAI's batch statuses such as `in_progress` work too).
    ///
    /// | variant | names (after dropping `JOB_STATE_`, ignoring case) |
    /// |---|---|
    /// | [`Pending`](Self::Pending) | `PENDING`, `QUEUED`, `CREATING`, `VALIDATING`, `RE_QUEUEING`, `CREATING_INPUT_DATASET`, `PAUSED`, `IDLE` |
    /// | [`Running`](Self::Running) | `RUNNING`, `IN_PROGRESS`, `WRITING_RESULTS`, `FINALIZING`, `UPDATING`, `CANCELLING` |
    /// | [`Succeeded`](Self::Succeeded) | `COMPLETED`, `SUCCEEDED`, `PARTIALLY_SUCCEEDED`, `EARLY_STOPPED` |
    /// | [`Failed`](Self::Failed) | `FAILED`, `EXPIRED`, `FAILED_CLEANING_UP` |
    /// | [`Cancelled`](Self::Cancelled) | `CANCELLED`, `CANCELED` |
    /// | [`Unknown`](Self::Unknown) | anything else, `UNSPECIFIED` included |
    ///
    /// ```
    /// use tower_reliability::jobs::JobState;
    ///
    /// assert_eq!(JobState::from_name("JOB_STATE_RUNNING"), JobState::Running);
    /// assert_eq!(JobState::from_name("in_progress"), JobState::Running);
    /// assert_eq!(JobState::from_name("JOB_STATE_EXPIRED"), JobState::Failed);
    /// assert_eq!(JobState::from_name("JOB_STATE_SOMETHING_NEW"), JobState::Unknown);
    /// ```
    pub fn from_name(name: &str) -> JobState {
        let name = name.trim();
        let word = match name.get(..10) {
            Some(prefix) if prefix.eq_ignore_ascii_case("JOB_STATE_") => &name[10..],
            _ => name,
        };
        const TABLE: [(&str, JobState); 24] = [
            ("PENDING", JobState::Pending),
            ("QUEUED", JobState::Pending),
            ("CREATING", JobState::Pending),
            ("VALIDATING", JobState::Pending),
            ("RE_QUEUEING", JobState::Pending),
            ("CREATING_INPUT_DATASET", JobState::Pending),
            ("PAUSED", JobState::Pending),
            ("IDLE", JobState::Pending),
            ("RUNNING", JobState::Running),
            ("IN_PROGRESS", JobState::Running),
            ("WRITING_RESULTS", JobState::Running),
            ("FINALIZING", JobState::Running),
            ("UPDATING", JobState::Running),
            ("CANCELLING", JobState::Running),
            ("COMPLETED", JobState::Succeeded),
            ("SUCCEEDED", JobState::Succeeded),
            ("PARTIALLY_SUCCEEDED", JobState::Succeeded),
            ("EARLY_STOPPED", JobState::Succeeded),
            ("FAILED", JobState::Failed),
            ("EXPIRED", JobState::Failed),
            ("FAILED_CLEANING_UP", JobState::Failed),
            ("CANCELLED", JobState::Cancelled),
            ("CANCELED", JobState::Cancelled),
            ("UNSPECIFIED", JobState::Unknown),
        ];
        TABLE
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(word))
            .map_or(JobState::Unknown, |(_, state)| *state)
    }

    /// `true` when the job will not change any more: [`Succeeded`](Self::Succeeded),
    /// [`Failed`](Self::Failed) or [`Cancelled`](Self::Cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// A short, stable name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One poll's reading of a job.
///
/// Build it with [`JobStatus::new`] and the `with_*` methods in your own interpreter, or get it
/// from [`fireworks_json`](super::fireworks_json).
///
/// ```
/// use tower_reliability::jobs::{JobState, JobStatus};
///
/// let status = JobStatus::new(JobState::Running, "JOB_STATE_RUNNING").with_progress(42.0);
/// assert!(!status.is_terminal());
/// assert_eq!(status.progress, Some(42.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobStatus {
    /// The state, as far as waiting is concerned.
    pub state: JobState,
    /// The server's name for the state, verbatim (`JOB_STATE_WRITING_RESULTS`).
    pub raw_state: String,
    /// Progress in percent as the server reported it (normally `0..=100`), if it did.
    pub progress: Option<f64>,
    /// The response body this status was read from, when the interpreter kept it (the
    /// [`fireworks_json`](super::fireworks_json) interpreter does; it is a cheap reference-counted
    /// handle). The final status's body holds what the minimal interpreter does not read, such as
    /// output dataset ids or a failure message, for your own JSON library.
    pub body: Bytes,
}

impl JobStatus {
    /// A status in `state`, named `raw_state` by the server, without progress or body.
    pub fn new(state: JobState, raw_state: impl Into<String>) -> Self {
        JobStatus {
            state,
            raw_state: raw_state.into(),
            progress: None,
            body: Bytes::new(),
        }
    }

    /// Sets the progress, in percent.
    pub fn with_progress(mut self, percent: f64) -> Self {
        self.progress = Some(percent);
        self
    }

    /// Keeps the response body the status was read from.
    pub fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// Whether the job has ended (see [`JobState::is_terminal`]).
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_with_or_without_prefix_in_any_case() {
        for (name, state) in [
            ("JOB_STATE_PENDING", JobState::Pending),
            ("job_state_re_queueing", JobState::Pending),
            ("  JOB_STATE_RUNNING ", JobState::Running),
            ("finalizing", JobState::Running),
            ("JOB_STATE_COMPLETED", JobState::Succeeded),
            ("completed", JobState::Succeeded),
            ("JOB_STATE_FAILED", JobState::Failed),
            ("expired", JobState::Failed),
            ("JOB_STATE_CANCELLED", JobState::Cancelled),
            ("JOB_STATE_UNSPECIFIED", JobState::Unknown),
            ("JOB_STATE_", JobState::Unknown),
            ("", JobState::Unknown),
            ("JOB_STATÉ_RUNNING", JobState::Unknown),
            ("é", JobState::Unknown),
        ] {
            assert_eq!(JobState::from_name(name), state, "{name:?}");
        }
    }

    #[test]
    fn only_ended_states_are_terminal() {
        let terminal: Vec<_> = [
            JobState::Pending,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
            JobState::Unknown,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(
            terminal,
            [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
        );
    }
}
