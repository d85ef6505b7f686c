//! An outage: the in-process `FireworksServer` answers every request `503` for a while, with
//! requests arriving at a steady rate before, during and after it (by default 50/s: 5 s
//! healthy, 20 s of outage, 15 s healthy), each driven to success or give-up (the fault
//! deadline, 60 s by default). The server's capacity is far above the arrival rate: once it is
//! back, a client may release the requests it held as fast as it likes.
//!
//! Each strategy has its own server (outage switched on and off at the same instants on all of
//! them), so the server's own request counter tells exactly how many attempts each strategy
//! sent during the outage.

use std::time::Duration;

use tokio::time::Instant;
use tower_reliability::testing::{FireworksServer, ServerConfig};

use super::{
    config::StormConfig,
    load::{drive, steady_arrivals, Lane},
    plot::{write_svg, Axis, Panel},
    strategies::Kind,
    summary::{
        print_failure_reasons, print_outage_table, recovery_time, seconds, success_latencies, wall,
        OutageRow,
    },
};
use crate::traffic::{
    record::{Outcome, RunLog},
    stats::quantile,
};

/// Runs every strategy through the outage, prints the table, writes the plot; returns the rows.
pub async fn run(config: &StormConfig) -> Vec<OutageRow> {
    let (before, outage, after) = (config.before_outage(), config.outage, config.after_outage());
    let arrivals = steady_arrivals(config.outage_rps, before + outage + after);
    println!(
        "\n## Outage: every request answered 503 (no hint) for {:.0} s\n",
        outage.as_secs_f64()
    );
    println!(
        "{:.0} requests/s arriving for {:.0} s (healthy {:.0} s, outage {:.0} s, healthy {:.0} s), \
         deadline {:.0} s each; one in-process server per strategy.\n",
        config.outage_rps,
        (before + outage + after).as_secs_f64(),
        before.as_secs_f64(),
        outage.as_secs_f64(),
        after.as_secs_f64(),
        config.fault_deadline.as_secs_f64()
    );
    let mut servers = Vec::new();
    for _ in Kind::ALL {
        let server = FireworksServer::start(ServerConfig::default())
            .await
            .expect("start the in-process server");
        servers.push(server);
    }
    let start = Instant::now() + Duration::from_millis(200);
    let lanes: Vec<Lane> = Kind::ALL
        .iter()
        .zip(&servers)
        .map(|(kind, server)| {
            let log = RunLog::new(start);
            Lane {
                strategy: kind.build(&server.echo_url(), config.fault_deadline, log.clone()),
                log,
            }
        })
        .collect();
    let switch = {
        let servers = servers.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + before).await;
            let at_start: Vec<u64> = servers.iter().map(|s| s.stats().requests).collect();
            servers.iter().for_each(|s| s.set_outage(Some(503)));
            tokio::time::sleep_until(start + before + outage).await;
            let at_end: Vec<u64> = servers.iter().map(|s| s.stats().requests).collect();
            servers.iter().for_each(|s| s.set_outage(None));
            at_start
                .into_iter()
                .zip(at_end)
                .map(|(a, b)| b - a)
                .collect::<Vec<u64>>()
        })
    };
    drive(&lanes, &arrivals, start, config.fault_deadline).await;
    let outage_attempts = switch.await.expect("the outage switch task");
    for server in &servers {
        server.shutdown().await;
    }

    let (from, to) = (before.as_secs_f64(), (before + outage).as_secs_f64());
    let outage_requests = arrivals.iter().filter(|&&t| t >= from && t < to).count();
    let rows: Vec<OutageRow> = Kind::ALL
        .iter()
        .zip(&lanes)
        .zip(outage_attempts)
        .map(|((kind, lane), outage_attempts)| {
            let requests = lane.log.requests();
            let count = |outcome| requests.iter().filter(|r| r.outcome == outcome).count();
            let latencies = success_latencies(&requests, from, to);
            let all = success_latencies(&requests, f64::NEG_INFINITY, f64::INFINITY);
            OutageRow {
                name: kind.name(),
                requests: requests.len(),
                outage_requests,
                outage_attempts,
                failed: count(Outcome::Failed),
                timed_out: count(Outcome::TimedOut),
                recovery: recovery_time(&requests, to, config.outage_rps),
                p50: quantile(&latencies, 0.5),
                p99: quantile(&latencies, 0.99),
                p50_all: quantile(&all, 0.5),
                p99_all: quantile(&all, 0.99),
                wall: wall(&requests),
            }
        })
        .collect();
    print_outage_table(&rows);
    let reasons: Vec<_> = Kind::ALL
        .iter()
        .zip(&lanes)
        .map(|(kind, lane)| (kind.name(), lane.log.failures()))
        .collect();
    print_failure_reasons(&reasons);
    print_targets(
        &rows,
        outage.as_secs_f64(),
        (before + outage + after).as_secs_f64(),
    );
    plot(config, &lanes, (from, to));
    rows
}

