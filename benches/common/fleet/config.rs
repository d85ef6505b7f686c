//! What a fleet run does, from environment variables (all optional), and what the parent tells
//! each worker process on its command line.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `STORM_NGINX_URL` | unset | base URL of `scripts/nginx.sh`; unset: nothing runs |
//! | `REDIS_URL` | unset | a Redis for the `redis` and `uneven` modes; unset: they are skipped |
//! | `REDIS_CLUSTER_URL` | unset | a node of a Redis Cluster for the `cluster` mode; unset: skipped |
//! | `STORM_RATE` | 50 | nginx's limit in requests per second (must match the nginx config) |
//! | `FLEET_OFFERED_FACTOR` | 2 | the fleet's total offered load as a multiple of the limit |
//! | `FLEET_SECONDS` | 20 | how long requests arrive, per mode |
//! | `FLEET_DEADLINE_SECONDS` | 10 | every request's deadline |
//! | `FLEET_WORKERS` | 4 | processes per mode (each offered `factor × limit / workers`) |
//! | `FLEET_SEED` | 1 | seed of worker 0's arrivals (worker `i` uses `seed + i`) |
//! | `FLEET_HINT` | unset | `1`: nginx answers 429 with `Retry-After: 1` (default: no hint) |
//! | `FLEET_PAUSE_SECONDS` | 2 | pause between two modes |
//! | `FLEET_IDLE_SECONDS` | 1 | how long each process's rate-limit state exists, idle, before the load starts |

use std::time::Duration;

/// The settings of one fleet run (the parent's view).
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub nginx_url: Option<String>,
    pub redis_url: Option<String>,
    pub cluster_url: Option<String>,
    pub limit_rps: f64,
    pub offered_factor: f64,
    pub window: Duration,
    pub deadline: Duration,
    pub workers: usize,
    pub seed: u64,
    pub hint: bool,
    pub pause: Duration,
    pub idle: Duration,
}

fn number(name: &str) -> Option<f64> {
    crate::knobs::positive_number("fleet", name)
}

/// A number that may be zero.
fn non_negative(name: &str, default: f64) -> f64 {
    let Ok(value) = std::env::var(name) else {
        return default;
    };
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => n,
        _ => {
            eprintln!("fleet: ignoring {name}={value:?} (not a number >= 0)");
            default
        }
    }
}

fn url(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
}

impl FleetConfig {
    /// Reads the environment.
    pub fn from_env() -> Self {
        FleetConfig {
            nginx_url: url("STORM_NGINX_URL"),
            redis_url: url("REDIS_URL"),
            cluster_url: url("REDIS_CLUSTER_URL"),
            limit_rps: number("STORM_RATE").unwrap_or(50.0),
            offered_factor: number("FLEET_OFFERED_FACTOR").unwrap_or(2.0),
            window: Duration::from_secs_f64(number("FLEET_SECONDS").unwrap_or(20.0)),
            deadline: Duration::from_secs_f64(number("FLEET_DEADLINE_SECONDS").unwrap_or(10.0)),
            workers: number("FLEET_WORKERS").map_or(4, |n| (n as usize).clamp(1, 64)),
            seed: number("FLEET_SEED").map_or(1, |s| s as u64),
            hint: std::env::var("FLEET_HINT").is_ok_and(|v| v.trim() == "1"),
            pause: Duration::from_secs_f64(non_negative("FLEET_PAUSE_SECONDS", 2.0)),
            idle: Duration::from_secs_f64(non_negative("FLEET_IDLE_SECONDS", 1.0).min(60.0)),
        }
    }

    /// The nginx path prefix of the variant in use.
    pub fn variant_path(&self) -> &'static str {
        if self.hint {
            "hint"
        } else {
            "nohint"
        }
    }

    /// A description of the variant, for headings.
    pub fn describe_variant(&self) -> &'static str {
        if self.hint {
            "429 with `Retry-After: 1`"
        } else {
            "429 without any hint"
        }
    }
}

/// Which rate-limit state a worker process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `RateLimitAware::new()`: its own `LocalStore`, adaptive rate (CUBIC) on.
    Local,
    /// Its own `LocalStore` with `RateControl::Off`: only the gate.
    Off,
    /// A `RedisStore` with the prefix every worker of the run shares.
    Redis,
    /// The same on a Redis Cluster (`RedisConfig::cluster`).
    Cluster,
}

impl Store {
    pub fn slug(self) -> &'static str {
        match self {
            Store::Local => "local",
            Store::Off => "off",
            Store::Redis => "redis",
            Store::Cluster => "cluster",
        }
    }

    fn parse(text: &str) -> Option<Store> {
        [Store::Local, Store::Off, Store::Redis, Store::Cluster]
            .into_iter()
            .find(|s| s.slug() == text)
    }
}

