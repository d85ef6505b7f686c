//! What a storm run does, from environment variables (all optional).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `STORM_NGINX_URL` | unset | base URL of `scripts/nginx.sh`; unset: no nginx or adaptive part |
//! | `STORM_RATE` | 50 | nginx's limit in requests per second (must match the nginx config) |
//! | `STORM_OFFERED_FACTOR` | 2 | offered load as a multiple of the limit |
//! | `STORM_SECONDS` | 30 | how long requests arrive, per nginx variant |
//! | `STORM_DEADLINE_SECONDS` | 30, or 3 × `STORM_SECONDS` if shorter | every request's deadline |
//! | `STORM_OUTAGE_SECONDS` | 20, or `STORM_SECONDS` if shorter | how long the outage lasts |
//! | `STORM_OUTAGE_RATE` | 50 | requests per second arriving during the outage scenario |
//! | `STORM_SHED_SECONDS` | 20, or `STORM_SECONDS` if shorter | how long requests arrive in the shedding part |
//! | `STORM_SHED_RATE` | 50 | requests per second arriving in the shedding part |
//! | `STORM_SHED_PERCENT` | 30 | share of requests nginx sheds with a 503 (must match its config) |
//! | `STORM_FAULT_DEADLINE_SECONDS` | 60, or 3 × `STORM_SECONDS` if shorter | every request's deadline in the shedding and outage parts |
//! | `STORM_SEED` | 1 | seed of the arrival process |
//! | `STORM_NGINX_DIR` | unset | `scripts/nginx.sh`'s dir; unset: no adaptive part |
//! | `STORM_ADAPTIVE_RATE` | 40 | the adaptive part's first limit, r/s; halved mid-run |
//! | `STORM_ADAPTIVE_SECONDS` | 20 | each of the adaptive part's two phases |
//! | `STORM_ADAPTIVE_PEERS` | 1 | 0: the adaptive part runs the `fireworks::layer` lanes only |
//! | `STORM_TOKEN_LIMIT` | 600000 | the token part's limit, tokens per minute (10,000 a second) |
//! | `STORM_TOKEN_FACTOR` | 3 | the token part's offered tokens as a multiple of its limit |
//! | `STORM_TOKEN_SECONDS` | 30, or `STORM_SECONDS` if shorter | how long requests arrive in the token part, per variant |
//! | `STORM_TOKEN_DEADLINE_SECONDS` | 60, or 3 × `STORM_SECONDS` if shorter | every request's deadline in the token and two-model parts |
//! | `STORM_MODELS_A_RATE` | 10 | model A's limit in the two-model part, requests (of 400 tokens) per second |
//! | `STORM_MODELS_B_RATE` | 20 | model B's steady arrivals in the two-model part, requests per second |
//! | `STORM_MODELS_SECONDS` | 30, or `STORM_SECONDS` if shorter | how long requests arrive in the two-model part |
//! | `STORM_OUT_DIR` | `$CARGO_TARGET_DIR/storm` or `target/storm` | where the SVG plots go |

use std::{path::PathBuf, time::Duration};

/// The settings of one storm run.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Base URL of the nginx rate limiter, if one runs.
    pub nginx_url: Option<String>,
    /// nginx's limit, requests per second.
    pub limit_rps: f64,
    /// Offered load as a multiple of the limit.
    pub offered_factor: f64,
    /// How long requests arrive in each nginx variant.
    pub window: Duration,
    /// Every logical request's deadline (all attempts and waits).
    pub deadline: Duration,
    /// How long the outage lasts.
    pub outage: Duration,
    /// Arrival rate of the outage scenario, requests per second.
    pub outage_rps: f64,
    /// How long requests arrive in the shedding part.
    pub shed_window: Duration,
    /// Arrival rate of the shedding part, requests per second.
    pub shed_rps: f64,
    /// The percentage of requests nginx sheds (`scripts/nginx.sh`'s `STORM_SHED_PERCENT`).
    pub shed_percent: f64,
    /// Every logical request's deadline in the parts with server faults (shedding, outage).
    pub fault_deadline: Duration,
    /// Seed of the arrival process (every strategy sees the same arrivals).
    pub seed: u64,
    /// Where the plots are written.
    pub out_dir: PathBuf,
    /// The directory of `scripts/nginx.sh`'s nginx (to change its limit with `set-rate`).
    pub nginx_dir: Option<PathBuf>,
    /// The adaptive part's limit in its first phase, requests per second (halved after it).
    pub adaptive_rps: f64,
    /// How long each phase of the adaptive part lasts.
    pub adaptive_phase: Duration,
    /// Whether the adaptive part also runs the other three strategies, for context.
    pub adaptive_peers: bool,
    /// The priority part's request quota, requests per second.
    pub priority_rps: f64,
    /// How long requests arrive in the priority part.
    pub priority_window: Duration,
    /// The token part's limit, tokens per minute.
    pub token_limit: f64,
    /// The token part's offered tokens as a multiple of its limit.
    pub token_factor: f64,
    /// How long requests arrive in each variant of the token part.
    pub token_window: Duration,
    /// Every request's deadline in the token and two-model parts.
    pub token_deadline: Duration,
    /// Model A's limit in the two-model part, requests per second (of 400 tokens each).
    pub models_a_rps: f64,
    /// Model B's steady arrival rate in the two-model part, requests per second.
    pub models_b_rps: f64,
    /// How long requests arrive in the two-model part.
    pub models_window: Duration,
}

