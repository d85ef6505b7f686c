//! The one error type of the crate, and the failure classes it tells apart.
//!
//! The Fireworks guide ends with a warning: the analytics dashboard counts only requests the
//! server acknowledged, so a client that fails *before* reaching the server (DNS, refused
//! connection, a timeout before connecting) sees failures the dashboard never shows. Every
//! [`Error`] therefore answers the question "where did this fail?":
//!
//! | [`ErrorKind`] | what happened | did the server see it? |
//! |---|---|---|
//! | [`Timeout`](ErrorKind::Timeout) | a deadline of ours fired; [`TimeoutPhase`] says which | maybe |
//! | [`Connect`](ErrorKind::Connect) | connect / DNS / refused: the request never left | no |
//! | [`RateLimited`](ErrorKind::RateLimited) | held back locally by the shared rate-limit gate | no |
//! | [`RetryStopped`](ErrorKind::RetryStopped) | the backoff schedule ended before this retry | no |
//! | [`Inner`](ErrorKind::Inner) | the inner service's own error, kept as the [`source`](std::error::Error::source) | maybe |
//!
//! A request a layer of this crate decided not to send at all also says why:
//! [`Error::not_sent_reason`] ([`NotSentReason`]). That, not the kind, is the contract between
//! the layers.

use std::{error::Error as StdError, fmt, time::Duration};

use crate::context::RetryReport;

#[cfg(feature = "hyper-util")]
mod hyper;
mod not_sent;

pub use not_sent::NotSentReason;

/// A boxed, thread-safe error, as used across the tower ecosystem.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The error returned by every service in this crate.
///
/// Inner errors are kept as the [`source`](StdError::source); nested layers of this crate do not
/// wrap each other's errors (an inner [`Error`] is passed through unchanged).
pub struct Error {
    kind: ErrorKind,
    source: Option<BoxError>,
    not_sent: Option<NotSentReason>,
    // Boxed: only failures after retries carry one.
    report: Option<Box<RetryReport>>,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A timeout of this crate fired.
    Timeout(TimeoutPhase),
    /// The request never reached the server, or the server refused it before processing it:
    /// DNS failure, connection refused, connect timeout; with feature `http2`, an HTTP/2 stream
    /// reset with `REFUSED_STREAM` or refused by a graceful `GOAWAY` (RFC 9113 §8.7).
    ///
    /// These are the client-side failures the Fireworks dashboard cannot show, and the safest
    /// retries there are.
    Connect,
    /// The request was not sent because the shared rate-limit gate is closed for longer than the
    /// request's deadline allows. Carries the wait, when known.
    RateLimited {
        /// How long the gate asked the request to wait, if known.
        retry_after: Option<Duration>,
    },
    /// The request (a retry) was not sent because the backoff schedule ended: a
    /// [custom schedule](crate::JitteredBackoff::custom) returned `None`. Only seen when
    /// [`JitteredBackoff`](crate::JitteredBackoff) runs without
    /// [`RetryOnStatus`](crate::RetryOnStatus) above it (which hands back the last outcome).
    RetryStopped,
    /// The inner service (the HTTP client) failed; see [`source`](StdError::source).
    Inner,
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// The overall deadline of the request, which covers every attempt and every wait.
    Deadline,
    /// The per-attempt limit on the time until response headers.
    Attempt,
    /// No response body frame arrived within the idle-read timeout.
    BodyIdle,
}

impl TimeoutPhase {
    /// A short, stable name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Deadline => "deadline",
            TimeoutPhase::Attempt => "attempt",
            TimeoutPhase::BodyIdle => "body_idle",
        }
    }
}

impl Error {
    /// A timeout in the given phase.
    pub fn timeout(phase: TimeoutPhase) -> Self {
        Error {
            kind: ErrorKind::Timeout(phase),
            source: None,
            not_sent: None,
            report: None,
        }
    }

