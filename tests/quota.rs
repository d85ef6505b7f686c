//! OpenAI-style quota headers read as a continuously refilling bucket.
//!
//! `x-ratelimit-remaining-requests: 0` with `x-ratelimit-reset-requests: 60s` and
//! `x-ratelimit-limit-requests: 30` means "the bucket of 30 is empty and full again in 60 s":
//! one more request fits in 2 s, and the client should go on at one request every 2 s, not
//! stop for a minute. The first tests use a scripted service on paused time; the others drive
//! the in-process test server on 127.0.0.1, whose quota follows Tokio's (paused) clock.
mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::chat::{chat_request, one_token_chat};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::{body_bytes, call, post, Mock, Step};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    fireworks,
    rate_limit::{Admission, LocalStore, Quota, RateLimitStore, Signal, Ticket},
    retry::ReplayBody,
    testing::{FireworksServer, HintStyle, RateLimitConfig, ServerConfig, DEFAULT_API_KEY},
    RateLimitAware, TimeoutByWorkload, Workload,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn quota_headers(limit: &str, remaining: &str, reset: &str) -> Step {
    Step::With(
        200,
        vec![
            ("x-ratelimit-limit-requests", limit.to_owned()),
            ("x-ratelimit-remaining-requests", remaining.to_owned()),
            ("x-ratelimit-reset-requests", reset.to_owned()),
        ],
        "",
    )
}

