//! Real HTTP over 127.0.0.1: a trivial hyper server, and a closed-loop load generator that
//! keeps a fixed number of requests in flight through a client stack.

use std::{
    convert::Infallible,
    fmt::Debug,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use super::chat::{chat_request, drain_body};

/// Starts an HTTP/1.1 server on 127.0.0.1 that answers every request `200 ok` (after reading
/// its body) and returns its address. It runs until the runtime stops.
pub async fn start_ok_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let _ = drain_body(request.into_body()).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// What one closed-loop run achieved.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Requests answered (any status) with their body read to the end.
    pub completed: u64,
    /// Requests that failed (transport errors, body errors).
    pub errors: u64,
    /// How long the run lasted.
    pub elapsed: Duration,
    /// CPU time the whole process (client and server) used meanwhile, where measurable.
    pub cpu: Option<Duration>,
}

/// CPU time used so far by all live threads of this process, from Linux's
/// `/proc/self/task/*/schedstat` (nanosecond resolution); `None` elsewhere.
pub fn process_cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between listing and reading: skip it.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

impl Throughput {
    /// Completed requests per second.
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Keeps `in_flight` requests outstanding through clones of `service` for `duration`: each of
/// `in_flight` tasks sends a request, reads the whole response, and sends the next.
pub async fn closed_loop<S, ResB>(
    service: S,
    uri: Uri,
    in_flight: usize,
    duration: Duration,
) -> Throughput
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug + Send,
    ResB: Body + Send,
    ResB::Data: Send,
    ResB::Error: Debug,
{
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let stop = start + duration;
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let mut service = service.clone();
            let (uri, completed, errors) = (uri.clone(), completed.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < stop {
                    let outcome = match service.ready().await {
                        Ok(ready) => match ready.call(chat_request(&uri)).await {
                            Ok(response) => drain_body(response.into_body()).await.is_ok(),
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    let counter = if outcome { &completed } else { &errors };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed();
    Throughput {
        completed: completed.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        cpu: process_cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before)),
    }
}

/// One closed-loop run of a given length, to its throughput.
type RunFor = Box<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = Throughput> + Send>>>;

/// A client stack under test, type-erased so stacks of different types sit in one list.
pub struct LoopbackStack {
    /// What the stack is, for the table.
    pub name: &'static str,
    run: RunFor,
}

impl LoopbackStack {
    /// `service` sending requests to `uri` with `in_flight` requests outstanding.
    pub fn new<S, ResB>(name: &'static str, service: S, uri: Uri, in_flight: usize) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Debug + Send,
        ResB: Body + Send + 'static,
        ResB::Data: Send,
        ResB::Error: Debug,
    {
        LoopbackStack {
            name,
            run: Box::new(move |duration| {
                Box::pin(closed_loop(
                    service.clone(),
                    uri.clone(),
                    in_flight,
                    duration,
                ))
            }),
        }
    }
}

impl LoopbackStack {
    /// Runs the stack's closed loop once, for `duration`.
    pub async fn run_for(&self, duration: Duration) -> Throughput {
        (self.run)(duration).await
    }
}

/// Totals of one stack over all rounds of [`compare`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The stack's name.
    pub name: &'static str,
    /// Requests per second over all its slices.
    pub per_second: f64,
    /// The median over rounds of its rate divided by the first stack's rate in that round.
    pub median_ratio: f64,
    /// Failed requests over all slices.
    pub errors: u64,
    /// Process CPU time (client and server) per completed request, if measurable.
    pub cpu_per_request: Option<Duration>,
}

/// Runs every stack for `slice`, `rounds` times, alternating the order (forward, then
/// backward), and compares each with the first stack round by round. Short interleaved slices
/// make the comparison robust to the machine's speed drifting (other processes, frequency).
pub async fn compare(stacks: &[LoopbackStack], rounds: usize, slice: Duration) -> Vec<Comparison> {
    // Warm-up: open every pool's connections.
    for stack in stacks {
        (stack.run)(slice / 2).await;
    }
    let mut results: Vec<Vec<Throughput>> = vec![Vec::with_capacity(rounds); stacks.len()];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..stacks.len()).collect()
        } else {
            (0..stacks.len()).rev().collect()
        };
        for index in order {
            results[index].push((stacks[index].run)(slice).await);
        }
    }
    let baseline: Vec<f64> = results[0].iter().map(Throughput::per_second).collect();
    stacks
        .iter()
        .zip(&results)
        .map(|(stack, runs)| {
            let completed: u64 = runs.iter().map(|r| r.completed).sum();
            let seconds: f64 = runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
            let mut ratios: Vec<f64> = runs
                .iter()
                .zip(&baseline)
                .map(|(run, base)| run.per_second() / base)
                .collect();
            ratios.sort_by(f64::total_cmp);
            let cpu: Option<Duration> = runs.iter().map(|r| r.cpu).sum();
            Comparison {
                name: stack.name,
                per_second: completed as f64 / seconds,
                median_ratio: ratios[ratios.len() / 2],
                errors: runs.iter().map(|r| r.errors).sum(),
                cpu_per_request: cpu.map(|cpu| cpu / completed.max(1) as u32),
            }
        })
        .collect()
}
