//! A set of HTTP status codes, as a bitset.

use http::StatusCode;

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

impl From<StatusCode> for StatusSet {
    /// The set of this one status.
    fn from(status: StatusCode) -> Self {
        StatusSet::EMPTY.with(status.as_u16())
    }
}

impl From<u16> for StatusSet {
    /// The set of this one code (empty for a code outside 100–999).
    fn from(code: u16) -> Self {
        StatusSet::EMPTY.with(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            StatusSet::from(408),
            StatusSet::from(StatusCode::REQUEST_TIMEOUT)
        );
        assert_eq!(StatusSet::from(42), StatusSet::EMPTY);
    }
}
