//! The circuit breaker tells load shedding from an outage (issue 11, section 2), on paused time.
//!
//! - **Shedding**: a server answers `503 Service Overloaded` to 30 % of requests at random (no
//!   rate limit), 50 requests/s arrive for 20 s, each driven to success or give-up through
//!   `fireworks::layer(Workload::Interactive)`. Shedding must not stop the client: it should
//!   do what a plain retry loop does, no worse.
//! - **Outage**: everything 503 (no hint) for the first 20 s, 50 requests/s for 40 s. About one
//!   probe at a time during the outage, nothing lost, and the held backlog drains within a
//!   couple of seconds once the server answers.
//!
//! The server decides each attempt from a seeded hash of (request, attempt), so the plain loop
//! and the layer meet exactly the same outcomes request by request.
mod support;

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use support::call;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{fireworks, JitteredBackoff, Workload};

const RATE: f64 = 50.0;
const SEED: u64 = 11;

/// What the server does with one attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Ok,
    Shed,
    /// A 429 without a hint: what the gate would make of shedding if it throttled on it.
    Throttle,
}

/// An in-process server: `decide(request id, attempt index, time since start)`.
#[derive(Clone)]
struct Server {
    start: Instant,
    decide: Arc<dyn Fn(u64, u32, Duration) -> Answer + Send + Sync>,
    /// Attempts per request id so far.
    seen: Arc<Mutex<HashMap<u64, u32>>>,
    /// Every attempt: when, and whether it was shed.
    log: Arc<Mutex<Vec<(Duration, Answer)>>>,
}

impl Server {
    fn new(decide: impl Fn(u64, u32, Duration) -> Answer + Send + Sync + 'static) -> Self {
        Server {
            start: Instant::now(),
            decide: Arc::new(decide),
            seen: Arc::default(),
            log: Arc::default(),
        }
    }

    fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let id = request
            .headers()
            .get("x-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        let attempt = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(id).or_default();
            *n += 1;
            *n - 1
        };
        let at = self.start.elapsed();
        let answer = (self.decide)(id, attempt, at);
        self.log.lock().unwrap().push((at, answer));
        let (status, body) = match answer {
            Answer::Ok => (200, "{}"),
            Answer::Shed => (
                503,
                r#"{"error":{"object":"error","type":"service_unavailable","message":"Service Overloaded"}}"#,
            ),
            Answer::Throttle => (429, r#"{"error":{"object":"error","type":"rate_limit"}}"#),
        };
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response
    }

    fn attempts(&self, from: Duration, to: Duration) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|(at, _)| *at >= from && *at < to).count()
    }

    fn total_attempts(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

/// A seeded draw in [0, 1) for (request, attempt).
fn unit(id: u64, attempt: u32) -> f64 {
    let mut rng = fastrand::Rng::with_seed(
        SEED ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(attempt).wrapping_mul(0xD1B5_4A32_D192_ED03),
    );
    rng.f64()
}

/// 30 % of attempts shed at random.
fn shedding(id: u64, attempt: u32, _: Duration) -> Answer {
    if unit(id, attempt) < 0.3 {
        Answer::Shed
    } else {
        Answer::Ok
    }
}

/// The same draws, each shed answered as a throttle.
fn shedding_as_throttles(id: u64, attempt: u32, at: Duration) -> Answer {
    match shedding(id, attempt, at) {
        Answer::Shed => Answer::Throttle,
        answer => answer,
    }
}

/// Everything shed for the first 20 s.
fn outage(_: u64, _: u32, at: Duration) -> Answer {
    if at < Duration::from_secs(20) {
        Answer::Shed
    } else {
        Answer::Ok
    }
}

/// One request's fate.
#[derive(Debug, Clone, Copy)]
struct Done {
    arrived: Duration,
    finished: Duration,
    ok: bool,
}

fn request(id: u64) -> Request<Full<Bytes>> {
    Request::post("http://test.invalid/inference/v1/chat/completions")
        .header("x-id", id.to_string())
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// Drives `count` arrivals, `1 / RATE` apart, each through `send`.
async fn drive<F, Fut>(count: u64, send: F) -> Vec<Done>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let start = Instant::now();
    let mut handles = Vec::new();
    for id in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(id as f64 / RATE)).await;
        let arrived = start.elapsed();
        let fut = send(id);
        handles.push(tokio::spawn(async move {
            let ok = fut.await;
            Done {
                arrived,
                finished: start.elapsed(),
                ok,
            }
        }));
    }
    let mut done = Vec::new();
    for handle in handles {
        done.push(handle.await.unwrap());
    }
    done
}

