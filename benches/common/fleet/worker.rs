//! One worker process of the fleet: its own tokio runtime, hyper-util client and
//! `fireworks::layer(Workload::Interactive)`, open-loop Poisson arrivals from the common start,
//! and one report line on stdout at the end.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::{task::JoinSet, time::Instant};
use tower::{Layer, ServiceExt};
use tower_reliability::{
    fireworks,
    rate_limit::{GateConfig, LocalStore, RateControl, RedisConfig, RedisStore},
    retry::ReplayBody,
    ErrorKind, RateLimitAware, RetryReport, TimeoutByWorkload, TimeoutPhase, TimeoutProfile,
    Workload,
};

use super::{
    config::{Store, WorkerArgs},
    record::{CountAttempts, Log, Outcome},
    report::{RedisView, WorkerReport, REPORT_PREFIX},
};
use crate::chat::{chat_request, drain_body};

type Service =
    fireworks::FireworksService<CountAttempts<Client<HttpConnector, ReplayBody<Full<Bytes>>>>>;

/// Runs the worker described by `args` and prints its report line.
pub fn main(args: WorkerArgs) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut report = runtime.block_on(run(&args));
    report.worker = args.index;
    report.store = args.store.slug().to_owned();
    report.offered_rps = args.offered_rps;
    match serde_json::to_string(&report) {
        Ok(line) => println!("{REPORT_PREFIX}{line}"),
        Err(error) => eprintln!(
            "fleet {}: cannot encode the report: {error}",
            args.describe()
        ),
    }
}

/// The instant of `unix_ms` on this process's monotonic clock, and how late we are for it
/// (ms; 0 when it is still ahead).
fn instant_at(unix_ms: u64) -> (Instant, f64) {
    let now_instant = Instant::now();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let ahead = unix_ms as f64 - now_ms;
    if ahead >= 0.0 {
        (now_instant + Duration::from_secs_f64(ahead / 1000.0), 0.0)
    } else {
        (now_instant, -ahead)
    }
}

/// The store handle kept for reporting.
enum Probe {
    Local(Arc<LocalStore>),
    Redis(Arc<RedisStore>),
}

impl Probe {
    fn local(&self) -> &LocalStore {
        match self {
            Probe::Local(store) => store,
            Probe::Redis(store) => store.local(),
        }
    }
}

async fn run(args: &WorkerArgs) -> WorkerReport {
    let (start, late_start_ms) = instant_at(args.start_unix_ms);
    // The state is made `idle` before the load starts, as in a service that was quiet.
    tokio::time::sleep_until(start.checked_sub(args.idle).unwrap_or(start)).await;
    let (rate_limit, probe) = match args.store {
        Store::Local | Store::Off => {
            let gate = if args.store == Store::Off {
                GateConfig {
                    rate_control: RateControl::Off,
                    ..GateConfig::default()
                }
            } else {
                GateConfig::default()
            };
            // What `RateLimitAware::new()` / `with_config` build, kept at hand for reporting.
            let store = Arc::new(LocalStore::new(gate));
            (
                RateLimitAware::with_store(store.clone()),
                Probe::Local(store),
            )
        }
        Store::Redis => {
            let Some(url) = &args.redis_url else {
                return failed_report("redis mode without redis=URL");
            };
            match RedisStore::spawn(RedisConfig::new(url.clone(), args.prefix.clone())) {
                Ok(store) => {
                    let store = Arc::new(store);
                    (
                        RateLimitAware::with_store(store.clone()),
                        Probe::Redis(store),
                    )
                }
                Err(error) => return failed_report(&format!("RedisStore::spawn: {error}")),
            }
        }
    };
    let log = Log::new(start);
    let interactive = Workload::Interactive;
    let timeouts = TimeoutByWorkload::new(interactive).profile(
        interactive,
        TimeoutProfile::new(args.deadline).with_idle_read(Duration::from_secs(30)),
    );
    let layer = fireworks::layer(interactive)
        .timeouts(timeouts)
        .rate_limit(rate_limit);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let service: Service = layer.layer(CountAttempts::new(client, log.clone()));
    let uri: Uri = match args.url.parse() {
        Ok(uri) => uri,
        Err(error) => return failed_report(&format!("bad url {}: {error}", args.url)),
    };
    let arrivals = poisson_arrivals(args.offered_rps, args.window, args.seed);

    let done = Arc::new(AtomicBool::new(false));
    let probe = Arc::new(probe);
    let sampler = tokio::spawn(sample(probe.clone(), start, done.clone()));
    drive(&service, &uri, &log, &arrivals, start, args.deadline).await;
    done.store(true, Ordering::Release);
    let (paced_per_s, redis) = sampler.await.unwrap_or_default();

    let mut report = WorkerReport {
        late_start_ms,
        paced_per_s,
        redis: matches!(*probe, Probe::Redis(_)).then_some(redis),
        ..WorkerReport::default()
    };
    report.fill(
        &log.attempts(),
        &log.requests(),
        log.failures(),
        args.window.as_secs_f64(),
    );
    report
}