#[tokio::test(start_paused = true)]
async fn an_empty_bucket_lets_the_next_request_go_after_one_refill_interval() {
    // 30 a minute, none left, full again in 60 s: one request comes back every 2 s.
    let mock = Mock::new([quota_headers("30", "0", "60s")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutByWorkload::new(Workload::Interactive))
        .layer(RateLimitAware::new())
        .service(mock.clone());
    let start = Instant::now();
    for _ in 0..4 {
        call(&mut svc, post("{}")).await.unwrap();
    }
    let times: Vec<Duration> = mock.calls().iter().map(|c| c.at - start).collect();
    // Sequential callers: paced at the refill rate, not held until the bucket is full.
    assert_eq!(times, [secs(0), secs(2), secs(4), secs(6)]);
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_the_reset_bounds_the_wait() {
    // A bucket of unknown size is full again in 2 s: the next request fits by then at the
    // latest (the one reading that is never too early).
    let wait = wait_after_an_answer_saying(&[
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "2s"),
    ])
    .await;
    assert_eq!(wait, secs(2));
}

#[tokio::test(start_paused = true)]
async fn without_a_reset_the_limit_is_read_per_minute() {
    // Fireworks' older headers: a limit and a remaining count, no reset. Its limits are per
    // minute, so 120 a minute gives one back every 500 ms.
    let wait = wait_after_an_answer_saying(&[
        ("x-ratelimit-limit-requests", "120"),
        ("x-ratelimit-remaining-requests", "0"),
    ])
    .await;
    assert_eq!(wait, Duration::from_millis(500));
}

/// Through the gate alone: a first request answered 200 with these headers, then how long
/// the next one waits.
async fn wait_after_an_answer_saying(headers: &[(&'static str, &str)]) -> Duration {
    let headers = headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let mock = Mock::new([Step::With(200, headers, "")], Step::ok());
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitAware::new())
        .service(mock.clone());
    call(&mut svc, post("{}")).await.unwrap();
    let start = Instant::now();
    call(&mut svc, post("{}")).await.unwrap();
    start.elapsed()
}

// ---- The gate itself ------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn spent(limit: u64, reset: Duration) -> Signal {
    Signal::Exhausted(Quota::new(Some(limit), 0, Some(reset)))
}

fn slot(admission: Admission) -> Instant {
    match admission {
        Admission::Wait(r) => r.at(),
        other => panic!("a slot, got {other:?}"),
    }
}

#[test]
fn the_gate_mirrors_the_bucket_a_burst_after_a_quiet_spell_then_one_per_interval() {
    let store = LocalStore::default();
    let t0 = Instant::now();
    store.record(t0, spent(30, secs(60)), None);
    // The server's bucket gives the next request back in 2 s.
    assert_eq!(store.closed_until(t0), Some(t0 + secs(2)));
    // Three callers at once get slots one refill interval apart.
    let reservations: Vec<_> = (0..3)
        .map(|_| match store.admit(t0, Ticket::New, None) {
            Admission::Wait(r) => r,
            other => panic!("a slot, got {other:?}"),
        })
        .collect();
    let slots: Vec<Instant> = reservations.iter().map(|r| r.at()).collect();
    assert_eq!(slots, [t0 + secs(2), t0 + secs(4), t0 + secs(6)]);
    // A caller whose deadline comes before its place (behind the three) is refused at once,
    // and takes no place.
    assert_eq!(
        store.admit(t0, Ticket::New, Some(t0 + secs(5))),
        Admission::TooLate { wait: secs(8) }
    );
    // The three go at their slots, each charged as it goes.
    for r in reservations {
        assert_eq!(
            store.admit(r.at(), Ticket::Reserved(r), None),
            Admission::Go
        );
    }
    // Twenty quiet seconds after the last slot give ten requests back: they go at once.
    let later = t0 + secs(26);
    for _ in 0..10 {
        assert_eq!(store.admit(later, Ticket::New, None), Admission::Go);
    }
    let eleventh = store.admit(later, Ticket::New, None);
    assert_eq!(slot(eleventh), later + secs(2));
    // (Its caller goes away: it gives its place back.)
    if let Admission::Wait(r) = eleventh {
        store.leave(later, r);
    }
    // Once the mirror is full again it is dropped: the lock-free path is back.
    let full = later + secs(120);
    store.record(full, Signal::Healthy, None);
    assert!(store.is_unrestricted());
    assert_eq!(store.admit(full, Ticket::New, None), Admission::Go);
}

#[test]
fn slots_voided_by_a_429_are_not_charged_twice() {
    let store = LocalStore::default();
    let t0 = Instant::now();
    store.record(t0, spent(30, secs(60)), None);
    let slots: Vec<_> = (0..3)
        .map(|_| match store.admit(t0, Ticket::New, None) {
            Admission::Wait(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    // A 429 hinting 1 s (from a request in flight) closes the gate and voids the slots.
    store.record(
        t0 + ms(500),
        Signal::Throttled {
            hint: Some(secs(1)),
        },
        None,
    );
    // Their holders come back at their slots and go at the quota's pace, not three intervals
    // later.
    for r in slots {
        assert_eq!(
            store.admit(r.at(), Ticket::Reserved(r), None),
            Admission::Go
        );
    }
}

// ---- Against the in-process test server, on paused time ------------------------------------

type Body = ReplayBody<Full<Bytes>>;

/// The preset with a long enough deadline for a client that offers more than its quota.
fn preset(total: Duration) -> fireworks::FireworksLayer {
    let profile = Workload::Interactive.profile().with_total(total);
    fireworks::layer(Workload::Interactive).timeouts(
        TimeoutByWorkload::new(Workload::Interactive).profile(Workload::Interactive, profile),
    )
}

fn chat(server: &FireworksServer) -> http::Request<Full<Bytes>> {
    chat_request(&server.chat_url(), DEFAULT_API_KEY, one_token_chat())
}

/// One offered request: when it arrived, and when (and whether) it was served.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    arrived: Duration,
    done: Duration,
    ok: bool,
}

/// Offers `count` requests `every` apart through one preset (cloned per request), each driven
/// to success or give-up.
async fn offer(
    server: &FireworksServer,
    layer: fireworks::FireworksLayer,
    count: u32,
    every: Duration,
) -> Vec<Outcome> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let svc = ServiceBuilder::new().layer(layer).service(client);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        tokio::time::sleep_until(start + every * i).await;
        let mut svc = svc.clone();
        let request = chat(server);
        tasks.push(tokio::spawn(async move {
            let arrived = start.elapsed();
            let ok = match call(&mut svc, request).await {
                Ok(response) => response.status() == 200 && body_bytes(response).await.is_ok(),
                Err(_) => false,
            };
            Outcome {
                arrived,
                done: start.elapsed(),
                ok,
            }
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("the request task"));
    }
    outcomes
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort();
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

async fn quota_server(per_minute: u32) -> FireworksServer {
    let quota = RateLimitConfig::new(f64::from(per_minute) / 60.0, per_minute)
        .hint(HintStyle::SecondsAndMs);
    FireworksServer::start(
        ServerConfig::default()
            .token_interval(Duration::from_millis(1))
            .tokens_per_completion(1)
            .rate_limit(quota),
    )
    .await
    .expect("the test server starts")
}

#[tokio::test(start_paused = true)]
async fn a_client_at_twice_the_quota_is_never_held_more_than_a_few_refill_intervals() {
    // 30 a minute (one back every 2 s), offered one a second for two minutes.
    let server = quota_server(30).await;
    let outcomes = offer(&server, preset(secs(180)), 120, secs(1)).await;
    assert!(outcomes.iter().all(|o| o.ok), "every request is served");
    let mut served: Vec<Duration> = outcomes.iter().map(|o| o.done).collect();
    served.sort();
    let widest = served
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let stats = server.stats();
    println!(
        "2x quota: widest gap between two served requests {widest:?}, last served at {:?}, \
         {} of {} attempts 429",
        served.last().copied().unwrap_or_default(),
        stats.count(429),
        stats.requests
    );
    // Held for about one refill interval at a time, never until the bucket is full (60 s).
    assert!(widest <= secs(6), "widest gap {widest:?}");
    // Served at the quota: 30 at once, then one every 2 s: 120 by about 180 s.
    let last = served.last().copied().unwrap_or_default();
    assert!(last <= secs(186), "last served at {last:?}");
    assert!(stats.count(429) * 20 <= stats.requests, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn the_mocks_scenario_30_a_minute_offered_2_a_second_for_30_s() {
    let server = quota_server(30).await;
    let outcomes = offer(&server, preset(secs(90)), 60, Duration::from_millis(500)).await;
    let waits: Vec<Duration> = outcomes.iter().map(|o| o.done - o.arrived).collect();
    let last = outcomes.iter().map(|o| o.done).max().unwrap_or_default();
    let p50 = percentile(waits.clone(), 0.50);
    let p99 = percentile(waits, 0.99);
    let stats = server.stats();
    let lost = outcomes.iter().filter(|o| !o.ok).count();
    println!(
        "mock scenario: {} requests, lost {lost}, last served at {last:?}, p50 {p50:?}, \
         p99 {p99:?}, {} of {} attempts 429",
        outcomes.len(),
        stats.count(429),
        stats.requests
    );
    assert_eq!(lost, 0, "every request succeeds");
    // The quota allows the 60th request at 60 s (30 at once, then one every 2 s).
    assert!(
        last >= secs(59) && last <= secs(63),
        "last served at {last:?}"
    );
    assert!(p99 <= secs(35), "p99 {p99:?}");
    assert!(stats.count(429) * 20 <= stats.requests, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn forty_callers_at_once_on_30_a_minute_all_finish_within_the_default_deadline() {
    // The second run: 40 concurrent callers on a fresh quota of 30 a minute. 30 are
    // served at once; the 10 sent together with them meet 429s, and come back one per refill
    // interval, not when the bucket is full again (60 s, the whole interactive deadline).
    let server = quota_server(30).await;
    let outcomes = offer(
        &server,
        fireworks::layer(Workload::Interactive),
        40,
        Duration::ZERO,
    )
    .await;
    let lost = outcomes.iter().filter(|o| !o.ok).count();
    let last = outcomes.iter().map(|o| o.done).max().unwrap_or_default();
    let stats = server.stats();
    println!(
        "40 at once: lost {lost}, last served at {last:?}, {} of {} attempts 429",
        stats.count(429),
        stats.requests
    );
    assert_eq!(lost, 0, "every caller is served");
    // The tenth extra request fits at 20 s; a few intervals of slack for the retries' backoff.
    assert!(last <= secs(26), "last served at {last:?}");
    assert!(stats.count(429) <= 10, "{stats:?}");
}
