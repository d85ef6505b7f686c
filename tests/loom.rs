//! Model checks of the crate's shared state with [loom]: every interleaving (and every weak
//! memory ordering loom can produce) of a few concurrent operations.
//!
//! Under `--cfg loom` the crate's atomics and mutexes (`src/sync.rs`) are loom's, so the real
//! `RetryBudget` and `LocalStore` code is what gets explored. The gate's wake-up path
//! (`tokio::sync::Notify`) is tokio's and cannot run under loom; its lost-wakeup property is
//! covered by `tests/stress.rs` and `tests/leaks.rs` instead.
//!
//! # Running
//!
//! ```sh
//! scripts/loom.sh
//! ```
//!
//! which runs `RUSTFLAGS="--cfg tower_reliability_loom" cargo test --test loom` in its own
//! target directory (a crate-specific cfg name: tokio's own `cfg(loom)` is left alone, so the
//! rest of the graph builds as usual).
#![cfg(tower_reliability_loom)]

use std::time::Duration;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use tokio::time::Instant;
use tower_reliability::rate_limit::{
    Admission, GateConfig, LocalStore, Probe, RateLimitStore, Signal, Ticket, Wake,
};
use tower_reliability::retry::RetryBudget;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `loom::model`, printing how many interleavings it explored (run with `--nocapture`).
fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let start = std::time::Instant::now();
    loom::model(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    println!(
        "loom {name}: {} interleavings in {:?}",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// (a) The retry budget.
// ---------------------------------------------------------------------------------------------

/// One budget operation, for the sequential reference model.
#[derive(Debug, Clone, Copy)]
enum Op {
    Withdraw(u32),
    Deposit(u32),
}

/// What `op` does to a bucket holding `tokens` of `max`, sequentially: the specification.
fn apply(tokens: u32, max: u32, op: Op) -> (u32, Option<bool>) {
    match op {
        Op::Withdraw(c) => match tokens.checked_sub(c) {
            Some(t) => (t, Some(true)),
            None => (tokens, Some(false)),
        },
        Op::Deposit(a) => ((tokens.saturating_add(a)).min(max).max(tokens), None),
    }
}

/// Every (results, final tokens) a sequential execution of `ops` in some order can give.
fn sequential_outcomes(start: u32, max: u32, ops: &[Op]) -> Vec<(Vec<Option<bool>>, u32)> {
    fn permute(
        idx: &mut Vec<usize>,
        k: usize,
        start: u32,
        max: u32,
        ops: &[Op],
        out: &mut Vec<(Vec<Option<bool>>, u32)>,
    ) {
        if k == idx.len() {
            let mut tokens = start;
            let mut results = vec![None; ops.len()];
            for &i in idx.iter() {
                let (t, r) = apply(tokens, max, ops[i]);
                tokens = t;
                results[i] = r;
            }
            out.push((results, tokens));
            return;
        }
        for j in k..idx.len() {
            idx.swap(k, j);
            permute(idx, k + 1, start, max, ops, out);
            idx.swap(k, j);
        }
    }
    let mut out = Vec::new();
    permute(&mut (0..ops.len()).collect(), 0, start, max, ops, &mut out);
    out
}

fn run(budget: &RetryBudget, op: Op) -> Option<bool> {
    let seen = budget.available();
    assert!(seen <= budget.max(), "above max: {seen}");
    match op {
        Op::Withdraw(c) => Some(budget.try_withdraw(c)),
        Op::Deposit(a) => {
            budget.deposit(a);
            None
        }
    }
}

/// Runs `ops` on three threads (two spawned, one the model's own) starting from `start` tokens
/// of `max`, and checks the outcome is one a sequential order gives: no token lost or counted
/// twice, never above `max`, never below 0 (a `u32` cannot be; an underflow would wrap far
/// above `max`).
fn check_budget(max: u32, start: u32, ops: [Op; 3]) {
    let allowed = sequential_outcomes(start, max, &ops);
    model(&format!("budget {ops:?} from {start}/{max}"), move || {
        let budget = RetryBudget::new(max, 1, 1);
        assert!(budget.try_withdraw(max - start));
        let b1 = budget.clone();
        let b2 = budget.clone();
        let h1 = thread::spawn(move || run(&b1, ops[0]));
        let h2 = thread::spawn(move || run(&b2, ops[1]));
        let r2 = run(&budget, ops[2]);
        let r0 = h1.join().unwrap();
        let r1 = h2.join().unwrap();
        let outcome = (vec![r0, r1, r2], budget.available());
        assert!(
            allowed.contains(&outcome),
            "not linearizable: {outcome:?} for {ops:?} from {start}/{max}; allowed {allowed:?}"
        );
    });
}

#[test]
fn budget_concurrent_withdrawals_take_each_token_once() {
    // 10 tokens, three withdrawals of 4: exactly two succeed, 2 left.
    check_budget(10, 10, [Op::Withdraw(4), Op::Withdraw(4), Op::Withdraw(4)]);
}

#[test]
fn budget_deposits_and_withdrawals_linearize() {
    // 10 of 10 after a withdrawal of 7 -> 3; a deposit that would overflow the max races a
    // withdrawal that only succeeds after some deposit, and another deposit.
    check_budget(10, 3, [Op::Deposit(5), Op::Withdraw(6), Op::Deposit(4)]);
}

#[test]
fn budget_deposit_at_full_and_withdraw_race() {
    // The deposit's fast path (a relaxed load, "already full") races a withdrawal.
    check_budget(10, 10, [Op::Withdraw(5), Op::Deposit(5), Op::Withdraw(6)]);
}

// ---------------------------------------------------------------------------------------------
// (b) The rate-limit state.
// ---------------------------------------------------------------------------------------------

/// The default gate, but a breaker that trips on three failures (of three): small models.
fn config() -> GateConfig {
    GateConfig::default().with_minimum_throughput(3)
}

/// A store whose breaker tripped at `t0` (three failures): open until `t0 + probe_base`.
fn tripped(t0: Instant) -> LocalStore {
    let s = LocalStore::new(config());
    for _ in 0..config().minimum_throughput() {
        s.record(t0, Signal::Failing, None);
    }
    s
}

fn is_probe(a: Admission) -> bool {
    matches!(a, Admission::Probe(_))
}

fn probe(a: Admission) -> Probe {
    match a {
        Admission::Probe(p) => p,
        other => panic!("expected a probe, got {other:?}"),
    }
}

#[test]
fn store_admits_one_probe_at_a_time() {
    let t0 = Instant::now();
    let t1 = t0 + config().probe_base();
    model("store_admits_one_probe_at_a_time", move || {
        let s = Arc::new(tripped(t0));
        let (s1, s2) = (s.clone(), s.clone());
        let h1 = thread::spawn(move || s1.admit(t1, Ticket::New, None));
        let h2 = thread::spawn(move || s2.admit(t1, Ticket::New, None));
        let a3 = s.admit(t1, Ticket::New, None);
        let all = [h1.join().unwrap(), h2.join().unwrap(), a3];
        let probes = all.iter().filter(|a| is_probe(**a)).count();
        assert_eq!(probes, 1, "exactly one probe: {all:?}");
        for a in all.iter().filter(|a| !is_probe(**a)) {
            assert!(matches!(a, Admission::Wait(_)), "{a:?}");
        }
    });
}

#[test]
fn store_released_probe_lets_exactly_one_other_probe() {
    let t0 = Instant::now();
    let t1 = t0 + config().probe_base();
    model(
        "store_released_probe_lets_exactly_one_other_probe",
        move || {
            let s = Arc::new(tripped(t0));
            let p1 = probe(s.admit(t1, Ticket::New, None));
            let (s1, s2) = (s.clone(), s.clone());
            // The probe's caller goes away while two held requests ask again.
            let h1 = thread::spawn(move || s1.release_probe(p1));
            let h2 = thread::spawn(move || s2.admit(t1, Ticket::New, None));
            let a3 = s.admit(t1, Ticket::New, None);
            let wake = h1.join().unwrap();
            let a2 = h2.join().unwrap();
            assert_eq!(wake, Wake::All, "the release wakes the held requests");
            let probes = [a2, a3].iter().filter(|a| is_probe(**a)).count();
            assert!(probes <= 1, "two probes at once: {a2:?} {a3:?}");
            // The freed turn is taken exactly once: by one of them, or by the next to ask.
            let next = s.admit(t1, Ticket::New, None);
            assert_eq!(
                probes + usize::from(is_probe(next)),
                1,
                "{a2:?} {a3:?} then {next:?}"
            );
            assert!(!is_probe(s.admit(t1, Ticket::New, None)));
        },
    );
}

/// A probe turn given back twice at once — two releases, or a release racing the probe's
/// own neutral outcome — is freed once: one wake-up, then exactly one new probe.
fn check_no_double_release(second_by_record: bool) {
    let t0 = Instant::now();
    let t1 = t0 + config().probe_base();
    model(
        &format!("no double release (second by record: {second_by_record})"),
        move || {
            let s = Arc::new(tripped(t0));
            let p1 = probe(s.admit(t1, Ticket::New, None));
            let s1 = s.clone();
            let h1 = thread::spawn(move || s1.release_probe(p1));
            let w2 = if second_by_record {
                s.record(t1, Signal::Neutral, Some(p1))
            } else {
                s.release_probe(p1)
            };
            let wakes = [h1.join().unwrap(), w2];
            assert_eq!(
                wakes.iter().filter(|w| **w == Wake::All).count(),
                1,
                "the turn is freed once: {wakes:?}"
            );
            let next = s.admit(t1, Ticket::New, None);
            let after = s.admit(t1, Ticket::New, None);
            assert!(is_probe(next), "the freed turn is taken: {next:?}");
            assert!(
                matches!(after, Admission::Wait(_)),
                "no second probe: {after:?}"
            );
            // And once more, sequentially: a late second release of a turn frees nothing.
            let p2 = probe(next);
            assert_eq!(s.release_probe(p2), Wake::All);
            assert_eq!(s.release_probe(p2), Wake::No, "no double release");
        },
    );
}

#[test]
fn store_no_double_release() {
    check_no_double_release(false);
}

#[test]
fn store_no_double_release_racing_the_probes_outcome() {
    check_no_double_release(true);
}

/// A probe admitted before the breaker closed and tripped again (a slow attempt, still in
/// flight) must not free the *current* probe's turn when its caller goes away: probe turns
/// carry a token, and a stale token frees nothing (this model found the bug when they did not).
#[test]
fn store_stale_probe_release_does_not_free_the_current_probe() {
    let t0 = Instant::now();
    let t1 = t0 + config().probe_base();
    let t2 = t1 + config().probe_base();
    model(
        "store_stale_probe_release_does_not_free_the_current_probe",
        move || {
            let s = tripped(t0);
            // P1 probes, and stays in flight (a slow attempt).
            let p1 = probe(s.admit(t1, Ticket::New, None));
            // A request sent before the trip comes back healthy: the breaker closes...
            assert_eq!(s.record(t1, Signal::Healthy, None), Wake::All);
            // ...and trips again.
            for _ in 0..config().minimum_throughput() {
                s.record(t1, Signal::Failing, None);
            }
            // P2 probes.
            assert!(is_probe(s.admit(t2, Ticket::New, None)));
            // P1's caller goes away.
            s.release_probe(p1);
            let p3 = s.admit(t2, Ticket::New, None);
            assert!(
                matches!(p3, Admission::Wait(_)),
                "P2 is still probing, but {p3:?}"
            );
        },
    );
}

#[test]
fn store_fast_path_never_hides_a_closure() {
    let t0 = Instant::now();
    model("store_fast_path_never_hides_a_closure", move || {
        // A short closure at t0, over by t0 + 5 ms: the flag is set, and the healthy thread
        // below may clear it (settle) concurrently with the new closure.
        let s = Arc::new(LocalStore::new(config()));
        s.record(t0, Signal::Throttled { hint: Some(ms(1)) }, None);
        let now = t0 + ms(5);
        let recorded = Arc::new(AtomicBool::new(false));

        let (sa, ra) = (s.clone(), recorded.clone());
        let closer = thread::spawn(move || {
            sa.record(
                now,
                Signal::Throttled {
                    hint: Some(Duration::from_secs(10)),
                },
                None,
            );
            ra.store(true, Ordering::Release);
        });
        let sc = s.clone();
        let healthy = thread::spawn(move || {
            // Successes and newcomers from before the closure: they may settle the state.
            sc.record(now, Signal::Healthy, None);
            sc.admit(now, Ticket::New, None)
        });
        // A request admitted after the closure was recorded (it saw the closer's flag) must
        // not take the lock-free "go".
        if recorded.load(Ordering::Acquire) {
            let a = s.admit(now + ms(1), Ticket::New, None);
            assert!(matches!(a, Admission::Wait(_)), "lost restriction: {a:?}");
        }
        closer.join().unwrap();
        let _ = healthy.join().unwrap();
        let a = s.admit(now + ms(1), Ticket::New, None);
        assert!(matches!(a, Admission::Wait(_)), "lost restriction: {a:?}");
        assert!(!s.is_unrestricted());
    });
}

#[test]
fn store_fast_path_sees_a_failure_streak() {
    // Failures recorded concurrently with healthy outcomes: after the breaker trips (seen by a
    // thread that then asks), no newcomer goes through the fast path.
    let t0 = Instant::now();
    model("store_fast_path_sees_a_failure_streak", move || {
        let s = Arc::new(LocalStore::new(config()));
        s.record(t0, Signal::Failing, None);
        let tripped = Arc::new(AtomicBool::new(false));
        let (sa, ta) = (s.clone(), tripped.clone());
        let failer = thread::spawn(move || {
            sa.record(t0, Signal::Failing, None);
            sa.record(t0, Signal::Failing, None);
            ta.store(true, Ordering::Release);
        });
        let sb = s.clone();
        let other = thread::spawn(move || sb.admit(t0, Ticket::New, None));
        if tripped.load(Ordering::Acquire) {
            let a = s.admit(t0 + ms(1), Ticket::New, None);
            assert!(matches!(a, Admission::Wait(_)), "lost restriction: {a:?}");
        }
        failer.join().unwrap();
        let _ = other.join().unwrap();
        assert!(s.breaker_engaged());
        let a = s.admit(t0 + ms(1), Ticket::New, None);
        assert!(matches!(a, Admission::Wait(_)), "lost restriction: {a:?}");
    });
}