/// The targets for our layer in this scenario (`outage`: how long it lasted,
/// `arrivals_end`: when the last request arrived, seconds).
fn print_targets(rows: &[OutageRow], outage: f64, arrivals_end: f64) {
    let find = |kind: Kind| rows.iter().find(|r| r.name == kind.name());
    let (Some(ours), Some(guide)) = (find(Kind::Fireworks), find(Kind::GuideLoop)) else {
        return;
    };
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let lost = |r: &OutageRow| r.failed + r.timed_out;
    println!("\nTargets for fireworks::layer:");
    println!(
        "- ~0.01 attempts per request during the outage (≤ 0.02): {:.3} — {}",
        ours.attempts_per_request(),
        verdict(ours.attempts_per_request() <= 0.02)
    );
    let (ours_lost, guide_lost) = (lost(ours), lost(guide));
    println!(
        "- no more requests lost than the guide's loop: {ours_lost} vs {guide_lost} — {}",
        verdict(ours_lost <= guide_lost)
    );
    println!(
        "- last request done within 2 s of the last arrival ({:.0} s): {} — {}",
        arrivals_end,
        seconds(ours.wall),
        verdict(ours.wall.is_some_and(|w| w <= arrivals_end + 2.0))
    );
    // A request that arrived as the outage began cannot succeed before it ends.
    let p99_limit = outage + 2.0;
    let within = |p: Option<f64>| p.is_some_and(|p| p <= p99_limit);
    println!(
        "- p99 to success ≤ {p99_limit:.0} s (outage arrivals / all): {} / {} — {}",
        seconds(ours.p99),
        seconds(ours.p99_all),
        verdict(within(ours.p99) && within(ours.p99_all))
    );
    println!(
        "- goodput back within 2 s of recovery: {} — {}",
        ours.recovery
            .map_or_else(|| "never".to_owned(), |s| format!("{s:.2} s")),
        verdict(ours.recovery.is_some_and(|s| s <= 2.0))
    );
}

fn plot(config: &StormConfig, lanes: &[Lane], (from, to): (f64, f64)) {
    let axis = Axis::of(lanes, to, config.outage < Duration::from_secs(10));
    let successes = axis.successes(lanes);
    let attempts = axis.series(lanes, &|lane| {
        lane.log.attempts().iter().map(|a| a.at).collect()
    });
    let panels = [
        Panel {
            y_label: "successes per second",
            series: successes,
            reference: Some((config.outage_rps, "arrival rate")),
            shade: Some((from, to, "outage (503)")),
        },
        Panel {
            y_label: "attempts per second",
            series: attempts,
            reference: Some((config.outage_rps, "arrival rate")),
            shade: Some((from, to, "outage (503)")),
        },
    ];
    let path = config.out_dir.join("storm-outage.svg");
    let caption = format!(
        "{:.0} requests/s through a {:.0} s outage",
        config.outage_rps,
        config.outage.as_secs_f64()
    );
    match write_svg(&path, &caption, &panels, axis.end) {
        Ok(()) => println!("\nPlot: {}", path.display()),
        Err(error) => eprintln!("storm: could not write {}: {error}", path.display()),
    }
}
