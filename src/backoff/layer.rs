use std::{fmt, sync::Arc, time::Duration};

use tokio::time::Instant;
use tower_layer::Layer;

use super::{Jitter, JitteredBackoffService, RandomSource, Schedule};
use crate::{
    context::Deadline,
    error::{Error, NotSentReason},
};

/// Waits before every retried attempt: the guide's exponential backoff with jitter, or a
/// server's `retry-after-ms` / `Retry-After` when that is longer, never past the deadline.
///
/// It acts only on requests that carry a [`RetryContext`](crate::context::RetryContext) (retries made by
/// [`RetryOnStatus`](crate::RetryOnStatus)); first attempts pass straight through.
///
/// **Place it inside [`RetryOnStatus`](crate::RetryOnStatus)** (as the
/// [`fireworks`](crate::fireworks) preset does). Above it, it never sees a retry: they are made
/// below it and go out with no wait at all. It cannot space them out from there; when a
/// request comes back through it with a [`RetryReport`](crate::RetryReport) of more than one
/// attempt, it logs one `warn` per process naming the mistake.
///
/// A wait that cannot be made is refused with an [`Error::not_sent`] and the request is not
/// sent; the retry layer above hands back the last outcome instead:
/// - a server hint above [`max_server_wait`](Self::max_server_wait) (default 120 s, as the
///   OpenAI SDK): the server will not take the request within a wait we accept
///   ([`NotSentReason::ServerWaitTooLong`], kind [`ErrorKind::RateLimited`] with the hint);
/// - a wait that would end past the [`Deadline`] ([`NotSentReason::WaitPastDeadline`], kind
///   [`TimeoutPhase::Deadline`]);
/// - a [custom](Self::custom) schedule that ended ([`NotSentReason::ScheduleEnded`]).
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::{backoff::Jitter, JitteredBackoff};
///
/// let backoff = JitteredBackoff::default()
///     .jitter(Jitter::Full)
///     .base(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(20))
///     .max_server_wait(Duration::from_secs(300))
///     .seed(42);
/// ```
///
/// [`ErrorKind::RateLimited`]: crate::ErrorKind::RateLimited
/// [`Error::not_sent`]: crate::Error::not_sent
/// [`TimeoutPhase::Deadline`]: crate::error::TimeoutPhase::Deadline
#[derive(Clone)]
pub struct JitteredBackoff {
    pub(super) schedule: Schedule,
    pub(super) max_server_wait: Duration,
    pub(super) random: RandomSource,
    pub(super) custom: Option<CustomSchedule>,
}

/// A schedule of your own: the wait before retry `n` (from 0) given the previous wait, or
/// `None` to stop retrying.
pub type CustomSchedule = Arc<dyn Fn(u32, Option<Duration>) -> Option<Duration> + Send + Sync>;

impl fmt::Debug for JitteredBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JitteredBackoff")
            .field("schedule", &self.schedule)
            .field("max_server_wait", &self.max_server_wait)
            .field("random", &self.random)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

impl Default for JitteredBackoff {
    /// The guide's `1 s * 2^n + U(0, 1 s)`, waits capped at 30 s, server hints honoured up to
    /// 120 s, per-thread randomness.
    fn default() -> Self {
        JitteredBackoff {
            schedule: Schedule::default(),
            max_server_wait: Duration::from_secs(120),
            random: RandomSource::default(),
            custom: None,
        }
    }
}

