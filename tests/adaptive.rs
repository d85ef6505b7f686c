//! The adaptive sending rate against a server that gives no hints: a simulated `limit_req`
//! (the same leaky-bucket rule nginx uses), open-loop Poisson arrivals at twice the limit,
//! and the limit halved mid-run. On paused tokio time, with a seeded arrival process, so
//! every run is the same run. (The same experiment against a real nginx, over the wire:
//! `scripts/storm.sh adaptive`.)

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{GateConfig, LocalStore, RateControl},
    RateLimitAware, TimeoutByWorkload, TimeoutProfile, Workload,
};

/// nginx's `limit_req rate=… burst=… nodelay`: a request is let through when the bucket,
/// draining at `rate`, has room; otherwise 429 without any hint.
#[derive(Debug)]
struct Bucket {
    interval: Duration,
    burst: u32,
    /// When the bucket is empty again (nginx's "excess" as a time).
    empty_at: Instant,
    log: Vec<(Instant, bool)>,
}

#[derive(Debug, Clone)]
struct Limited {
    bucket: Arc<Mutex<Bucket>>,
    latency: Duration,
}

impl Limited {
    fn new(rate: f64, burst: u32, latency: Duration) -> Self {
        Limited {
            bucket: Arc::new(Mutex::new(Bucket {
                interval: Duration::from_secs_f64(1.0 / rate),
                burst,
                empty_at: Instant::now(),
                log: Vec::new(),
            })),
            latency,
        }
    }

    fn set_rate(&self, rate: f64) {
        self.bucket.lock().unwrap().interval = Duration::from_secs_f64(1.0 / rate);
    }

    fn log(&self) -> Vec<(Instant, bool)> {
        self.bucket.lock().unwrap().log.clone()
    }
}

impl<B: Send + 'static> Service<Request<B>> for Limited {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        let now = Instant::now();
        let admitted = {
            let mut bucket = self.bucket.lock().unwrap();
            let empty_at = bucket.empty_at.max(now);
            let room = bucket.interval * bucket.burst;
            let admitted = empty_at <= now + room;
            if admitted {
                bucket.empty_at = empty_at + bucket.interval;
            }
            bucket.log.push((now, admitted));
            admitted
        };
        let latency = self.latency;
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            if !admitted {
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            }
            Ok(response)
        })
    }
}

/// What one run measured, per phase.
#[derive(Debug)]
struct Phase {
    /// Admitted attempts per second, as a share of the phase's limit.
    goodput: f64,
    /// Attempts answered 429, as a share of all attempts.
    throttled: f64,
}

struct Run {
    first: Phase,
    second: Phase,
    /// Seconds after the halving until the first one-second window sending at most 1.1 × the
    /// new limit (attempts, 429s included).
    settled_after: Option<u64>,
    /// The 10 s right after the halving.
    transition: Phase,
    /// The learned rate at the end.
    paced: Option<f64>,
}

const LIMIT: f64 = 40.0;
const PHASE: u64 = 30;
const WARM_UP: u64 = 5;