fn failed_report(error: &str) -> WorkerReport {
    WorkerReport {
        error: Some(error.to_owned()),
        ..WorkerReport::default()
    }
}

/// Every 100 ms from the start until `done`: the paced rate (averaged per second) and, for a
/// `RedisStore`, whether it is shared and with how many members.
async fn sample(
    probe: Arc<Probe>,
    start: Instant,
    done: Arc<AtomicBool>,
) -> (Vec<Option<f64>>, RedisView) {
    let mut per_second: Vec<(f64, u32)> = Vec::new();
    let mut view = RedisView {
        stayed_shared: true,
        members_min: u32::MAX,
        ..RedisView::default()
    };
    let mut tick = tokio::time::interval_at(start, Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut first = true;
    while !done.load(Ordering::Acquire) {
        let now = tick.tick().await;
        let second = (now.saturating_duration_since(start).as_secs_f64()).floor() as usize;
        if per_second.len() <= second {
            per_second.resize(second + 1, (0.0, 0));
        }
        if let Some(rate) = probe.local().paced_rate(now) {
            per_second[second].0 += rate;
            per_second[second].1 += 1;
        }
        if let Probe::Redis(store) = &*probe {
            let (shared, members) = (store.is_shared(), store.members());
            if first {
                view.shared_at_start = shared;
                view.members_at_start = members;
            }
            if !shared {
                view.stayed_shared = false;
                view.unshared_samples += 1;
            }
            view.members_min = view.members_min.min(members);
            view.members_max = view.members_max.max(members);
        }
        first = false;
    }
    if view.members_min == u32::MAX {
        view.members_min = 0;
    }
    let paced = per_second
        .into_iter()
        .map(|(sum, n)| (n > 0).then(|| sum / f64::from(n)))
        .collect();
    (paced, view)
}

/// Arrival times (seconds from the start) of a Poisson process of `rate` per second over
/// `length`, from `seed`.
fn poisson_arrivals(rate: f64, length: Duration, seed: u64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut arrivals = Vec::new();
    let mut t = 0.0;
    if rate <= 0.0 {
        return arrivals;
    }
    loop {
        // Inverse transform of an exponential gap; `1 - u` is in (0, 1].
        t += -(1.0 - rng.f64()).ln() / rate;
        if t >= length.as_secs_f64() {
            return arrivals;
        }
        arrivals.push(t);
    }
}

/// At each arrival, sends one request on its own task bounded by `deadline` (the preset's own
/// deadline fires first; this is a backstop); returns when every request has ended.
async fn drive(
    service: &Service,
    uri: &Uri,
    log: &Arc<Log>,
    arrivals: &[f64],
    start: Instant,
    deadline: Duration,
) {
    let backstop = deadline + Duration::from_secs(1);
    let mut tasks = JoinSet::new();
    for &at in arrivals {
        tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
        let (service, uri, log) = (service.clone(), uri.clone(), log.clone());
        tasks.spawn(async move {
            let arrived = log.now();
            let outcome = tokio::time::timeout(backstop, send(service, &uri, &log))
                .await
                .unwrap_or(Outcome::TimedOut);
            log.request(arrived, outcome);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// One logical request through the preset.
async fn send(service: Service, uri: &Uri, log: &Log) -> Outcome {
    match service.oneshot(chat_request(uri)).await {
        Ok(response) => {
            let status = response.status();
            let stopped = response
                .extensions()
                .get::<RetryReport>()
                .and_then(|report| report.stopped)
                .map_or_else(String::new, |reason| format!(", {reason:?}"));
            let read = drain_body(response.into_body()).await;
            match (status.is_success(), read) {
                (true, Ok(_)) => Outcome::Success,
                (true, Err(_)) => {
                    log.failure("response body broke off");
                    Outcome::Failed
                }
                (false, _) => {
                    log.failure(format!("final {}{stopped}", status.as_u16()));
                    Outcome::Failed
                }
            }
        }
        Err(error) => match error.kind() {
            ErrorKind::Timeout(TimeoutPhase::Deadline) => Outcome::TimedOut,
            ErrorKind::RateLimited { .. } => {
                log.failure("refused: the gate's wait would pass the deadline");
                Outcome::Failed
            }
            kind => {
                log.failure(format!("error {kind:?}"));
                Outcome::Failed
            }
        },
    }
}
