//! Goodput under a real rate limiter: nginx `limit_req` (see `scripts/nginx.sh`), offered
//! about twice its limit by an open-loop Poisson arrival process.
//!
//! Every strategy runs at the same time, on the same arrivals, each against its own nginx
//! bucket (the zones are keyed by path, one path per strategy), so each has the whole limit to
//! itself and no strategy's retries eat into another's allowance.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::Instant;

use super::{
    config::StormConfig,
    load::{drive, Lane},
    plot::{write_svg, Axis, Panel},
    strategies::Kind,
    summary::{print_failure_reasons, print_storm_table, StormRow},
};
use crate::traffic::{arrivals::poisson_arrivals, record::RunLog};

/// How nginx answers over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `429` with `Retry-After: 1`.
    Hint,
    /// `429` with no hint at all (Fireworks does not promise one).
    NoHint,
}

impl Variant {
    /// The path prefix in `scripts/nginx.sh`.
    pub fn path(self) -> &'static str {
        match self {
            Variant::Hint => "hint",
            Variant::NoHint => "nohint",
        }
    }

    /// A description for headings.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Hint => "429 with `Retry-After: 1`",
            Variant::NoHint => "429 without any hint",
        }
    }
}

/// Whether nginx answers `GET {base}/ok` with 200.
pub async fn reachable(base: &str) -> bool {
    let Ok(uri) = format!("{base}/ok").parse::<http::Uri>() else {
        return false;
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = tokio::time::timeout(Duration::from_secs(2), client.get(uri)).await;
    matches!(request, Ok(Ok(response)) if response.status().is_success())
}

/// Runs every strategy against `variant`, prints its table, writes its plot; returns the rows.
pub async fn run(config: &StormConfig, base: &str, variant: Variant) -> Vec<StormRow> {
    let offered = config.limit_rps * config.offered_factor;
    let arrivals = poisson_arrivals(offered, config.window, config.seed);
    println!(
        "\n## Rate limiter: nginx `limit_req` {} r/s burst 10 nodelay, {}\n",
        config.limit_rps,
        variant.describe()
    );
    println!(
        "{} requests in {:.0} s (Poisson, {offered:.0}/s = {:.1} × the limit) per strategy, \
         deadline {:.0} s each; strategies run side by side, each on its own nginx bucket.\n",
        arrivals.len(),
        config.window.as_secs_f64(),
        config.offered_factor,
        config.deadline.as_secs_f64()
    );
    let start = Instant::now() + Duration::from_millis(200);
    let lanes: Vec<Lane> = Kind::ALL
        .iter()
        .map(|kind| {
            let log = RunLog::new(start);
            let url = format!("{base}/{}/{}", variant.path(), kind.slug());
            Lane {
                strategy: kind.build(&url, config.deadline, log.clone()),
                log,
            }
        })
        .collect();
    drive(&lanes, &arrivals, start, config.deadline).await;

    let window = config.window.as_secs_f64();
    let rows: Vec<StormRow> = Kind::ALL
        .iter()
        .zip(&lanes)
        .map(|(kind, lane)| {
            StormRow::new(
                kind.name(),
                &lane.log.attempts(),
                &lane.log.requests(),
                window,
                config.limit_rps,
            )
        })
        .collect();
    print_storm_table(&rows);
    let reasons: Vec<_> = Kind::ALL
        .iter()
        .zip(&lanes)
        .map(|(kind, lane)| (kind.name(), lane.log.failures()))
        .collect();
    print_failure_reasons(&reasons);
    plot(config, variant, &lanes);
    rows
}

fn plot(config: &StormConfig, variant: Variant, lanes: &[Lane]) {
    let axis = Axis::of(
        lanes,
        config.window.as_secs_f64(),
        config.window < Duration::from_secs(20),
    );
    let successes = axis.successes(lanes);
    let throttled = axis.series(lanes, &|lane| {
        lane.log
            .attempts()
            .iter()
            .filter(|a| a.status == 429)
            .map(|a| a.at)
            .collect()
    });
    let panels = [
        Panel {
            y_label: "successes per second",
            series: successes,
            reference: Some((config.limit_rps, "nginx limit")),
            shade: None,
        },
        Panel {
            y_label: "429 answers per second",
            series: throttled,
            reference: None,
            shade: None,
        },
    ];
    let path = config.out_dir.join(format!("storm-{}.svg", variant.path()));
    let caption = format!(
        "{:.0} r/s offered to a {:.0} r/s nginx limit, {}",
        config.limit_rps * config.offered_factor,
        config.limit_rps,
        variant.describe()
    );
    match write_svg(&path, &caption, &panels, axis.end) {
        Ok(()) => println!("\nPlot: {}", path.display()),
        Err(error) => eprintln!("storm: could not write {}: {error}", path.display()),
    }
}