impl JitteredBackoff {
    /// The defaults; same as [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects the jitter mode (default [`Jitter::Guide`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.schedule = self.schedule.with_jitter(jitter);
        self
    }

    /// The base of the exponential (default 1 s).
    pub fn base(mut self, base: Duration) -> Self {
        self.schedule = self.schedule.with_base(base);
        self
    }

    /// The additive spread of [`Jitter::Guide`] (default 1 s).
    pub fn spread(mut self, spread: Duration) -> Self {
        self.schedule = self.schedule.with_spread(spread);
        self
    }

    /// The cap on any computed wait (default 30 s).
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.schedule = self.schedule.with_cap(cap);
        self
    }

    /// The longest server-requested wait honoured (default 120 s). A longer hint means the
    /// server will not take the request within a wait we accept: the retry is refused.
    pub fn max_server_wait(mut self, cap: Duration) -> Self {
        self.max_server_wait = cap;
        self
    }

    /// Replaces the whole schedule.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Makes the jitter reproducible (clones share the sequence).
    pub fn seed(mut self, seed: u64) -> Self {
        self.random = RandomSource::seeded(seed);
        self
    }

    /// Uses this source of randomness.
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Replaces the computed schedule with your own function (server hints, the caps and the
    /// deadline still apply). Returning `None` stops retrying: the caller gets the last
    /// outcome.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tower_reliability::JitteredBackoff;
    ///
    /// // 250 ms, 500 ms, then stop.
    /// let backoff = JitteredBackoff::default().custom(Arc::new(|n, _previous| {
    ///     (n < 2).then(|| Duration::from_millis(250 << n))
    /// }));
    /// ```
    pub fn custom(mut self, schedule: CustomSchedule) -> Self {
        self.custom = Some(schedule);
        self
    }

    /// The configured schedule.
    pub fn current_schedule(&self) -> Schedule {
        self.schedule
    }

    /// The wait before a retry, or the refusal when it cannot be made. Pure but for the draw.
    ///
    /// `retry` counts retries from 0; `hint` is the server's requested wait.
    pub fn wait_before(
        &self,
        retry: u32,
        previous: Option<Duration>,
        hint: Option<Duration>,
        now: Instant,
        deadline: Option<Deadline>,
    ) -> Result<Duration, Error> {
        let computed = match &self.custom {
            None => self.schedule.delay(retry, previous, self.random.unit()),
            Some(custom) => match custom(retry, previous) {
                Some(wait) => wait.min(self.schedule.cap()),
                // The schedule is spent: this retry is not sent.
                None => return Err(Error::not_sent(NotSentReason::ScheduleEnded)),
            },
        };
        let wait = match hint {
            Some(hint) if hint > self.max_server_wait => {
                return Err(Error::not_sent(NotSentReason::ServerWaitTooLong { hint }))
            }
            Some(hint) => hint.max(computed),
            None => computed,
        };
        match deadline {
            Some(deadline) if wait >= deadline.remaining(now) => {
                Err(Error::not_sent(NotSentReason::WaitPastDeadline))
            }
            _ => Ok(wait),
        }
    }
}

impl<S> Layer<S> for JitteredBackoff {
    type Service = JitteredBackoffService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JitteredBackoffService::new(inner, self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test(start_paused = true)]
    async fn hints_win_when_longer_and_are_capped() {
        let b = JitteredBackoff::default().seed(1).jitter(Jitter::None);
        let now = Instant::now();
        let wait = |hint| b.wait_before(0, None, hint, now, None);
        assert_eq!(wait(None).unwrap(), Duration::from_secs(1));
        assert_eq!(
            wait(Some(Duration::from_millis(10))).unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            wait(Some(Duration::from_secs(7))).unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(
            wait(Some(Duration::from_secs(120))).unwrap(),
            Duration::from_secs(120)
        );
        let refused = wait(Some(Duration::from_secs(121))).unwrap_err();
        assert_eq!(
            refused.kind(),
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(121))
            }
        );
        assert_eq!(
            refused.not_sent_reason(),
            Some(NotSentReason::ServerWaitTooLong {
                hint: Duration::from_secs(121)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_waits_past_the_deadline() {
        let b = JitteredBackoff::default().jitter(Jitter::None);
        let now = Instant::now();
        let deadline = Some(Deadline::at(now + Duration::from_secs(3)));
        assert_eq!(
            b.wait_before(1, None, None, now, deadline).unwrap(),
            Duration::from_secs(2)
        );
        let err = b.wait_before(2, None, None, now, deadline).unwrap_err();
        assert_eq!(
            err.timeout_phase(),
            Some(crate::error::TimeoutPhase::Deadline)
        );
        assert_eq!(err.not_sent_reason(), Some(NotSentReason::WaitPastDeadline));
        let err = b
            .wait_before(0, None, Some(Duration::from_secs(5)), now, deadline)
            .unwrap_err();
        assert!(err.is_timeout());
    }

    #[test]
    fn a_custom_schedule_is_capped_and_can_stop() {
        let b = JitteredBackoff::default()
            .max_delay(Duration::from_secs(2))
            .custom(Arc::new(|n, _| {
                (n < 2).then(|| Duration::from_secs(10 * u64::from(n)))
            }));
        let now = Instant::now();
        assert_eq!(
            b.wait_before(0, None, None, now, None).unwrap(),
            Duration::ZERO
        );
        assert_eq!(
            b.wait_before(1, None, None, now, None).unwrap(),
            Duration::from_secs(2)
        );
        // Not a timeout (it was one before): the schedule ended, the retry is not sent.
        let ended = b.wait_before(2, None, None, now, None).unwrap_err();
        assert!(!ended.is_timeout());
        assert_eq!(ended.kind(), ErrorKind::RetryStopped);
        assert_eq!(ended.not_sent_reason(), Some(NotSentReason::ScheduleEnded));
        assert_eq!(ended.reached_server(), Some(false));
        assert!(format!("{b:?}").contains("custom: true"));
    }

    #[test]
    fn seeded_waits_repeat() {
        let now = Instant::now();
        let run = |seed| {
            let b = JitteredBackoff::default().seed(seed);
            (0..4)
                .map(|n| b.wait_before(n, None, None, now, None).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
