//! What the layers cost when nothing goes wrong.
//!
//! 1. **In process** (criterion, then a table): one request at a time through an inner
//!    `tower::service_fn` that reads the 200-byte JSON request body and answers `200` at once,
//!    the response body read to its end, on a current-thread runtime. Stacks: the bare service;
//!    the tower stack a user writes today (`Timeout` + `Retry` with a request-cloning policy,
//!    `ExponentialBackoffMaker` and `TpsBudget`); each of our four layers alone; the full
//!    `fireworks::layer(Workload::Interactive)`. The table gives nanoseconds per request
//!    (criterion's median sample, and the median of interleaved rounds of a plain loop) and
//!    heap allocations per request (a counting global allocator over 100 000 requests), each
//!    also as the difference to the bare service: that difference is what a stack adds.
//! 2. **Loopback** (a table): requests per second through a hyper-util client against a
//!    trivial hyper server on 127.0.0.1 with 64 requests in flight: the bare client, the
//!    user-written tower stack over it, and the full preset over it. The stacks take turns in
//!    short slices (forward, then backward order) and each is compared with the bare client of
//!    the same round, so the ratio survives other processes competing for the two cores.
//!
//! `cargo bench --bench overhead` runs both (about two minutes). Options, as environment
//! variables:
//! - `OVERHEAD_LOOPBACK_LAYERS=1`: also each of our layers alone over the loopback client, and
//!   diagnostics (the preset without its timers, and the bare client sent the preset's request
//!   body type);
//! - `OVERHEAD_TRACE_ALLOCS=1`: print a backtrace for every allocation of one request through
//!   each stack (build with `CARGO_PROFILE_BENCH_DEBUG=1` for file and line numbers);
//! - `OVERHEAD_SKIP_LOOPBACK=1`: the in-process part only;
//! - `OVERHEAD_FLOOR=1`: also, in process (criterion and the table), `floor (hand-fused
//!   reference)`: what the preset must still do on this success path, by hand in one service,
//!   one future and one body wrapper (`common/floor.rs`), and its variants (one part left out,
//!   timers boxed), after a check that the floor does all of its work (`common/floor_check.rs`).
//!   The profiling mode below always offers these stacks (`OVERHEAD_ONLY=hand-fused`).
//!
//! **Profiling.** `OVERHEAD_ONLY=<part of a stack's name>` (any case) turns the binary into a
//! profiling target: no criterion, no table, no other stack; each stack whose name contains it
//! runs its in-process loop alone for `OVERHEAD_SECONDS` (default 10), or for exactly
//! `OVERHEAD_REQUESTS` requests (for instruction counters), and prints the size of its response
//! future and body and its ns/req (median of 10 000-request chunks). With
//! `OVERHEAD_LOOPBACK=1` the chosen loopback stacks run instead ([`IN_FLIGHT`] in flight, the
//! layers-alone rows included), each for `OVERHEAD_SECONDS`. For example:
//!
//! `OVERHEAD_SIZES=1` prints instead the size of the service, response future, request and
//! response body at each layer of the preset (what every request moves around), and exits.
//!
//! ```text
//! CARGO_PROFILE_BENCH_DEBUG=1 cargo bench --bench overhead --no-run
//! OVERHEAD_ONLY=preset perf record -g --call-graph dwarf target/release/deps/overhead-<hash>
//! OVERHEAD_ONLY=retryonstatus OVERHEAD_REQUESTS=100000 valgrind --tool=callgrind target/release/deps/overhead-<hash>
//! OVERHEAD_ONLY=preset OVERHEAD_LOOPBACK=1 perf record -g target/release/deps/overhead-<hash>
//! ```

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
#[path = "common/chat.rs"]
mod chat;
#[path = "common/floor.rs"]
mod floor;
#[path = "common/floor_check.rs"]
mod floor_check;
#[path = "common/in_process.rs"]
mod in_process;
#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/loopback.rs"]
mod loopback;
#[path = "common/profile.rs"]
mod profile;
#[path = "common/sizes.rs"]
mod sizes;
#[path = "common/tower_retry.rs"]
mod tower_retry;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use criterion::Criterion;
use http::{Request, Uri};
use http_body::Body;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::runtime::{Builder, Runtime};
use tower::{service_fn, Layer};
use tower_reliability::{
    fireworks, retry::ReplayBody, JitteredBackoff, RateLimitAware, RetryOnStatus,
    TimeoutByWorkload, TimeoutProfile, Workload,
};

