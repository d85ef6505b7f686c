//! The parent process: checks nginx and Redis, runs each mode's workers side by side (child
//! processes of this same binary, one common start), collects their reports, prints the tables.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::{
    config::{FleetConfig, Mode, WorkerArgs},
    report::{
        print_failure_reasons, print_fleet_table, print_timelines, print_worker_table, ModeRun,
        WorkerReport, REPORT_PREFIX,
    },
};

/// The argument that makes this binary a worker.
pub const WORKER_FLAG: &str = "--fleet-worker";

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether nginx answers `GET {base}/ok` with 200.
async fn nginx_reachable(base: &str) -> bool {
    let Ok(uri) = format!("{base}/ok").parse::<http::Uri>() else {
        return false;
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = tokio::time::timeout(Duration::from_secs(2), client.get(uri)).await;
    matches!(request, Ok(Ok(response)) if response.status().is_success())
}

/// Whether Redis at `url` answers PING; the error otherwise.
async fn redis_reachable(url: &str) -> Result<(), String> {
    // A cluster node answers PING too (on its own, as a plain connection).
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    }
}

/// The whole run: `modes` picked on the command line (empty: the defaults).
pub fn run(config: &FleetConfig, modes: &[Mode]) {
    let checks = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let Some(base) = config.nginx_url.clone() else {
        println!(
            "fleet: skipped: STORM_NGINX_URL is not set (scripts/fleet.sh starts nginx and sets it)."
        );
        return;
    };
    if !checks.block_on(nginx_reachable(&base)) {
        println!("fleet: skipped: nginx does not answer at {base}/ok.");
        return;
    }
    let reachable = |name: &str, url: &Option<String>| match url {
        None => Err(format!(
            "{name} is not set (scripts/fleet.sh starts Redis and sets it)"
        )),
        Some(url) => checks
            .block_on(redis_reachable(url))
            .map(|()| url.clone())
            .map_err(|e| format!("Redis at {url} does not answer: {e}")),
    };
    let redis = reachable("REDIS_URL", &config.redis_url);
    let cluster = reachable("REDIS_CLUSTER_URL", &config.cluster_url);
    drop(checks);

    let modes: Vec<Mode> = if modes.is_empty() {
        Mode::DEFAULT.to_vec()
    } else {
        modes.to_vec()
    };
    let offered = config.limit_rps * config.offered_factor;
    println!(
        "# Fleet: {} processes against one nginx `limit_req` {} r/s (burst 10 nodelay), {}",
        config.workers,
        config.limit_rps,
        config.describe_variant()
    );
    println!(
        "\nEach process: its own tokio runtime, hyper-util client and \
         `fireworks::layer(Workload::Interactive)` with a {:.0} s deadline, open-loop Poisson \
         arrivals at {:.1}/s (the fleet: {offered:.0}/s = {:.1} × the limit) for {:.0} s, all \
         on one nginx path (one bucket), from a common start; each process's rate-limit \
         state is made {:.1} s before it (idle until then). Modes run one after another, each \
         on a fresh bucket.\n",
        config.deadline.as_secs_f64(),
        offered / config.workers as f64,
        config.offered_factor,
        config.window.as_secs_f64(),
        config.idle.as_secs_f64()
    );
    if modes.contains(&Mode::Uneven) {
        println!(
            "In the `uneven` mode the first process is offered {:.0} % of the fleet's load \
             ({:.1}/s) and the others {:.1}/s each.\n",
            100.0 * super::config::HEAVY_PART,
            Mode::Uneven.offered_rps(config, 0),
            Mode::Uneven.offered_rps(config, 1),
        );
    }
    let run_id = unix_ms();
    let mut runs = Vec::new();
    for (i, &mode) in modes.iter().enumerate() {
        let needs = match mode {
            Mode::Redis | Mode::Uneven => Some(&redis),
            Mode::Cluster => Some(&cluster),
            _ => None,
        };
        let redis_url = match needs {
            None => None,
            Some(Ok(url)) => Some(url.clone()),
            Some(Err(why)) => {
                println!("Skipping the `{}` mode: {why}.\n", mode.slug());
                continue;
            }
        };
        if i > 0 && !runs.is_empty() {
            std::thread::sleep(config.pause);
        }
        eprintln!("fleet: running `{}` ...", mode.slug());
        let url = format!(
            "{base}/{}/fleet-{}-{run_id}",
            config.variant_path(),
            mode.slug()
        );
        let prefix = format!("tower-reliability:fleet-bench:{run_id}:{}", mode.slug());
        let workers = spawn_mode(config, mode, &url, &prefix, redis_url);
        let reports = collect(workers);
        for report in &reports {
            if let Some(error) = &report.error {
                println!(
                    "Worker {} of `{}` failed: {error}\n",
                    report.worker,
                    mode.slug()
                );
            }
        }
        let reports: Vec<WorkerReport> =
            reports.into_iter().filter(|r| r.error.is_none()).collect();
        if reports.is_empty() {
            println!("No worker of `{}` reported.\n", mode.slug());
            continue;
        }
        runs.push(ModeRun {
            mode,
            workers: reports,
        });
    }
    if runs.is_empty() {
        return;
    }
    print_fleet_table(config, &runs);
    println!(
        "\nGoodput: successes that ended inside the {:.0} s window, per second, over the limit. \
         Failed: gave up before the deadline (a final 429, or refused at once because the \
         gate's wait would pass the deadline); timed out: the deadline passed.\n",
        config.window.as_secs_f64()
    );
    println!(
        "Per process (fairness; a fair share is {:.1} successes/s):\n",
        config.limit_rps / config.workers as f64
    );
    print_worker_table(config, &runs);
    println!("\nWhy requests failed:\n");
    print_failure_reasons(&runs);
    println!("\nThe fleet over time (successes and 429 answers per second, and the sum of the processes' paced rates):\n");
    print_timelines(config, &runs);
}

