//! A fleet on one API key: several processes against one rate limit, each with its own
//! rate-limit state, or sharing it through Redis (`RedisStore`).
//!
//! The parent spawns `FLEET_WORKERS` (4) child processes of this same binary per mode. Each runs
//! its own tokio runtime, hyper-util client and `fireworks::layer(Workload::Interactive)`, and
//! sends open-loop Poisson arrivals at `factor × limit / workers` per second to one nginx
//! `limit_req` path shared by the whole fleet (one bucket), from a common start. Modes, one after
//! another, each on a fresh nginx bucket:
//!
//! - `local`: every process its own `LocalStore` (what `RateLimitAware::new()` builds; adaptive
//!   CUBIC rate on), the default without Redis;
//! - `redis`: every process a `RedisStore` with one key prefix (unique to the run);
//! - `cluster`: the same through a 3-master Redis Cluster;
//! - `uneven`: as `redis`, the first process offered 70 % of the fleet's load and the others
//!   the rest (each process's share of the fleet's rate follows its demand);
//! - `off`: every process its own gate with `RateControl::Off`, for context;
//! - `single` (only when asked): one process offered the whole fleet's load.
//!
//! Reported per mode: the fleet's goodput as a fraction of the limit, the share of attempts
//! answered 429, attempts per success, requests failed or timed out, time to success (p50,
//! p99); per process: goodput (fairness), 429 share, the paced rate, and what a `RedisStore` saw
//! of the fleet.
//!
//! Run with `scripts/fleet.sh` (starts and stops nginx and Redis), or
//! `cargo bench --bench fleet --features testing,redis` with `STORM_NGINX_URL` (and
//! `REDIS_URL`) set. Arguments `local`, `redis`, `cluster`, `uneven`, `off`, `single` run only
//! those modes. Durations
//! and rates: see `common/fleet/config.rs` (`FLEET_SECONDS=8` is a quick run).

#[path = "common/chat.rs"]
mod chat;
#[path = "common/fleet/mod.rs"]
mod fleet;
#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/traffic/mod.rs"]
mod traffic;

use fleet::{
    config::{FleetConfig, Mode, WorkerArgs},
    parent::{self, WORKER_FLAG},
    worker,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs this binary without `--bench`: a fleet run takes minutes, so
    // it only runs under `cargo bench`.
    if !args.iter().any(|arg| arg == "--bench") {
        println!(
            "fleet: run with `cargo bench --bench fleet --features testing,redis` (or scripts/fleet.sh)"
        );
        return;
    }
    if args.iter().any(|arg| arg == WORKER_FLAG) {
        match WorkerArgs::parse(args) {
            Ok(worker_args) => worker::main(worker_args),
            Err(error) => {
                eprintln!("fleet worker: {error}");
                std::process::exit(2);
            }
        }
        return;
    }
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|mode| args.iter().any(|arg| arg == mode.slug()))
        .collect();
    parent::run(&FleetConfig::from_env(), &modes);
}
