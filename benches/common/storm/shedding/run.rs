//! Driving the shedding part's lanes, and its plot.

use std::time::Duration;

use tokio::time::Instant;

use super::report::{print_shedding_table, print_targets, ShedRow};
use crate::{
    storm::{
        config::StormConfig,
        load::{drive, steady_arrivals, Lane},
        plot::{write_svg, Axis, Panel},
        strategies::Kind,
        summary::print_failure_reasons,
    },
    traffic::record::RunLog,
};

/// Runs every strategy against nginx's `/shed/` paths at `base`, prints the table, writes the
/// plot; returns the rows.
pub async fn run(config: &StormConfig, base: &str) -> Vec<ShedRow> {
    let arrivals = steady_arrivals(config.shed_rps, config.shed_window);
    println!(
        "\n## Load shedding: nginx answers {:.0} % of requests `503 Service Overloaded` at \
         random (no hint), 200 to the rest, no rate limit\n",
        config.shed_percent
    );
    println!(
        "{} requests in {:.0} s (steady, {:.0}/s) per strategy, each driven to success or \
         give-up (deadline {:.0} s); strategies run side by side, each on its own path.\n",
        arrivals.len(),
        config.shed_window.as_secs_f64(),
        config.shed_rps,
        config.fault_deadline.as_secs_f64()
    );
    let start = Instant::now() + Duration::from_millis(200);
    let lanes: Vec<Lane> = Kind::ALL
        .iter()
        .map(|kind| {
            let log = RunLog::new(start);
            let url = format!("{base}/shed/{}", kind.slug());
            Lane {
                strategy: kind.build(&url, config.fault_deadline, log.clone()),
                log,
            }
        })
        .collect();
    drive(&lanes, &arrivals, start, config.fault_deadline).await;

    let rows: Vec<ShedRow> = Kind::ALL
        .iter()
        .zip(&lanes)
        .map(|(kind, lane)| ShedRow::new(kind.name(), &lane.log.attempts(), &lane.log.requests()))
        .collect();
    print_shedding_table(&rows);
    let reasons: Vec<_> = Kind::ALL
        .iter()
        .zip(&lanes)
        .map(|(kind, lane)| (kind.name(), lane.log.failures()))
        .collect();
    print_failure_reasons(&reasons);
    print_targets(&rows, config.shed_percent);
    plot(config, &lanes);
    rows
}

fn plot(config: &StormConfig, lanes: &[Lane]) {
    let window = config.shed_window.as_secs_f64();
    let axis = Axis::of(lanes, window, config.shed_window < Duration::from_secs(10));
    let successes = axis.successes(lanes);
    let attempts = axis.series(lanes, &|lane| {
        lane.log.attempts().iter().map(|a| a.at).collect()
    });
    let arrivals = Some((config.shed_rps, "arrival rate"));
    let arriving = Some((0.0, window, "requests arriving"));
    let panels = [
        Panel {
            y_label: "successes per second",
            series: successes,
            reference: arrivals,
            shade: arriving,
        },
        Panel {
            y_label: "attempts per second",
            series: attempts,
            reference: arrivals,
            shade: arriving,
        },
    ];
    let path = config.out_dir.join("storm-shedding.svg");
    let caption = format!(
        "{:.0} requests/s, {:.0} % shed with 503 at random (no hint)",
        config.shed_rps, config.shed_percent
    );
    match write_svg(&path, &caption, &panels, axis.end) {
        Ok(()) => println!("\nPlot: {}", path.display()),
        Err(error) => eprintln!("storm: could not write {}: {error}", path.display()),
    }
}
