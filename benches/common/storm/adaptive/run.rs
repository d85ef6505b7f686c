//! Driving the lanes: the arrivals, the halving of the limit once the first phase is over, and
//! the sampling of the learned rates meanwhile.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use tower_reliability::rate_limit::LocalStore;

use super::{
    lanes::{lanes, Running},
    learned::{spawn_sampler, Sample},
    report::report,
    zone::{burst, set_rate},
};
use crate::{
    storm::{
        config::StormConfig,
        load::{drive, Lane},
    },
    traffic::arrivals::poisson_arrivals,
};

/// Runs this part against the nginx at `base`, whose directory is `dir`.
pub async fn run(config: &StormConfig, base: &str, dir: &Path) {
    let first = config.adaptive_rps;
    let second = (first / 2.0).round();
    let phase = config.adaptive_phase.as_secs_f64();
    let offered = first * config.offered_factor;
    if let Err(error) = set_rate(dir, first) {
        println!("\nSkipping the adaptive part: {error}");
        return;
    }
    let burst = burst(dir).map_or_else(|| "?".to_owned(), |b| b.to_string());
    let arrivals = poisson_arrivals(offered, 2 * config.adaptive_phase, config.seed);
    println!(
        "\n## Adaptive rate: nginx `limit_req` {first:.0} → {second:.0} r/s (halved mid-run), \
         burst {burst} nodelay, 429 without any hint\n"
    );
    println!(
        "{} requests per lane in 2 × {phase:.0} s (Poisson, {offered:.0}/s throughout: \
         {:.1} × the first limit, {:.1} × the second), deadline {:.0} s each; lanes run side \
         by side, each on its own nginx bucket. The limit is halved at {phase:.0} s by \
         rewriting the zone's rate and reloading nginx.\n",
        arrivals.len(),
        offered / first,
        offered / second,
        config.deadline.as_secs_f64()
    );

    let start = Instant::now() + Duration::from_millis(200);
    let running: Vec<Running> = lanes(config, base, start);

    // The learned rates, every 250 ms, until every request has ended.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stores: Vec<Arc<LocalStore>> = running.iter().filter_map(|r| r.store.clone()).collect();
    let sampler = spawn_sampler(start, stores, samples.clone());
    // The halving, once the first phase's arrivals are over: `halved` is when the reload is
    // done (the new worker runs), seconds since the start.
    let halving = tokio::spawn({
        let dir = dir.to_owned();
        let at = start + config.adaptive_phase;
        async move {
            tokio::time::sleep_until(at).await;
            let done = tokio::task::spawn_blocking(move || set_rate(&dir, second)).await;
            let halved = Instant::now()
                .saturating_duration_since(start)
                .as_secs_f64();
            done.map_err(|error| format!("set-rate panicked: {error}"))?
                .map(|()| halved)
        }
    });
    let lanes: Vec<Lane> = running
        .iter()
        .map(|r| Lane {
            strategy: r.lane.strategy.clone(),
            log: r.lane.log.clone(),
        })
        .collect();
    drive(&lanes, &arrivals, start, config.deadline).await;
    sampler.abort();
    let halved = match halving
        .await
        .map_err(|error| error.to_string())
        .and_then(|h| h)
    {
        Ok(halved) => halved,
        Err(error) => {
            println!("The limit could not be halved: {error}. No table.");
            return;
        }
    };
    // Leave nginx as it started.
    if let Err(error) = set_rate(dir, first) {
        eprintln!("storm: could not restore the adaptive zone's rate: {error}");
    }
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let end = 2.0 * phase;
    report(config, &running, &samples, halved, (first, second), end);
}