use alloc_counter::{allocations, trace_allocations, CountingAllocator};
use floor::{Cut, FloorReplayBody, FloorService, Plain, Timed, TimedBoxed};
use in_process::{answer, RequestLoop, StackLoop};
use loopback::LoopbackStack;
use profile::ProfileMode;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Criterion samples per stack.
const SAMPLE_SIZE: usize = 50;
/// Requests per stack for the allocation count and the plain timing loop.
const COUNTED_REQUESTS: u64 = 100_000;
/// Interleaved rounds the counted requests are sent in.
const COUNTING_ROUNDS: usize = 20;
/// Requests sent before counting, so one-time initialisation is not counted.
const WARM_UP_REQUESTS: u64 = 2_000;
/// Requests in flight in the loopback comparison.
const IN_FLIGHT: usize = 64;
/// Rounds of the loopback comparison.
const LOOPBACK_ROUNDS: usize = 20;
/// How long each stack runs per loopback round.
const LOOPBACK_SLICE: Duration = Duration::from_millis(300);

/// One stack under test.
struct Stack {
    name: &'static str,
    requests: Box<dyn RequestLoop>,
    /// `(iterations, elapsed)` of every criterion sample of this stack.
    samples: Arc<Mutex<Vec<(u64, Duration)>>>,
}

fn stack(name: &'static str, requests: Box<dyn RequestLoop>) -> Stack {
    Stack {
        name,
        requests,
        samples: Arc::default(),
    }
}

/// The stacks, bare first: every other row is compared with it; with `with_floor`, the
/// hand-fused floor and its variants last.
fn stacks(with_floor: bool) -> Vec<Stack> {
    type Replayed = ReplayBody<Full<Bytes>>;
    let interactive = Workload::Interactive;
    let mut stacks = vec![
        stack(
            "bare service",
            StackLoop::boxed(service_fn(answer::<Full<Bytes>>)),
        ),
        stack(
            "tower Timeout+Retry (user-written)",
            StackLoop::boxed(tower_retry::tower_retry_stack(
                service_fn(answer::<Full<Bytes>>),
                5,
                Duration::from_secs(60),
            )),
        ),
        stack(
            "TimeoutByWorkload",
            StackLoop::boxed(
                TimeoutByWorkload::new(interactive).layer(service_fn(answer::<Full<Bytes>>)),
            ),
        ),
        stack(
            "RetryOnStatus",
            StackLoop::boxed(RetryOnStatus::default().layer(service_fn(answer::<Replayed>))),
        ),
        stack(
            "JitteredBackoff",
            StackLoop::boxed(JitteredBackoff::default().layer(service_fn(answer::<Full<Bytes>>))),
        ),
        stack(
            "RateLimitAware",
            StackLoop::boxed(RateLimitAware::new().layer(service_fn(answer::<Full<Bytes>>))),
        ),
        stack(
            "fireworks::layer (full preset)",
            StackLoop::boxed(fireworks::layer(interactive).layer(service_fn(answer::<Replayed>))),
        ),
    ];
    if with_floor {
        stacks.extend(floor_stacks());
    }
    stacks
}

/// The hand-fused floor of the preset's success path (`common/floor.rs`), the floor with one
/// part left out, with its two lazily created timers boxed instead of inline, with both (the
/// cheapest floor that keeps every feature: only the gate reads the published body, and a
/// fused preset holds it already), and (the last) without the header lookup, the replay, the
/// body wrapper and the body publication.
fn floor_stacks() -> Vec<Stack> {
    let inner = || service_fn(answer::<FloorReplayBody>);
    vec![
        stack(
            "floor (hand-fused reference)",
            StackLoop::boxed(FloorService::<_, Timed, { Cut::NONE }>::new(inner())),
        ),
        stack(
            "floor without header lookup",
            StackLoop::boxed(FloorService::<_, Timed, { Cut::HEADER }>::new(inner())),
        ),
        stack(
            "floor without replay (no head copy)",
            StackLoop::boxed(FloorService::<_, Timed, { Cut::REPLAY }>::new(inner())),
        ),
        stack(
            "floor without body wrapper",
            StackLoop::boxed(FloorService::<_, Plain, { Cut::NONE }>::new(inner())),
        ),
        stack(
            "floor without body publication",
            StackLoop::boxed(FloorService::<_, Timed, { Cut::PUBLISH_BODY }>::new(inner())),
        ),
        stack(
            "floor without deadline publication",
            StackLoop::boxed(FloorService::<_, Timed, { Cut::PUBLISH_DEADLINE }>::new(
                inner(),
            )),
        ),
        stack(
            "floor with boxed timers",
            StackLoop::boxed(FloorService::<_, TimedBoxed, { Cut::NONE }>::new(inner())),
        ),
        stack(
            "floor, boxed timers, no body publication",
            StackLoop::boxed(FloorService::<_, TimedBoxed, { Cut::PUBLISH_BODY }>::new(
                inner(),
            )),
        ),
        stack(
            "floor without all four",
            StackLoop::boxed(FloorService::<_, Plain, { Cut::ALL }>::new(inner())),
        ),
    ]
}

