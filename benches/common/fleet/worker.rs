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

use http::Uri;
use tokio::{task::JoinSet, time::Instant};
use tower_reliability::{
    rate_limit::{GateConfig, LocalStore, RateControl, RedisConfig, RedisStore},
    RateLimitAware,
};

use super::{
    config::{Store, WorkerArgs},
    report::{RedisView, WorkerReport, REPORT_PREFIX},
};
use crate::traffic::{
    arrivals::poisson_arrivals,
    preset::{self, Preset, Wording},
    record::{Outcome, RunLog},
};

/// How the fleet words the preset's errors: their kind only.
const WORDING: Wording = Wording {
    refused: "refused: the gate's wait would pass the deadline",
    with_message: false,
};

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
                GateConfig::default().with_rate_control(RateControl::Off)
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
        Store::Redis | Store::Cluster => {
            let Some(url) = &args.redis_url else {
                return failed_report("redis mode without redis=URL");
            };
            let config = RedisConfig::new(url.clone(), args.prefix.clone())
                .with_cluster(args.store == Store::Cluster);
            match RedisStore::spawn(config) {
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
    let log = RunLog::new(start);
    let service = preset::preset(args.deadline, rate_limit, log.clone());
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

/// At each arrival, sends one request on its own task bounded by `deadline` (the preset's own
/// deadline fires first; this is a backstop); returns when every request has ended.
async fn drive(
    service: &Preset,
    uri: &Uri,
    log: &Arc<RunLog>,
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
            let outcome =
                tokio::time::timeout(backstop, preset::send(service, &uri, &log, WORDING))
                    .await
                    .unwrap_or(Outcome::TimedOut);
            log.request(arrived, outcome);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
