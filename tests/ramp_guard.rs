//! The ramp guard: with `GateConfig::ramp_guard`, a scope's sending rate grows no faster than
//! the configured doubling time, whatever is offered; without it, nothing holds a healthy
//! client back.
use std::time::Duration;

use tokio::time::Instant;
use tower_reliability::rate_limit::{
    Admission, Demand, GateConfig, LocalStore, RampGuard, RateLimitStore, Scope, Ticket,
};

/// Offers 100 requests a second for `minutes`, each refused unless it may go at once (its
/// deadline is its arrival); how many went in each minute.
fn offer(store: &LocalStore, scope: &Scope, minutes: u32) -> Vec<u32> {
    let t0 = Instant::now();
    let mut per_minute = vec![0; minutes as usize];
    for i in 0..minutes * 6000 {
        let now = t0 + Duration::from_millis(10) * i;
        let demand = Demand::new(scope).deadline(Some(now));
        if store.admit_in(now, &demand, Ticket::New) == Admission::Go {
            per_minute[(i / 6000) as usize] += 1;
        }
    }
    per_minute
}

#[test]
fn a_guarded_scope_doubles_at_most_once_per_doubling_time() {
    let store = LocalStore::new(
        GateConfig::default().with_ramp_guard(Some(RampGuard::new(10.0, Duration::from_secs(60)))),
    );
    let sent = offer(&store, &Scope::named("m"), 4);
    // 10/s in the first minute, then twice the previous minute's rate, up to what is offered.
    let expected = [600, 1200, 2400, 4800];
    for (minute, (&got, &want)) in sent.iter().zip(&expected).enumerate() {
        assert!(
            got >= want && got <= want + want / 20 + 10,
            "minute {minute}: {got} sent, expected about {want} ({sent:?})"
        );
    }
    // Another scope has its own ramp.
    let other = offer(&store, &Scope::named("other"), 1);
    assert!(other[0] >= 600 && other[0] <= 640, "{other:?}");
}

#[test]
fn without_a_guard_everything_offered_goes() {
    let store = LocalStore::default();
    assert_eq!(offer(&store, &Scope::named("m"), 2), [6000, 6000]);
    assert!(store.is_unrestricted(), "the lock-free path is kept");
}