fn current_thread_runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    let runtime = current_thread_runtime();
    let with_floor = std::env::var("OVERHEAD_FLOOR").is_ok_and(|v| v.trim() == "1");
    if with_floor {
        floor_check::check(&runtime);
    }
    let profiling = ProfileMode::from_env();
    let mut stacks = stacks(with_floor || profiling.is_some());
    if std::env::var_os("OVERHEAD_SIZES").is_some() {
        sizes::print_preset_sizes(Workload::Interactive);
        return;
    }
    if let Some(mode) = profiling {
        if mode.loopback {
            run_loopback(true, |stacks| {
                Box::pin(async move { mode.run_loopback(&stacks, allocations).await })
            });
        } else {
            let chosen = stacks.iter_mut().map(|s| (s.name, &mut s.requests));
            mode.run_in_process(&runtime, chosen);
        }
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(SAMPLE_SIZE)
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("success_path");
        for stack in &mut stacks {
            let (requests, samples) = (&mut stack.requests, stack.samples.clone());
            group.bench_function(stack.name, |b| {
                b.iter_custom(|iterations| {
                    let elapsed = requests.run(&runtime, iterations);
                    if let Ok(mut samples) = samples.lock() {
                        samples.push((iterations, elapsed));
                    }
                    elapsed
                })
            });
        }
        group.finish();
    }
    criterion.final_summary();

    // `cargo test --benches` runs this binary without `--bench`: criterion then only checks
    // that each benchmark runs, and so do we.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    print_in_process_table(&runtime, &mut stacks);
    if std::env::var_os("OVERHEAD_TRACE_ALLOCS").is_some() {
        print_allocation_traces(&runtime, &mut stacks);
    }
    if std::env::var_os("OVERHEAD_SKIP_LOOPBACK").is_none() {
        print_loopback_table(std::env::var_os("OVERHEAD_LOOPBACK_LAYERS").is_some());
    }
}

/// One row of the in-process table.
struct Row {
    name: &'static str,
    criterion_ns: Option<f64>,
    loop_ns: f64,
    allocs: f64,
}

