//! Which outcomes are worth another attempt. Pure functions, no I/O.

use http::{HeaderMap, StatusCode};

use crate::{
    error::{is_transport_failure, Error, ErrorKind, TimeoutPhase},
    headers,
};

/// A set of HTTP status codes, as a bitset (no allocation, `Copy`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 16]);

impl StatusSet {
    /// No status at all.
    pub const EMPTY: StatusSet = StatusSet([0; 16]);

    /// The guide's retryable statuses: 429, 500, 502, 503, 504.
    pub const GUIDE: StatusSet = StatusSet::EMPTY
        .with(429)
        .with(500)
        .with(502)
        .with(503)
        .with(504);

    /// This set plus `code` (codes outside 100–999 are ignored).
    pub const fn with(mut self, code: u16) -> Self {
        if code >= 100 && code < 1000 {
            self.0[(code / 64) as usize] |= 1 << (code % 64);
        }
        self
    }

    /// This set without `code`.
    pub const fn without(mut self, code: u16) -> Self {
        if code < 1000 {
            self.0[(code / 64) as usize] &= !(1 << (code % 64));
        }
        self
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        self.0[(code / 64) as usize] & (1 << (code % 64)) != 0
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((100u16..1000).filter(|c| self.0[(c / 64) as usize] & (1 << (c % 64)) != 0))
            .finish()
    }
}

impl Default for StatusSet {
    /// [`StatusSet::GUIDE`]: 429, 500, 502, 503, 504.
    fn default() -> Self {
        StatusSet::GUIDE
    }
}

/// Why an outcome is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryCause {
    /// A retryable status (429, 5xx, or one you configured).
    Status(StatusCode),
    /// The request never reached the server.
    Connect,
    /// The connection failed after the request may have been sent, before a response.
    Transport,
    /// The per-attempt timeout fired.
    AttemptTimeout,
}

impl RetryCause {
    /// A short, stable name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::Status(s) if s == StatusCode::TOO_MANY_REQUESTS => "429",
            RetryCause::Status(s) if s.is_server_error() => "5xx",
            RetryCause::Status(_) => "status",
            RetryCause::Connect => "connect",
            RetryCause::Transport => "transport",
            RetryCause::AttemptTimeout => "attempt_timeout",
        }
    }
}

/// The verdict on a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to the caller: nothing to retry.
    Final,
    /// Retryable.
    Retry(RetryCause),
    /// Retryable by status, but the server said `x-should-retry: false`.
    ServerSaidNo,
}

/// What the retry layer retries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Classifier {
    pub(crate) statuses: StatusSet,
    pub(crate) honour_should_retry: bool,
    pub(crate) retry_connect: bool,
    pub(crate) retry_transport: bool,
    pub(crate) retry_attempt_timeout: bool,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            statuses: StatusSet::GUIDE,
            honour_should_retry: true,
            retry_connect: true,
            retry_transport: true,
            retry_attempt_timeout: true,
        }
    }
}

impl Classifier {
    pub(crate) fn response(&self, status: StatusCode, headers: &HeaderMap) -> Verdict {
        // 2xx is by far the most common answer: decide it without a header lookup.
        if status.is_success() {
            return Verdict::Final;
        }
        let by_status = self.statuses.contains(status);
        match (self.honour_should_retry, by_status) {
            (true, _) => match (headers::should_retry(headers), by_status) {
                (Some(true), _) | (None, true) => Verdict::Retry(RetryCause::Status(status)),
                (Some(false), true) => Verdict::ServerSaidNo,
                _ => Verdict::Final,
            },
            (false, true) => Verdict::Retry(RetryCause::Status(status)),
            (false, false) => Verdict::Final,
        }
    }

    pub(crate) fn error(&self, error: &Error) -> Option<RetryCause> {
        match error.kind() {
            ErrorKind::Connect if self.retry_connect => Some(RetryCause::Connect),
            ErrorKind::Timeout(TimeoutPhase::Attempt) if self.retry_attempt_timeout => {
                Some(RetryCause::AttemptTimeout)
            }
            ErrorKind::Inner if self.retry_transport => {
                let source = std::error::Error::source(error)?;
                is_transport_failure(source).then_some(RetryCause::Transport)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(code: u16, should_retry: Option<&str>) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(v) = should_retry {
            headers.insert("x-should-retry", v.parse().unwrap());
        }
        Classifier::default().response(StatusCode::from_u16(code).unwrap(), &headers)
    }

    #[test]
    fn the_guides_table() {
        for code in [429, 500, 502, 503, 504] {
            assert!(matches!(verdict(code, None), Verdict::Retry(_)), "{code}");
        }
        for code in [200, 201, 400, 401, 403, 404, 408, 409, 422, 501, 505] {
            assert_eq!(verdict(code, None), Verdict::Final, "{code}");
        }
    }

    #[test]
    fn x_should_retry_overrides_both_ways() {
        assert_eq!(verdict(503, Some("false")), Verdict::ServerSaidNo);
        assert!(matches!(verdict(409, Some("true")), Verdict::Retry(_)));
        assert_eq!(verdict(200, Some("true")), Verdict::Final);
        let ignore = Classifier {
            honour_should_retry: false,
            ..Classifier::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-should-retry", "false".parse().unwrap());
        assert!(matches!(
            ignore.response(StatusCode::BAD_GATEWAY, &h),
            Verdict::Retry(_)
        ));
    }

    #[test]
    fn status_set_edges() {
        let set = StatusSet::EMPTY.with(408).with(999).with(1000).with(42);
        assert!(set.contains(StatusCode::REQUEST_TIMEOUT));
        assert!(set.contains(StatusCode::from_u16(999).unwrap()));
        assert!(!StatusSet::GUIDE
            .without(429)
            .contains(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(
            format!("{:?}", StatusSet::GUIDE),
            "{429, 500, 502, 503, 504}"
        );
    }

    #[test]
    fn errors() {
        let c = Classifier::default();
        let connect =
            Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let reset = Error::from_inner(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let other = Error::from_inner("some application error");
        assert_eq!(c.error(&connect), Some(RetryCause::Connect));
        assert_eq!(c.error(&reset), Some(RetryCause::Transport));
        assert_eq!(c.error(&other), None);
        assert_eq!(
            c.error(&Error::timeout(TimeoutPhase::Attempt)),
            Some(RetryCause::AttemptTimeout)
        );
        assert_eq!(c.error(&Error::timeout(TimeoutPhase::Deadline)), None);
        assert_eq!(c.error(&Error::rate_limited(None)), None);
    }
}
