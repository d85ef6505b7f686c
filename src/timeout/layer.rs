use tower_layer::Layer;

use super::TimeoutByWorkloadService;
use crate::workload::{PerWorkload, TimeoutProfile, Workload};

/// Enforces a request's workload timeouts: an overall deadline across every attempt and wait,
/// and an idle-read timeout between response body frames.
///
/// The workload is the request's [`Workload`] extension, else the layer's default. Its
/// [`TimeoutProfile`] (or the request's own, when it carries one in its extensions) decides:
/// - **total**: the deadline by which the response head must be here, retries and backoff
///   waits included. The layers inside see it through [`Deadline::of`](crate::context::Deadline::of) and
///   never start a wait that would pass it. On expiry: [`TimeoutPhase::Deadline`].
/// - **idle read**: after the head, the body may stream for as long as it keeps producing;
///   a gap longer than this between two frames fails the body with [`TimeoutPhase::BodyIdle`].
///   A 40-minute stream of tokens is fine; a stream that goes quiet is not.
///
/// A per-attempt time-to-headers is [`AttemptTimeout`](super::AttemptTimeout), which goes
/// inside the retry layer. Connect, write and pool timeouts belong to the connector: see
/// [`TimeoutProfile`].
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::{TimeoutByWorkload, TimeoutProfile, Workload};
///
/// // Interactive with a 45 s deadline; keep the interactive idle-read timeout (30 s):
/// // `TimeoutProfile::new` alone would bring the guide's 1800 s default.
/// let interactive = Workload::Interactive.profile().with_total(Duration::from_secs(45));
/// let timeouts = TimeoutByWorkload::new(Workload::Interactive)
///     .profile(Workload::Interactive, interactive);
/// assert_eq!(interactive.idle_read(), Duration::from_secs(30));
/// ```
///
/// [`TimeoutPhase::Deadline`]: crate::error::TimeoutPhase::Deadline
/// [`TimeoutPhase::BodyIdle`]: crate::error::TimeoutPhase::BodyIdle
#[derive(Debug, Clone, Copy)]
pub struct TimeoutByWorkload {
    pub(super) default: Workload,
    pub(super) profiles: PerWorkload<TimeoutProfile>,
    pub(super) deadline_in_extensions: bool,
}

impl TimeoutByWorkload {
    /// The guide's profiles, with `default` for requests that do not name a workload.
    pub fn new(default: Workload) -> Self {
        TimeoutByWorkload {
            default,
            profiles: PerWorkload::from_fn(Workload::profile),
            deadline_in_extensions: false,
        }
    }

    /// Replaces one workload's profile.
    pub fn profile(mut self, workload: Workload, profile: TimeoutProfile) -> Self {
        self.profiles.set(workload, profile);
        self
    }

    /// The profile in force for `workload`.
    pub fn profile_of(&self, workload: Workload) -> TimeoutProfile {
        *self.profiles.get(workload)
    }

    /// The workload used when a request names none.
    pub fn default_workload(&self) -> Workload {
        self.default
    }

    /// Also insert the [`Deadline`](crate::context::Deadline) into each request's extensions (default
    /// off: the deadline is published to the layers inside without allocating). Turn it on
    /// when a layer inside moves the request to another task, such as `tower::buffer`.
    pub fn deadline_in_extensions(mut self, enabled: bool) -> Self {
        self.deadline_in_extensions = enabled;
        self
    }
}

impl Default for TimeoutByWorkload {
    /// [`Workload::Interactive`] by default.
    fn default() -> Self {
        TimeoutByWorkload::new(Workload::Interactive)
    }
}

impl<S> Layer<S> for TimeoutByWorkload {
    type Service = TimeoutByWorkloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutByWorkloadService::new(inner, *self)
    }
}
