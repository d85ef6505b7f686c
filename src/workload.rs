//! Workloads and their timeout profiles: see [`Workload`] (this module is private; its
//! documentation lives on the type).

use std::time::Duration;

/// The kind of work a request is, which decides its timeouts.
///
/// `Workload::default()` is [`Interactive`](Self::Interactive).
///
/// The Fireworks guide sets client timeouts by the kind of work, not one number for everything:
///
/// | Workload | Guide's client timeout | [`TimeoutProfile::total`] here | idle read | per attempt |
/// |---|---|---|---|---|
/// | [`Interactive`](Workload::Interactive) (chat) | 30–60 s | 60 s | 30 s | none |
/// | [`Agentic`](Workload::Agentic) (tool calls, multi-step) | 5–30 min | 15 min | 10 min | none |
/// | [`LongContext`](Workload::LongContext) (large model inference) | 10–30 min | 30 min | 30 min | none |
/// | [`BatchSubmit`](Workload::BatchSubmit) (results are async) | 60 s | 60 s | 30 s | 20 s |
///
/// Every profile also carries the guide's httpx phases that only a connector can enforce:
/// connect 10 s, write 30 s, pool 10 s.
///
/// Why these choices:
/// - The **total** deadline covers every attempt and every backoff wait up to the response head,
///   so it takes the *top* of the guide's range: the guide's own retry loop sleeps about 15 s
///   across its five attempts, which must fit inside it.
/// - After the head arrives, the body is governed by the **idle-read** timeout (httpx's `read`):
///   a stream that keeps producing tokens is never cut, however long it runs, and one that goes
///   silent fails. Long-context prefill can take minutes before the first token, hence the
///   guide's `read=1800` there.
/// - A **per-attempt** time-to-headers is off for generation workloads (a non-streamed
///   completion sends its head only when generation ends, so any limit would cut good requests)
///   and 20 s for batch submission, which is a quick metadata call: three tries fit in 60 s.
///
/// A request picks its workload by carrying a [`Workload`] in its extensions; otherwise the
/// layer's default applies. A request can also carry a whole [`TimeoutProfile`], which
/// replaces its workload's profile in [`TimeoutByWorkload`](crate::TimeoutByWorkload) and
/// [`AttemptTimeout`](crate::timeout::AttemptTimeout) for that request alone:
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::Workload;
///
/// let mut request = http::Request::new(String::from("{}"));
/// request.extensions_mut().insert(Workload::Agentic);
/// // This one request: the agentic profile, with a 2-minute deadline.
/// let profile = Workload::Agentic.profile().with_total(Duration::from_secs(120));
/// request.extensions_mut().insert(profile);
/// ```
///
/// The enum is `#[non_exhaustive]`: more workloads may come, so a `match` on it needs a `_`
/// arm.
///
/// ```compile_fail
/// # use tower_reliability::Workload;
/// fn name(workload: Workload) -> &'static str {
///     match workload {
///         Workload::Interactive => "chat",
///         Workload::Agentic => "agent",
///         Workload::LongContext => "long",
///         Workload::BatchSubmit => "batch",
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Workload {
    /// Interactive chat: a person is waiting. Guide: 30–60 s.
    #[default]
    Interactive,
    /// Agentic work: tool calls, multi-step plans. Guide: 5–30 min.
    Agentic,
    /// Large-model, long-context inference. Guide: 10–30 min.
    LongContext,
    /// Submitting a batch job; results are fetched later. Guide: 60 s.
    BatchSubmit,
}

/// What the crate knows of one workload: its metrics name and its default timeouts. Adding a
/// workload is its variant, its place in [`Workload::ALL`] and its row in [`Workload::spec`];
/// every table keyed by workload ([`PerWorkload`]) follows.
struct Spec {
    name: &'static str,
    profile: TimeoutProfile,
}