/// The median time per request over criterion's measurement samples (the last
/// `sample_size` calls; earlier calls were warm-up).
fn criterion_median_ns(samples: &[(u64, Duration)]) -> Option<f64> {
    let measured = &samples[samples.len().saturating_sub(SAMPLE_SIZE)..];
    let per_request: Vec<f64> = measured
        .iter()
        .filter(|(iterations, _)| *iterations > 0)
        .map(|(iterations, elapsed)| elapsed.as_nanos() as f64 / *iterations as f64)
        .collect();
    median(per_request)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Counts allocations over [`COUNTED_REQUESTS`] requests per stack, sent in
/// [`COUNTING_ROUNDS`] interleaved rounds (forward, then backward order), and times each round:
/// the loop's ns/req is the median over rounds, robust to other processes taking the CPU.
fn print_in_process_table(runtime: &Runtime, stacks: &mut [Stack]) {
    for stack in stacks.iter_mut() {
        stack.requests.run(runtime, WARM_UP_REQUESTS);
    }
    let per_round = COUNTED_REQUESTS / COUNTING_ROUNDS as u64;
    let mut round_ns = vec![Vec::new(); stacks.len()];
    let mut allocated = vec![0u64; stacks.len()];
    for round in 0..COUNTING_ROUNDS {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..stacks.len()).collect()
        } else {
            (0..stacks.len()).rev().collect()
        };
        for index in order {
            let before = allocations();
            let elapsed = stacks[index].requests.run(runtime, per_round);
            allocated[index] += allocations() - before;
            round_ns[index].push(elapsed.as_nanos() as f64 / per_round as f64);
        }
    }
    let rows: Vec<Row> = stacks
        .iter()
        .zip(round_ns.into_iter().zip(allocated))
        .map(|(stack, (ns, allocated))| {
            let samples = stack.samples.lock().map(|s| s.clone()).unwrap_or_default();
            Row {
                name: stack.name,
                criterion_ns: criterion_median_ns(&samples),
                loop_ns: median(ns).unwrap_or(f64::NAN),
                allocs: allocated as f64 / (per_round * COUNTING_ROUNDS as u64) as f64,
            }
        })
        .collect();
    let bare = &rows[0];
    let bare_ns = bare.criterion_ns.unwrap_or(bare.loop_ns);
    println!();
    println!(
        "In process, one request at a time on a current-thread runtime, response body read to \
         the end. ns/req: criterion's median sample, and the median of {COUNTING_ROUNDS} \
         interleaved rounds of {per_round} requests; allocs/req over all \
         {COUNTED_REQUESTS} requests. `added` = minus the bare service (criterion's column):"
    );
    println!();
    println!(
        "| stack | ns/req (criterion) | ns/req (rounds) | allocs/req | added ns | added allocs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let ns = row.criterion_ns.unwrap_or(row.loop_ns);
        let criterion = row
            .criterion_ns
            .map_or_else(|| "–".to_owned(), |ns| format!("{ns:.0}"));
        println!(
            "| {} | {criterion} | {:.0} | {:.2} | {:+.0} | {:+.2} |",
            row.name,
            row.loop_ns,
            row.allocs,
            ns - bare_ns,
            row.allocs - bare.allocs
        );
    }
}

/// Prints, for one request through each stack, the frames of every allocation that are not
/// the allocator's or the standard library's own.
fn print_allocation_traces(runtime: &Runtime, stacks: &mut [Stack]) {
    for stack in stacks {
        let ((), traces) = trace_allocations(|| {
            stack.requests.run(runtime, 1);
        });
        println!("\n### {}: {} allocations", stack.name, traces.len());
        for (index, trace) in traces.iter().enumerate() {
            println!("allocation {}:", index + 1);
            let text = trace.to_string();
            let frames = text
                .lines()
                .map(str::trim)
                .filter(|line| {
                    let skip = ["alloc_counter", "std::", "alloc::", "core::", "__rust"];
                    line.contains("tower_reliability")
                        || !skip.iter().any(|part| line.contains(part))
                })
                .take(10);
            for frame in frames {
                println!("    {frame}");
            }
        }
    }
}

/// Starts the loopback server on a two-worker runtime, builds the loopback stacks (with
/// `each_layer`, each of our layers alone and two diagnostics too) and hands them to `use_them`.
fn run_loopback<T>(
    each_layer: bool,
    use_them: impl FnOnce(Vec<LoopbackStack>) -> Pin<Box<dyn Future<Output = T>>>,
) -> T {
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let addr = loopback::start_ok_server().await;
        let uri: Uri = format!("http://{addr}/inference/v1/chat/completions")
            .parse()
            .expect("valid URI");
        use_them(loopback_stacks(uri, each_layer)).await
    })
}

