//! "Not sent, and why": the outcome a layer of this crate gives a request it decided not to
//! send at all.

use std::time::Duration;

use super::{ErrorKind, TimeoutPhase};

/// Why a layer of this crate did not send a request (or a retry) at all.
///
/// Every such refusal is an [`Error`](super::Error) whose
/// [`not_sent_reason`](super::Error::not_sent_reason) is `Some`: this, not the error's
/// [`kind`](super::Error::kind), is what [`RetryOnStatus`](crate::RetryOnStatus) matches on to
/// tell "this retry never left" (it hands back the last real outcome and refunds the retry's
/// budget cost) from "this attempt failed". It is found through foreign layers too: an error
/// type that keeps ours as its [`source`](std::error::Error::source) still says why.
///
/// The [`kind`](super::Error::kind) of each refusal, for callers that match on kinds, is given
/// per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotSentReason {
    /// The shared rate-limit gate ([`RateLimitAware`](crate::RateLimitAware)) would hold the
    /// request past its deadline, or stayed closed until then. Kind:
    /// [`RateLimited`](ErrorKind::RateLimited) with the same wait.
    GateClosed {
        /// How long the gate asked the request to wait, if known.
        retry_after: Option<Duration>,
    },
    /// The server asked for a wait (`retry-after-ms` / `Retry-After`) above
    /// [`JitteredBackoff::max_server_wait`](crate::JitteredBackoff::max_server_wait). Kind:
    /// [`RateLimited`](ErrorKind::RateLimited) with the hint.
    ServerWaitTooLong {
        /// The wait the server asked for.
        hint: Duration,
    },
    /// The backoff wait before this retry would end past the request's
    /// [`Deadline`](crate::context::Deadline). Kind: [`Timeout`](ErrorKind::Timeout)
    /// ([`TimeoutPhase::Deadline`]).
    WaitPastDeadline,
    /// The backoff schedule ended: a [custom schedule](crate::JitteredBackoff::custom)
    /// returned `None`. Kind: [`RetryStopped`](ErrorKind::RetryStopped).
    ScheduleEnded,
}

impl NotSentReason {
    /// A short, stable name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            NotSentReason::GateClosed { .. } => "gate_closed",
            NotSentReason::ServerWaitTooLong { .. } => "server_wait_too_long",
            NotSentReason::WaitPastDeadline => "wait_past_deadline",
            NotSentReason::ScheduleEnded => "schedule_ended",
        }
    }

    /// The [`ErrorKind`] of a refusal for this reason.
    pub fn kind(self) -> ErrorKind {
        match self {
            NotSentReason::GateClosed { retry_after } => ErrorKind::RateLimited { retry_after },
            NotSentReason::ServerWaitTooLong { hint } => ErrorKind::RateLimited {
                retry_after: Some(hint),
            },
            NotSentReason::WaitPastDeadline => ErrorKind::Timeout(TimeoutPhase::Deadline),
            NotSentReason::ScheduleEnded => ErrorKind::RetryStopped,
        }
    }
}