impl Workload {
    /// Every workload, in declaration order.
    pub const ALL: &'static [Workload] = &[
        Workload::Interactive,
        Workload::Agentic,
        Workload::LongContext,
        Workload::BatchSubmit,
    ];

    /// How many workloads there are.
    pub(crate) const COUNT: usize = Workload::ALL.len();

    /// The one table of workloads (see [`Spec`]).
    const fn spec(self) -> Spec {
        const MIN: u64 = 60;
        let (name, profile) = match self {
            Workload::Interactive => (
                "interactive",
                TimeoutProfile::new(Duration::from_secs(60))
                    .with_idle_read(Duration::from_secs(30)),
            ),
            Workload::Agentic => (
                "agentic",
                TimeoutProfile::new(Duration::from_secs(15 * MIN))
                    .with_idle_read(Duration::from_secs(10 * MIN)),
            ),
            Workload::LongContext => (
                "long_context",
                TimeoutProfile::new(Duration::from_secs(30 * MIN))
                    .with_idle_read(Duration::from_secs(30 * MIN)),
            ),
            Workload::BatchSubmit => (
                "batch_submit",
                TimeoutProfile::new(Duration::from_secs(60))
                    .with_idle_read(Duration::from_secs(30))
                    .with_attempt(Some(Duration::from_secs(20))),
            ),
        };
        Spec { name, profile }
    }

    /// The workload of a request: its `Workload` extension, else the one an enclosing
    /// [`TimeoutByWorkload`](crate::TimeoutByWorkload) resolved for it (its default), else
    /// [`Interactive`](Self::Interactive). [`RateLimitAware`](crate::RateLimitAware) queues by it.
    pub fn of<B>(request: &http::Request<B>) -> Workload {
        request
            .extensions()
            .get::<Workload>()
            .copied()
            .or_else(crate::context::Ambient::workload)
            .unwrap_or_default()
    }

    /// The default timeout profile of this workload: the table in [`Workload`]'s docs, which
    /// also gives the reasons.
    pub const fn profile(self) -> TimeoutProfile {
        self.spec().profile
    }

    /// A short, stable name, suitable as a metrics label.
    pub const fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// This workload's place in [`ALL`](Self::ALL) (and in a [`PerWorkload`]).
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

// `index` is the place in `ALL`: the list must follow the declaration order.
const _: () = {
    let mut i = 0;
    while i < Workload::COUNT {
        assert!(Workload::ALL[i].index() == i, "Workload::ALL out of order");
        i += 1;
    }
};

/// One value per workload: the timeout layers' profiles and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PerWorkload<T>([T; Workload::COUNT]);

impl<T> PerWorkload<T> {
    /// Each workload's value from `value`.
    pub(crate) fn from_fn(mut value: impl FnMut(Workload) -> T) -> Self {
        PerWorkload(std::array::from_fn(|i| value(Workload::ALL[i])))
    }

    /// `workload`'s value.
    pub(crate) fn get(&self, workload: Workload) -> &T {
        &self.0[workload.index()]
    }

    /// Replaces `workload`'s value.
    pub(crate) fn set(&mut self, workload: Workload, value: T) {
        self.0[workload.index()] = value;
    }
}

/// A request's own [`TimeoutProfile`] extension, if it carries one: it wins over its workload's.
pub(crate) fn profile_override<B>(request: &http::Request<B>) -> Option<TimeoutProfile> {
    request.extensions().get::<TimeoutProfile>().copied()
}

/// The timeouts of one workload, phase by phase.
///
/// [`Workload::profile`] gives each workload's; a [`TimeoutByWorkload`](crate::TimeoutByWorkload)
/// can replace them, and a request can carry its own in its extensions (it then wins over
/// both, in `TimeoutByWorkload` and in [`AttemptTimeout`](crate::timeout::AttemptTimeout)).
///
/// Like every configuration value of this crate, it is built with [`new`](Self::new) (or
/// taken from a workload), changed with `with_*` setters and read back with getters named
/// after what they return:
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::Workload;
///
/// let profile = Workload::Interactive.profile().with_total(Duration::from_secs(45));
/// assert_eq!(profile.total(), Duration::from_secs(45));
/// assert_eq!(profile.idle_read(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutProfile {
    pub(crate) total: Duration,
    pub(crate) idle_read: Duration,
    pub(crate) attempt: Option<Duration>,
    pub(crate) connect: Duration,
    pub(crate) write: Duration,
    pub(crate) pool: Duration,
}