/// The preset, seeded.
async fn through_the_layer(server: &Server, count: u64) -> Vec<Done> {
    let inner = {
        let server = server.clone();
        tower::service_fn(move |request: Request<_>| {
            let response = server.answer(&request);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let svc = ServiceBuilder::new()
        .layer(
            fireworks::layer(Workload::Interactive).backoff(JitteredBackoff::default().seed(SEED)),
        )
        .service(inner);
    drive(count, move |id| {
        let mut svc = svc.clone();
        async move {
            match call(&mut svc, request(id)).await {
                Ok(response) => {
                    let ok = response.status() == 200;
                    let _ = response.into_body().collect().await;
                    ok
                }
                Err(_) => false,
            }
        }
    })
    .await
}

/// The Fireworks guide's loop: 5 attempts, `1 s * 2^n + U(0, 1 s)` between them.
async fn through_the_guide_loop(server: &Server, count: u64) -> Vec<Done> {
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(SEED)));
    drive(count, move |id| {
        let (server, rng) = (server.clone(), rng.clone());
        async move {
            for attempt in 0..5u32 {
                if server.answer(&request(id)).status() == 200 {
                    return true;
                }
                if attempt < 4 {
                    let jitter = rng.lock().unwrap().f64();
                    tokio::time::sleep(Duration::from_secs_f64(2f64.powi(attempt as i32) + jitter))
                        .await;
                }
            }
            false
        }
    })
    .await
}

/// Lost, time-to-success quantiles (p50, p99) and the wall time.
struct Figures {
    lost: usize,
    p50: f64,
    p99: f64,
    wall: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn figures<'a>(done: impl IntoIterator<Item = &'a Done>) -> Figures {
    let done: Vec<&Done> = done.into_iter().collect();
    let mut latencies: Vec<f64> = done
        .iter()
        .filter(|d| d.ok)
        .map(|d| (d.finished - d.arrived).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    Figures {
        lost: done.iter().filter(|d| !d.ok).count(),
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        wall: done
            .iter()
            .map(|d| d.finished.as_secs_f64())
            .fold(0.0, f64::max),
    }
}

#[tokio::test(start_paused = true)]
async fn shedding_30_percent_does_not_stop_the_client() {
    let count = (20.0 * RATE) as u64;
    let guide_server = Server::new(shedding);
    let guide = figures(&through_the_guide_loop(&guide_server, count).await);
    let server = Server::new(shedding);
    let done = through_the_layer(&server, count).await;
    let ours = figures(&done);
    let successes = count as usize - ours.lost;
    let per_success = server.total_attempts() as f64 / successes as f64;
    println!(
        "shedding 30 %: guide loop lost {} p50 {:.2} s p99 {:.2} s wall {:.1} s ({:.4} attempts/success); \
         fireworks::layer lost {} p50 {:.2} s p99 {:.2} s wall {:.1} s ({per_success:.4} attempts/success)",
        guide.lost,
        guide.p50,
        guide.p99,
        guide.wall,
        guide_server.total_attempts() as f64 / (count as usize - guide.lost) as f64,
        ours.lost,
        ours.p50,
        ours.p99,
        ours.wall,
    );
    assert!(
        ours.lost <= guide.lost,
        "lost {} vs the guide's {}",
        ours.lost,
        guide.lost
    );
    assert!(ours.p50 <= 0.1, "p50 {:.2} s", ours.p50);
    assert!(per_success <= 1.45, "{per_success:.3} attempts per success");
    // The layer's backoff is the guide's: the gate must add nothing to it.
    assert!(
        ours.p99 <= guide.p99 + 0.5,
        "p99 {:.2} s vs the guide's {:.2} s",
        ours.p99,
        guide.p99
    );
}

#[tokio::test(start_paused = true)]
async fn a_total_outage_costs_about_one_probe_at_a_time_and_the_backlog_drains_fast() {
    let count = (40.0 * RATE) as u64;
    let server = Server::new(outage);
    let done = through_the_layer(&server, count).await;
    let outage_end = Duration::from_secs(20);
    let during: Vec<&Done> = done.iter().filter(|d| d.arrived < outage_end).collect();
    let held = figures(during.iter().copied());
    let all = figures(&done);
    let per_request = server.attempts(Duration::ZERO, outage_end) as f64 / during.len() as f64;
    println!(
        "outage 20 s: lost {} of {}; {per_request:.3} attempts per request during the outage; \
         outage arrivals p50 {:.2} s p99 {:.2} s; all p50 {:.2} s p99 {:.2} s; last done at {:.1} s; \
         {} attempts in all",
        all.lost,
        count,
        held.p50,
        held.p99,
        all.p50,
        all.p99,
        all.wall,
        server.total_attempts(),
    );
    assert_eq!(all.lost, 0);
    assert!(
        per_request <= 0.025,
        "{per_request:.3} attempts per request during the outage"
    );
    assert!(all.wall <= 42.5, "last request done at {:.1} s", all.wall);
    assert!(held.p99 <= 22.0, "p99 {:.2} s", held.p99);
}

/// Whether the adaptive rate should react to `503 Service Overloaded` like to a 429: here the
/// shed rate does not depend on the sending rate, so slowing down only makes callers queue.
/// The same draws answered as 429s (no hint) show what that would cost.
#[tokio::test(start_paused = true)]
async fn throttling_on_shedding_would_only_make_callers_queue() {
    let count = (20.0 * RATE) as u64;
    let shed = Server::new(shedding);
    let as_503 = figures(&through_the_layer(&shed, count).await);
    let throttled = Server::new(shedding_as_throttles);
    let as_429 = figures(&through_the_layer(&throttled, count).await);
    println!(
        "30 % shed as 503: lost {} p50 {:.2} s p99 {:.2} s wall {:.1} s; \
         as 429 (adaptive rate and no-hint closures): lost {} p50 {:.2} s p99 {:.2} s wall {:.1} s",
        as_503.lost,
        as_503.p50,
        as_503.p99,
        as_503.wall,
        as_429.lost,
        as_429.p50,
        as_429.p99,
        as_429.wall,
    );
    assert!(
        as_429.p50 > as_503.p50 + 0.1,
        "throttling on shedding delays the median caller"
    );
}