fn number(name: &str) -> Option<f64> {
    crate::knobs::positive_number("storm", name)
}

impl StormConfig {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let window = number("STORM_SECONDS").unwrap_or(30.0);
        let deadline = number("STORM_DEADLINE_SECONDS").unwrap_or((3.0 * window).min(30.0));
        let outage = number("STORM_OUTAGE_SECONDS").unwrap_or(window.min(20.0));
        let fault_deadline =
            number("STORM_FAULT_DEADLINE_SECONDS").unwrap_or((3.0 * window).min(60.0));
        let out_dir = std::env::var_os("STORM_OUT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("CARGO_TARGET_DIR")
                    .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                    .join("storm")
            });
        StormConfig {
            nginx_url: std::env::var("STORM_NGINX_URL")
                .ok()
                .map(|url| url.trim_end_matches('/').to_owned())
                .filter(|url| !url.is_empty()),
            limit_rps: number("STORM_RATE").unwrap_or(50.0),
            offered_factor: number("STORM_OFFERED_FACTOR").unwrap_or(2.0),
            window: Duration::from_secs_f64(window),
            deadline: Duration::from_secs_f64(deadline),
            outage: Duration::from_secs_f64(outage),
            outage_rps: number("STORM_OUTAGE_RATE").unwrap_or(50.0),
            shed_window: Duration::from_secs_f64(
                number("STORM_SHED_SECONDS").unwrap_or(window.min(20.0)),
            ),
            shed_rps: number("STORM_SHED_RATE").unwrap_or(50.0),
            shed_percent: number("STORM_SHED_PERCENT").map_or(30.0, |p| p.min(100.0)),
            fault_deadline: Duration::from_secs_f64(fault_deadline),
            seed: number("STORM_SEED").map_or(1, |s| s as u64),
            out_dir,
            nginx_dir: std::env::var_os("STORM_NGINX_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            // nginx takes whole requests per second; the halved limit must be one too.
            adaptive_rps: number("STORM_ADAPTIVE_RATE").map_or(40.0, |r| r.round().max(2.0)),
            adaptive_phase: Duration::from_secs_f64(
                number("STORM_ADAPTIVE_SECONDS").unwrap_or(20.0),
            ),
            adaptive_peers: !matches!(
                std::env::var("STORM_ADAPTIVE_PEERS")
                    .as_deref()
                    .map(str::trim),
                Ok("0" | "no" | "false")
            ),
            priority_rps: number("STORM_PRIORITY_RATE").unwrap_or(20.0),
            priority_window: Duration::from_secs_f64(
                number("STORM_PRIORITY_SECONDS").unwrap_or(window.min(30.0)),
            ),
            token_limit: number("STORM_TOKEN_LIMIT").unwrap_or(600_000.0),
            token_factor: number("STORM_TOKEN_FACTOR").unwrap_or(3.0),
            token_window: Duration::from_secs_f64(
                number("STORM_TOKEN_SECONDS").unwrap_or(window.min(30.0)),
            ),
            token_deadline: Duration::from_secs_f64(
                number("STORM_TOKEN_DEADLINE_SECONDS").unwrap_or((3.0 * window).min(60.0)),
            ),
            models_a_rps: number("STORM_MODELS_A_RATE").unwrap_or(10.0),
            models_b_rps: number("STORM_MODELS_B_RATE").unwrap_or(20.0),
            models_window: Duration::from_secs_f64(
                number("STORM_MODELS_SECONDS").unwrap_or(window.min(30.0)),
            ),
        }
    }

    /// Healthy time before the outage: 5 s, or the outage's length if shorter.
    pub fn before_outage(&self) -> Duration {
        self.outage.min(Duration::from_secs(5))
    }

    /// Time after the outage during which requests keep arriving: arrivals last twice the
    /// outage in all (with the defaults, 5 s + 20 s of outage + 15 s: 40 s), at least 3 s after.
    pub fn after_outage(&self) -> Duration {
        self.outage
            .saturating_sub(self.before_outage())
            .max(Duration::from_secs(3))
    }
}