impl TimeoutProfile {
    /// A profile with the given total deadline and the guide's per-phase defaults: idle read
    /// 1800 s, no per-attempt limit, connect 10 s, write 30 s, pool 10 s.
    pub const fn new(total: Duration) -> Self {
        TimeoutProfile {
            total,
            idle_read: Duration::from_secs(1800),
            attempt: None,
            connect: Duration::from_secs(10),
            write: Duration::from_secs(30),
            pool: Duration::from_secs(10),
        }
    }

    /// Sets the overall deadline.
    pub const fn with_total(mut self, total: Duration) -> Self {
        self.total = total;
        self
    }

    /// Sets the idle-read timeout between response body frames.
    pub const fn with_idle_read(mut self, idle_read: Duration) -> Self {
        self.idle_read = idle_read;
        self
    }

    /// Sets (or clears) the per-attempt time-to-headers limit.
    pub const fn with_attempt(mut self, attempt: Option<Duration>) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets the connect timeout (for connectors).
    pub const fn with_connect(mut self, connect: Duration) -> Self {
        self.connect = connect;
        self
    }

    /// Sets the write timeout (for connectors).
    pub const fn with_write(mut self, write: Duration) -> Self {
        self.write = write;
        self
    }

    /// Sets the pool timeout (for clients).
    pub const fn with_pool(mut self, pool: Duration) -> Self {
        self.pool = pool;
        self
    }

    /// The overall deadline: every attempt and every wait until the response head arrives.
    pub const fn total(&self) -> Duration {
        self.total
    }

    /// The longest gap allowed between two response body frames (httpx's `read`).
    pub const fn idle_read(&self) -> Duration {
        self.idle_read
    }

    /// The optional limit on each attempt's time to response headers.
    pub const fn attempt(&self) -> Option<Duration> {
        self.attempt
    }

    /// Time to establish a connection. Applied by connectors that support it.
    pub const fn connect(&self) -> Duration {
        self.connect
    }

    /// Time to send the request. Applied by connectors that support it.
    pub const fn write(&self) -> Duration {
        self.write
    }

    /// Time to get a connection from the pool. Applied by clients that support it.
    pub const fn pool(&self) -> Duration {
        self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_sit_inside_the_guides_ranges() {
        let secs = |w: Workload| w.profile().total().as_secs();
        assert!((30..=60).contains(&secs(Workload::Interactive)));
        assert!((5 * 60..=30 * 60).contains(&secs(Workload::Agentic)));
        assert!((10 * 60..=30 * 60).contains(&secs(Workload::LongContext)));
        assert_eq!(secs(Workload::BatchSubmit), 60);
        assert_eq!(
            Workload::LongContext.profile().idle_read(),
            Duration::from_secs(1800)
        );
        for w in Workload::ALL {
            let p = w.profile();
            assert_eq!(p.connect(), Duration::from_secs(10));
            assert_eq!(p.write(), Duration::from_secs(30));
            assert_eq!(p.pool(), Duration::from_secs(10));
            assert!(p.attempt().is_none_or(|a| a <= p.total()));
            assert_eq!(Workload::ALL[w.index()], *w);
        }
    }

    #[test]
    fn setters_round_trip_through_the_getters() {
        let secs = Duration::from_secs;
        let p = TimeoutProfile::new(secs(1))
            .with_total(secs(2))
            .with_idle_read(secs(3))
            .with_attempt(Some(secs(4)))
            .with_connect(secs(5))
            .with_write(secs(6))
            .with_pool(secs(7));
        assert_eq!(
            (p.total(), p.idle_read(), p.attempt()),
            (secs(2), secs(3), Some(secs(4)))
        );
        assert_eq!(
            (p.connect(), p.write(), p.pool()),
            (secs(5), secs(6), secs(7))
        );
        assert_eq!(p.with_attempt(None).attempt(), None);
        // `new` keeps the guide's per-phase defaults.
        let fresh = TimeoutProfile::new(secs(9));
        assert_eq!((fresh.total(), fresh.idle_read()), (secs(9), secs(1800)));
        assert_eq!(fresh.attempt(), None);
        assert_eq!(
            (fresh.connect(), fresh.write(), fresh.pool()),
            (secs(10), secs(30), secs(10))
        );
    }
}