    /// A local rate-limit refusal, with the wait the gate asked for: the request was not sent
    /// ([`NotSentReason::GateClosed`]).
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        Error::not_sent(NotSentReason::GateClosed { retry_after })
    }

    /// A request a layer decided not to send, and why. Its kind is [`NotSentReason::kind`].
    ///
    /// A layer of your own that holds requests (a gate, a wait) and gives up on one before
    /// sending it returns this, so that [`RetryOnStatus`](crate::RetryOnStatus) above it hands
    /// back the last real outcome and refunds the retry's budget cost.
    pub fn not_sent(reason: NotSentReason) -> Self {
        Error {
            kind: reason.kind(),
            source: None,
            not_sent: Some(reason),
            report: None,
        }
    }

    /// Wraps an inner service's error, classifying it. (With the `reqwest-middleware` feature,
    /// a reqwest error's URL is dropped first: it can carry credentials.)
    ///
    /// An [`Error`] of this crate passes through unchanged. Otherwise the error's source chain is
    /// searched for a connect failure (see [`is_connect_failure`]) and the kind is
    /// [`Connect`](ErrorKind::Connect), else [`Timeout`](ErrorKind::Timeout)
    /// ([`TimeoutPhase::Attempt`]) for tower's own `tower::timeout::error::Elapsed` (a
    /// `tower::timeout` inside [`RetryOnStatus`](crate::RetryOnStatus) limits one attempt, as
    /// [`AttemptTimeout`](crate::timeout::AttemptTimeout) does, and is retried like it), else
    /// [`Inner`](ErrorKind::Inner). The original error stays the
    /// [`source`](StdError::source).
    pub fn from_inner(err: impl Into<BoxError>) -> Self {
        let err: BoxError = err.into();
        #[cfg(feature = "reqwest-middleware")]
        let err = crate::middleware::errors::without_url(err);
        match err.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(err) => {
                let kind = if is_connect_failure(&*err) {
                    ErrorKind::Connect
                } else if is_tower_timeout(&*err) {
                    ErrorKind::Timeout(TimeoutPhase::Attempt)
                } else {
                    ErrorKind::Inner
                };
                Error {
                    kind,
                    source: Some(err),
                    not_sent: None,
                    report: None,
                }
            }
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The timeout phase, if this is a timeout.
    pub fn timeout_phase(&self) -> Option<TimeoutPhase> {
        match self.kind {
            ErrorKind::Timeout(phase) => Some(phase),
            _ => None,
        }
    }

    /// `true` for any timeout of this crate.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout(_))
    }

    /// `true` when the request never reached the server (connect, DNS, refused).
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// `true` when the local rate-limit gate refused to send the request.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited { .. })
    }

    /// The wait the rate-limit gate asked for, if this is a local rate-limit refusal.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }

    /// Whether the server can have seen this request: `Some(false)` when it certainly did not
    /// (connect failure, local rate limiting, any [not-sent](Self::not_sent_reason) refusal),
    /// `None` when it cannot be known.
    pub fn reached_server(&self) -> Option<bool> {
        match self.kind {
            ErrorKind::Connect | ErrorKind::RateLimited { .. } | ErrorKind::RetryStopped => {
                Some(false)
            }
            _ if self.not_sent_reason().is_some() => Some(false),
            _ => None,
        }
    }

    /// Why a layer of this crate did not send this request at all, if that is what happened:
    /// its own refusal, or one found in its [`source`](StdError::source) chain (an error of
    /// ours wrapped by a foreign layer). `None` for every failure of a request that was sent,
    /// or may have been.
    pub fn not_sent_reason(&self) -> Option<NotSentReason> {
        if self.not_sent.is_some() {
            return self.not_sent;
        }
        let mut next = self.source();
        while let Some(err) = next {
            if let Some(ours) = err.downcast_ref::<Error>() {
                return ours.not_sent;
            }
            next = err.source();
        }
        None
    }

    /// What [`RetryOnStatus`](crate::RetryOnStatus) did before failing with this error: the
    /// attempts sent, the time waited between them, and why retrying stopped, if it stopped
    /// early. The same [`RetryReport`] a response carries in its extensions; `None` when the
    /// request failed on its first and only attempt, or when no retry layer saw the failure
    /// (a [`Deadline`](TimeoutPhase::Deadline) timeout of
    /// [`TimeoutByWorkload`](crate::TimeoutByWorkload) fires outside the retry layer).
    ///
    /// ```
    /// # use tower_reliability::Error;
    /// # fn log(error: &Error) {
    /// if let Some(report) = error.report() {
    ///     eprintln!("{error} after {} attempts, {:?} waiting", report.attempts, report.waited);
    /// }
    /// # }
    /// ```
    pub fn report(&self) -> Option<RetryReport> {
        self.report.as_deref().copied()
    }

    /// Attaches the retry layer's report.
    pub(crate) fn with_report(mut self, report: RetryReport) -> Self {
        self.report = Some(Box::new(report));
        self
    }

    /// Takes the inner error out, if there is one.
    pub fn into_source(self) -> Option<BoxError> {
        self.source
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(reason) = &self.not_sent {
            d.field("not_sent", reason);
        }
        if let Some(report) = &self.report {
            d.field("report", report);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Timeout(TimeoutPhase::Deadline) => {
                f.write_str("request deadline elapsed (covers all attempts and waits)")
            }
            ErrorKind::Timeout(TimeoutPhase::Attempt) => {
                f.write_str("attempt timed out waiting for response headers")
            }
            ErrorKind::Timeout(TimeoutPhase::BodyIdle) => {
                f.write_str("response body idle timeout: no data from the server in time")
            }
            ErrorKind::Connect => f.write_str("request never reached the server (connect failed)"),
            ErrorKind::RateLimited {
                retry_after: Some(wait),
            } => write!(
                f,
                "rate limited locally: the gate would hold this request {:.3}s, past its deadline",
                wait.as_secs_f64()
            ),
            ErrorKind::RateLimited { retry_after: None } => f.write_str(
                "rate limited locally: the gate stayed closed past this request's deadline",
            ),
            ErrorKind::RetryStopped => f.write_str("retry not sent: the backoff schedule ended"),
            ErrorKind::Inner => f.write_str("inner service error"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Searches an error's source chain for a failure that certainly happened before the request
/// reached the server (or before the server processed it): `io::ErrorKind::ConnectionRefused`
/// / `AddrNotAvailable`, hyper-util's connect errors (feature `hyper-util`, which covers its
/// DNS resolver and connect timeout), reqwest's (feature `reqwest-middleware`), and HTTP/2
/// streams the server refused unprocessed (feature `http2`).
///
/// `HostUnreachable` / `NetworkUnreachable` count only inside a connect error: on an
/// established connection (an ICMP error after the request was written) the server may have
/// the request, so they are [transport failures](is_transport_failure) instead.
pub fn is_connect_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(ours) = err.downcast_ref::<Error>() {
            return ours.is_connect();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(io.kind(), K::ConnectionRefused | K::AddrNotAvailable) {
                return true;
            }
        }
        #[cfg(feature = "http2")]
        if err
            .downcast_ref::<h2::Error>()
            .is_some_and(refused_unprocessed)
        {
            return true;
        }
        #[cfg(feature = "hyper-util")]
        if hyper::is_connect(err) {
            return true;
        }
        #[cfg(feature = "reqwest-middleware")]
        if crate::middleware::errors::is_connect(err) {
            return true;
        }
        next = err.source();
    }
    false
}

/// Whether tower's own `timeout` fired: `tower::timeout::error::Elapsed` in the source chain.
fn is_tower_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if err.is::<tower::timeout::error::Elapsed>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// RFC 9113 §8.7: a stream the server reset with `REFUSED_STREAM`, or one above the last stream
/// id of a graceful (`NO_ERROR`) `GOAWAY`, was not processed. (A `GOAWAY` with an error code
/// may end streams the server had started: those are not counted here.)
#[cfg(feature = "http2")]
fn refused_unprocessed(err: &h2::Error) -> bool {
    let reason = err.reason();
    err.is_remote()
        && ((err.is_reset() && reason == Some(h2::Reason::REFUSED_STREAM))
            || (err.is_go_away() && reason == Some(h2::Reason::NO_ERROR)))
}

/// Searches an error's source chain for a transport failure after the request may have been
/// sent but before a response arrived: a reset or closed connection, an incomplete message.
/// Like the OpenAI SDK, the default retry policy retries these.
pub fn is_transport_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::NotConnected
                    | K::HostUnreachable
                    | K::NetworkUnreachable
            ) {
                return true;
            }
        }
        #[cfg(feature = "hyper-util")]
        if hyper::is_transport(err) {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_pass_through_unwrapped() {
        let inner = Error::timeout(TimeoutPhase::Attempt);
        let outer = Error::from_inner(inner);
        assert_eq!(outer.kind(), ErrorKind::Timeout(TimeoutPhase::Attempt));
        assert!(outer.into_source().is_none());
    }

    #[test]
    fn io_refused_is_connect_and_never_reached_the_server() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::from_inner(io);
        assert!(err.is_connect());
        assert_eq!(err.reached_server(), Some(false));
        assert!(err.source().is_some());
    }

    #[test]
    fn reset_is_transport_not_connect() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!is_connect_failure(&io));
        assert!(is_transport_failure(&io));
        let err = Error::from_inner(io);
        assert_eq!(err.kind(), ErrorKind::Inner);
        assert_eq!(err.reached_server(), None);
    }

    /// An unreachable host or network reported on an established connection (as hyper
    /// reports a failed write: a send error whose source is the I/O error) may come after the
    /// request was written: not "never reached the server".
    #[test]
    fn unreachable_on_an_established_connection_is_not_connect() {
        #[derive(Debug)]
        struct SendRequest(std::io::Error);
        impl std::fmt::Display for SendRequest {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl StdError for SendRequest {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        for kind in [
            std::io::ErrorKind::NetworkUnreachable,
            std::io::ErrorKind::HostUnreachable,
        ] {
            let err = SendRequest(std::io::Error::from(kind));
            assert!(!is_connect_failure(&err), "{kind:?}");
            assert!(is_transport_failure(&err), "{kind:?}");
            let err = Error::from_inner(err);
            assert_eq!(err.kind(), ErrorKind::Inner);
            assert_eq!(err.reached_server(), None);
        }
    }

    #[test]
    fn tower_s_elapsed_is_an_attempt_timeout() {
        let err = Error::from_inner(tower::timeout::error::Elapsed::new());
        assert_eq!(err.kind(), ErrorKind::Timeout(TimeoutPhase::Attempt));
        assert!(err
            .source()
            .is_some_and(|s| s.is::<tower::timeout::error::Elapsed>()));
        assert_eq!(err.not_sent_reason(), None);
    }

    #[test]
    fn rate_limited_carries_the_wait() {
        let err = Error::rate_limited(Some(Duration::from_secs(7)));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.to_string().contains("7.000s"));
    }
}
