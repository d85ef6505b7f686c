//! Instant arithmetic that cannot panic: configured durations may be huge (`Duration::MAX`
//! means "never" to some users), and `Instant + Duration` panics on overflow.

use std::time::Duration;

use tokio::time::Instant;

/// About thirty years: "never", for a client.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + after`, or about thirty years from `at` if that overflows.
pub(crate) fn after(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
    }
}