/// A row of the report: which store, how many processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `FLEET_WORKERS` processes, each with its own state (the default without Redis).
    Local,
    /// `FLEET_WORKERS` processes sharing one state through Redis.
    Redis,
    /// The same through a 3-master Redis Cluster.
    Cluster,
    /// `FLEET_WORKERS` processes sharing one state through Redis, uneven: the first offered
    /// [`HEAVY_PART`] of the fleet's load, the others the rest in equal parts.
    Uneven,
    /// `FLEET_WORKERS` processes, each with its own gate and no adaptive rate.
    Off,
    /// One process offered the whole fleet's load (what one client on the key achieves).
    Single,
}

impl Mode {
    /// Every mode, in run and table order.
    pub const ALL: [Mode; 6] = [
        Mode::Local,
        Mode::Redis,
        Mode::Cluster,
        Mode::Uneven,
        Mode::Off,
        Mode::Single,
    ];
    /// The modes run when no argument picks any.
    pub const DEFAULT: [Mode; 5] = [
        Mode::Local,
        Mode::Redis,
        Mode::Cluster,
        Mode::Uneven,
        Mode::Off,
    ];

    /// The argument that picks the mode, and its nginx path segment.
    pub fn slug(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Redis => "redis",
            Mode::Cluster => "cluster",
            Mode::Uneven => "uneven",
            Mode::Off => "off",
            Mode::Single => "single",
        }
    }

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Local => "per-process state (`RateLimitAware::new()`, CUBIC)",
            Mode::Redis => "shared through Redis (`RedisStore`)",
            Mode::Cluster => "shared through a 3-master Redis Cluster",
            Mode::Uneven => "shared through Redis, uneven load (70 % on one process)",
            Mode::Off => "per-process gate, `RateControl::Off`",
            Mode::Single => "one process alone, whole load (reference)",
        }
    }

    pub fn store(self) -> Store {
        match self {
            Mode::Local | Mode::Single => Store::Local,
            Mode::Redis | Mode::Uneven => Store::Redis,
            Mode::Cluster => Store::Cluster,
            Mode::Off => Store::Off,
        }
    }

    /// Worker processes in this mode.
    pub fn workers(self, config: &FleetConfig) -> usize {
        match self {
            Mode::Single => 1,
            _ => config.workers,
        }
    }

    /// The load offered to worker `index`, requests per second: the fleet's load in equal
    /// parts, or for [`Mode::Uneven`] [`HEAVY_PART`] of it to the first worker.
    pub fn offered_rps(self, config: &FleetConfig, index: usize) -> f64 {
        let total = config.limit_rps * config.offered_factor;
        let count = self.workers(config);
        match self {
            Mode::Uneven if count > 1 => {
                if index == 0 {
                    total * HEAVY_PART
                } else {
                    total * (1.0 - HEAVY_PART) / (count - 1) as f64
                }
            }
            _ => total / count as f64,
        }
    }
}

/// The part of the fleet's load the first process of the `uneven` mode is offered.
pub const HEAVY_PART: f64 = 0.7;

/// What one worker process is told to do (passed as `key=value` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerArgs {
    pub store: Store,
    pub index: usize,
    /// Full URL of the nginx path every worker of the mode sends to.
    pub url: String,
    /// This worker's offered load, requests per second.
    pub offered_rps: f64,
    pub window: Duration,
    pub deadline: Duration,
    pub seed: u64,
    /// The common start, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// How long before the start the rate-limit state is made.
    pub idle: Duration,
    pub redis_url: Option<String>,
    pub prefix: String,
}

impl WorkerArgs {
    /// The command-line arguments that [`WorkerArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("store={}", self.store.slug()),
            format!("index={}", self.index),
            format!("url={}", self.url),
            format!("offered={}", self.offered_rps),
            format!("window={}", self.window.as_secs_f64()),
            format!("deadline={}", self.deadline.as_secs_f64()),
            format!("seed={}", self.seed),
            format!("start={}", self.start_unix_ms),
            format!("idle={}", self.idle.as_secs_f64()),
            format!("prefix={}", self.prefix),
        ];
        if let Some(redis) = &self.redis_url {
            args.push(format!("redis={redis}"));
        }
        args
    }

    /// Reads the `key=value` arguments (others are ignored); says which one is missing or bad.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<WorkerArgs, String> {
        let pairs: Vec<(String, String)> = args
            .into_iter()
            .filter_map(|arg| {
                arg.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("missing {key}="))
        };
        let num = |key: &str| -> Result<f64, String> {
            let value = get(key)?;
            value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("bad {key}={value}"))
        };
        let store = get("store")?;
        Ok(WorkerArgs {
            store: Store::parse(&store).ok_or_else(|| format!("bad store={store}"))?,
            index: num("index")? as usize,
            url: get("url")?,
            offered_rps: num("offered")?,
            window: Duration::from_secs_f64(num("window")?),
            deadline: Duration::from_secs_f64(num("deadline")?),
            seed: num("seed")? as u64,
            start_unix_ms: num("start")? as u64,
            idle: Duration::from_secs_f64(num("idle")?),
            redis_url: get("redis").ok(),
            prefix: get("prefix")?,
        })
    }

    /// For error messages.
    pub fn describe(&self) -> String {
        format!(
            "worker {} ({}, {:.1}/s)",
            self.index,
            self.store.slug(),
            self.offered_rps
        )
    }
}