/// Poisson arrivals at twice the first limit for two phases; the limit halves between them.
async fn run(control: RateControl) -> Run {
    let server = Limited::new(LIMIT, 5, Duration::from_millis(30));
    let store = Arc::new(LocalStore::new(
        GateConfig::default().with_rate_control(control),
    ));
    let svc = fireworks::layer(Workload::Interactive)
        .timeouts(TimeoutByWorkload::new(Workload::Interactive).profile(
            Workload::Interactive,
            TimeoutProfile::new(Duration::from_secs(10)),
        ))
        .rate_limit(RateLimitAware::with_store(store.clone()))
        .layer(server.clone());
    let mut rng = fastrand::Rng::with_seed(7);
    let start = Instant::now();
    let end = start + Duration::from_secs(2 * PHASE);
    let halving = start + Duration::from_secs(PHASE);
    let mut at = start;
    let mut halved = false;
    let mut calls = Vec::new();
    loop {
        // Exponential gaps: Poisson arrivals at 2 × LIMIT.
        at += Duration::from_secs_f64(-(1.0 - rng.f64()).ln() / (2.0 * LIMIT));
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        if !halved && at >= halving {
            server.set_rate(LIMIT / 2.0);
            halved = true;
        }
        let svc = svc.clone();
        calls.push(tokio::spawn(async move {
            let request = Request::post("http://api.test/v1/chat/completions")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            if let Ok(response) = svc.oneshot(request).await {
                let _ = response.into_body().collect().await;
            }
        }));
    }
    let paced = store.paced_rate(Instant::now());
    for call in calls {
        call.await.unwrap();
    }
    let log = server.log();
    let phase = |from: u64, to: u64, limit: f64| {
        let window: Vec<_> = log
            .iter()
            .filter(|(t, _)| {
                *t >= start + Duration::from_secs(from) && *t < start + Duration::from_secs(to)
            })
            .collect();
        let admitted = window.iter().filter(|(_, ok)| *ok).count() as f64;
        Phase {
            goodput: admitted / (to - from) as f64 / limit,
            throttled: (window.len() as f64 - admitted) / window.len().max(1) as f64,
        }
    };
    let per_second = |s: u64| {
        log.iter()
            .filter(|(t, _)| {
                *t >= start + Duration::from_secs(s) && *t < start + Duration::from_secs(s + 1)
            })
            .count() as f64
    };
    let settled_after = (PHASE..2 * PHASE)
        .find(|&s| per_second(s) <= 1.1 * LIMIT / 2.0)
        .map(|s| s - PHASE);
    Run {
        first: phase(WARM_UP, PHASE, LIMIT),
        second: phase(PHASE + WARM_UP, 2 * PHASE, LIMIT / 2.0),
        settled_after,
        transition: phase(PHASE, PHASE + 10, LIMIT / 2.0),
        paced,
    }
}

fn describe(run: &Run) -> String {
    format!(
        "first phase {:?}, after halving {:?}, settled after {:?} s, 10 s after halving {:?}, \
         paced at {:?}",
        run.first, run.second, run.settled_after, run.transition, run.paced
    )
}

#[tokio::test(start_paused = true)]
async fn cubic_sends_near_the_limit_with_few_429s_and_follows_it_down() {
    let run = run(RateControl::CUBIC).await;
    let seen = describe(&run);
    eprintln!("CUBIC: {seen}");
    assert!(
        run.first.goodput >= 0.9,
        "goodput ≥ 90 % of the limit; {seen}"
    );
    assert!(run.first.throttled <= 0.1, "≤ 10 % of attempts 429; {seen}");
    assert!(run.second.goodput >= 0.9, "{seen}");
    assert!(run.second.throttled <= 0.1, "{seen}");
    assert!(
        run.settled_after.is_some_and(|s| s <= 3),
        "under the halved limit within 3 s; {seen}"
    );
    assert!(
        run.transition.throttled <= 0.15,
        "few 429s while following it down; {seen}"
    );
    let paced = run.paced.expect("still adapting at the end");
    assert!(
        paced > 0.5 * LIMIT / 2.0 && paced < 1.5 * LIMIT / 2.0,
        "{seen}"
    );
}

#[tokio::test(start_paused = true)]
async fn aimd_also_holds_the_limit() {
    let run = run(RateControl::AIMD).await;
    let seen = describe(&run);
    eprintln!("AIMD: {seen}");
    assert!(run.first.throttled <= 0.1, "{seen}");
    assert!(run.second.throttled <= 0.1, "{seen}");
    assert!(run.settled_after.is_some_and(|s| s <= 3), "{seen}");
}

#[tokio::test(start_paused = true)]
async fn without_adaptation_the_gate_alone_gets_more_429s() {
    let off = run(RateControl::Off).await;
    let cubic = run(RateControl::CUBIC).await;
    eprintln!("Off: {}", describe(&off));
    assert_eq!(off.paced, None, "nothing learned");
    assert!(
        off.first.throttled > 2.0 * cubic.first.throttled
            && off.second.throttled > 2.0 * cubic.second.throttled,
        "off: {}; cubic: {}",
        describe(&off),
        describe(&cubic)
    );
}
