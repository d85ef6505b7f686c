//! Every service of the crate gives its inner service back as tower's do: `get_ref`, `get_mut`,
//! `into_inner` (issue 12 §3, one naming scheme).

use std::time::Duration;

use tower_layer::Layer;
use tower_reliability::{
    backoff::JitteredBackoffService,
    rate_limit::RateLimitAwareService,
    retry::RetryOnStatusService,
    timeout::{AttemptTimeout, AttemptTimeoutService, TimeoutByWorkloadService},
    JitteredBackoff, RateLimitAware, RetryOnStatus, TimeoutByWorkload, Workload,
};

/// A stand-in inner service: only its identity matters here.
#[derive(Debug, Clone, PartialEq)]
struct Inner(u32);

/// Reads, changes and takes back the inner service through the three accessors.
macro_rules! round_trip {
    ($service:expr) => {{
        let mut service = $service;
        assert_eq!(service.get_ref(), &Inner(1));
        service.get_mut().0 = 2;
        assert_eq!(service.get_ref(), &Inner(2));
        assert_eq!(service.into_inner(), Inner(2));
    }};
}

#[test]
fn every_service_gives_its_inner_service_back() {
    let retry: RetryOnStatusService<Inner> = RetryOnStatus::default().layer(Inner(1));
    round_trip!(retry);
    let backoff: JitteredBackoffService<Inner> = JitteredBackoff::default().layer(Inner(1));
    round_trip!(backoff);
    let timeout: TimeoutByWorkloadService<Inner> =
        TimeoutByWorkload::new(Workload::Interactive).layer(Inner(1));
    round_trip!(timeout);
    let attempt: AttemptTimeoutService<Inner> =
        AttemptTimeout::fixed(Duration::from_secs(1)).layer(Inner(1));
    round_trip!(attempt);
    let gate: RateLimitAwareService<Inner> = RateLimitAware::new().layer(Inner(1));
    round_trip!(gate);
}