/// Starts the workers of `mode` with a common start about a second ahead.
fn spawn_mode(
    config: &FleetConfig,
    mode: Mode,
    url: &str,
    prefix: &str,
    redis_url: Option<String>,
) -> Vec<(usize, std::io::Result<Child>)> {
    let exe = std::env::current_exe().expect("the path of this benchmark binary");
    let count = mode.workers(config);
    // Time to start the processes (and connect to Redis), and the idle time asked for.
    let lead = config.idle.max(Duration::from_millis(500)) + Duration::from_millis(500);
    let start_unix_ms = unix_ms() + u64::try_from(lead.as_millis()).unwrap_or(1000);
    (0..count)
        .map(|index| {
            let args = WorkerArgs {
                store: mode.store(),
                index,
                url: url.to_owned(),
                offered_rps: mode.offered_rps(config, index),
                window: config.window,
                deadline: config.deadline,
                seed: config.seed + index as u64,
                start_unix_ms,
                idle: config.idle,
                redis_url: redis_url.clone(),
                prefix: prefix.to_owned(),
            };
            let child = Command::new(&exe)
                .arg("--bench")
                .arg(WORKER_FLAG)
                .args(args.to_args())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn();
            (index, child)
        })
        .collect()
}

/// Waits for every worker and reads its report line.
fn collect(workers: Vec<(usize, std::io::Result<Child>)>) -> Vec<WorkerReport> {
    workers
        .into_iter()
        .map(|(index, child)| {
            let failed = |error: String| WorkerReport {
                worker: index,
                error: Some(error),
                ..WorkerReport::default()
            };
            let mut child = match child {
                Ok(child) => child,
                Err(error) => return failed(format!("could not start: {error}")),
            };
            let mut output = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                let _ = stdout.read_to_string(&mut output);
            }
            let status = child.wait();
            let line = output
                .lines()
                .rev()
                .find_map(|line| line.strip_prefix(REPORT_PREFIX));
            match (line, status) {
                (Some(line), _) => serde_json::from_str::<WorkerReport>(line)
                    .unwrap_or_else(|error| failed(format!("unreadable report: {error}"))),
                (None, Ok(status)) => failed(format!("no report ({status})")),
                (None, Err(error)) => failed(format!("no report: {error}")),
            }
        })
        .collect()
}
