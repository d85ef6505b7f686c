//! What a storm run does, from environment variables (all optional).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `STORM_NGINX_URL` | unset | base URL of `scripts/nginx.sh`; unset: the nginx part is skipped |
//! | `STORM_RATE` | 50 | nginx's limit in requests per second (must match the nginx config) |
//! | `STORM_OFFERED_FACTOR` | 2 | offered load as a multiple of the limit |
//! | `STORM_SECONDS` | 30 | how long requests arrive, per nginx variant |
//! | `STORM_DEADLINE_SECONDS` | 30, or 3 × `STORM_SECONDS` if shorter | every request's deadline |
//! | `STORM_OUTAGE_SECONDS` | 20, or `STORM_SECONDS` if shorter | how long the outage lasts |
//! | `STORM_OUTAGE_RATE` | 20 | requests per second arriving during the outage scenario |
//! | `STORM_SEED` | 1 | seed of the arrival process |
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
    /// Seed of the arrival process (every strategy sees the same arrivals).
    pub seed: u64,
    /// Where the plots are written.
    pub out_dir: PathBuf,
}

fn number(name: &str) -> Option<f64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Some(n),
        _ => {
            eprintln!("storm: ignoring {name}={value:?} (not a positive number)");
            None
        }
    }
}

impl StormConfig {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let window = number("STORM_SECONDS").unwrap_or(30.0);
        let deadline = number("STORM_DEADLINE_SECONDS").unwrap_or((3.0 * window).min(30.0));
        let outage = number("STORM_OUTAGE_SECONDS").unwrap_or(window.min(20.0));
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
            outage_rps: number("STORM_OUTAGE_RATE").unwrap_or(20.0),
            seed: number("STORM_SEED").map_or(1, |s| s as u64),
            out_dir,
        }
    }

    /// Healthy time before the outage.
    pub fn before_outage(&self) -> Duration {
        self.outage.min(Duration::from_secs(5))
    }

    /// Time after the outage during which requests keep arriving.
    pub fn after_outage(&self) -> Duration {
        self.outage
            .clamp(Duration::from_secs(3), Duration::from_secs(10))
    }
}