/// The loopback stacks: bare client, the user-written tower stack and the full preset (and,
/// with `each_layer`, each of our layers alone and two diagnostics).
fn loopback_stacks(uri: Uri, each_layer: bool) -> Vec<LoopbackStack> {
    type Replayed = ReplayBody<Full<Bytes>>;
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let replayed = Client::builder(TokioExecutor::new()).build_http::<Replayed>();
    let interactive = Workload::Interactive;
    let stack = |name, service| LoopbackStack::new(name, service, uri.clone(), IN_FLIGHT);
    let mut stacks = vec![
        stack("bare hyper-util client", plain.clone()),
        LoopbackStack::new(
            "tower Timeout+Retry (user-written)",
            tower_retry::tower_retry_stack(plain.clone(), 5, Duration::from_secs(60)),
            uri.clone(),
            IN_FLIGHT,
        ),
        LoopbackStack::new(
            "fireworks::layer (full preset)",
            fireworks::layer(interactive).layer(replayed.clone()),
            uri.clone(),
            IN_FLIGHT,
        ),
    ];
    if each_layer {
        stacks.extend([
            LoopbackStack::new(
                "TimeoutByWorkload",
                TimeoutByWorkload::new(interactive).layer(plain.clone()),
                uri.clone(),
                IN_FLIGHT,
            ),
            LoopbackStack::new(
                "RetryOnStatus",
                RetryOnStatus::default().layer(replayed.clone()),
                uri.clone(),
                IN_FLIGHT,
            ),
            LoopbackStack::new(
                "JitteredBackoff",
                JitteredBackoff::default().layer(plain.clone()),
                uri.clone(),
                IN_FLIGHT,
            ),
            LoopbackStack::new(
                "RateLimitAware",
                RateLimitAware::new().layer(plain.clone()),
                uri.clone(),
                IN_FLIGHT,
            ),
            // Diagnostic: the preset without its timers (no TimeoutByWorkload).
            LoopbackStack::new(
                "preset minus TimeoutByWorkload",
                RetryOnStatus::default().layer(
                    JitteredBackoff::default().layer(RateLimitAware::new().layer(replayed.clone())),
                ),
                uri.clone(),
                IN_FLIGHT,
            ),
            // Diagnostic: the body idle timer no longer expires before the deadline timer.
            LoopbackStack::new(
                "fireworks::layer, idle read 120 s (> 60 s total)",
                fireworks::layer(interactive)
                    .timeouts(
                        TimeoutByWorkload::new(interactive).profile(
                            interactive,
                            TimeoutProfile::new(Duration::from_secs(60))
                                .with_idle_read(Duration::from_secs(120)),
                        ),
                    )
                    .layer(replayed.clone()),
                uri.clone(),
                IN_FLIGHT,
            ),
            // Diagnostic: no layer, but the client and request body type the preset uses.
            LoopbackStack::new(
                "bare client, ReplayBody request body",
                tower::util::MapRequest::new(replayed.clone(), replay_request as fn(_) -> _),
                uri.clone(),
                IN_FLIGHT,
            ),
        ]);
    }
    stacks
}

/// Sends a request with its body in a [`ReplayBody`], as the preset's client receives it.
/// The body is read into memory first (one poll), as the retry layer does.
fn replay_request(request: Request<Full<Bytes>>) -> Request<ReplayBody<Full<Bytes>>> {
    request.map(|mut body| {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => ReplayBody::buffered(frame.into_data().ok(), None),
            _ => ReplayBody::streaming(None, body),
        }
    })
}

/// Loopback throughput: bare client, the user-written tower stack and the full preset (and,
/// with `each_layer`, each of our layers alone), compared round by round with the bare client.
fn print_loopback_table(each_layer: bool) {
    let results = run_loopback(each_layer, |stacks| {
        Box::pin(async move { loopback::compare(&stacks, LOOPBACK_ROUNDS, LOOPBACK_SLICE).await })
    });
    println!();
    println!(
        "Loopback HTTP/1.1 to a trivial hyper server, hyper-util client, {IN_FLIGHT} requests in \
         flight; {LOOPBACK_ROUNDS} rounds of {} ms per stack, interleaved:",
        LOOPBACK_SLICE.as_millis()
    );
    println!();
    let bare_cpu = results[0].cpu_per_request;
    println!("| client | req/s | vs bare (median of rounds) | CPU µs/req (client + server) | CPU vs bare | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &results {
        let cpu = row.cpu_per_request.map_or_else(
            || "–".to_owned(),
            |c| format!("{:.1}", c.as_secs_f64() * 1e6),
        );
        let cpu_ratio = row.cpu_per_request.zip(bare_cpu).map_or_else(
            || "–".to_owned(),
            |(c, b)| format!("{:.1} %", 100.0 * c.as_secs_f64() / b.as_secs_f64()),
        );
        println!(
            "| {} | {:.0} | {:.1} % | {cpu} | {cpu_ratio} | {} |",
            row.name,
            row.per_second,
            100.0 * row.median_ratio,
            row.errors
        );
    }
}
