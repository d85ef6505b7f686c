//! The adaptive part over time: per second, the learned rate and the attempts sent of the
//! `fireworks::layer` lanes, and the plot of successes, attempts and learned rates.

use std::time::Duration;

use super::{
    lanes::{Contender, Control, Running},
    learned::Learned,
};
use crate::{
    storm::{
        config::StormConfig,
        plot::{rate_series, write_svg, Panel, Series},
    },
    traffic::record::Outcome,
};

/// Ten numbers to a line, each line headed by the second of its first number.
fn print_rows(label: &str, cells: &[String]) {
    println!("{label}:");
    for (row, chunk) in cells.chunks(10).enumerate() {
        println!("  {:>3} s: {}", 10 * row, chunk.join(" "));
    }
}

/// For the `fireworks::layer` lanes, per second: the learned rate at each whole second and the
/// attempts sent in each second.
pub fn print_learned(running: &[Running], learned: &[Learned], end: f64) {
    println!(
        "\nPer second since the start, for the `fireworks::layer` lanes: the learned rate \
         (`LocalStore::paced_rate`, r/s) at each whole second (– : not adapting), and the \
         attempts sent in each second.\n"
    );
    println!("```text");
    let seconds = end.ceil() as usize;
    for (r, rates) in running.iter().zip(learned) {
        let Contender::Gate(control) = r.contender else {
            continue;
        };
        if control != Control::Off {
            let cells: Vec<String> = (0..seconds)
                .map(|s| {
                    rates
                        .iter()
                        .find(|(at, _)| *at >= s as f64 - 1e-6)
                        .and_then(|(_, rate)| *rate)
                        .map_or_else(|| format!("{:>5}", "–"), |rate| format!("{rate:>5.1}"))
                })
                .collect();
            print_rows(&format!("{}, learned rate", r.contender.short()), &cells);
        }
        let mut sent = vec![0u32; seconds];
        for attempt in r.lane.log.attempts() {
            if attempt.at >= 0.0 && (attempt.at as usize) < seconds {
                sent[attempt.at as usize] += 1;
            }
        }
        let cells: Vec<String> = sent.iter().map(|n| format!("{n:>5}")).collect();
        print_rows(&format!("{}, attempts sent", r.contender.short()), &cells);
    }
    println!("```");
}

/// Writes `storm-adaptive.svg`: successes and attempts sent per gated lane, and the learned
/// rates, each panel under the limit.
pub fn plot(
    config: &StormConfig,
    running: &[Running],
    learned: &[Learned],
    halved: f64,
    (first, second): (f64, f64),
) {
    let end = running
        .iter()
        .flat_map(|r| r.lane.log.requests())
        .map(|r| r.finished)
        .fold(2.0 * config.adaptive_phase.as_secs_f64(), f64::max)
        .ceil();
    let bin = if config.adaptive_phase >= Duration::from_secs(20) {
        1.0
    } else {
        0.5
    };
    // The limit is the first line of every panel, so each lane keeps its colour throughout.
    let limit = || Series {
        name: "nginx limit",
        points: vec![
            (0.0, first),
            (halved, first),
            (halved, second),
            (end, second),
        ],
    };
    let gated: Vec<(&Running, &Learned)> = running
        .iter()
        .zip(learned)
        .filter(|(r, _)| r.store.is_some())
        .collect();
    let series = |pick: &dyn Fn(&Running) -> Vec<f64>| {
        std::iter::once(limit())
            .chain(gated.iter().map(|(r, _)| Series {
                name: r.contender.short(),
                points: rate_series(pick(r).into_iter(), bin, end),
            }))
            .collect::<Vec<_>>()
    };
    let successes = series(&|r| {
        r.lane
            .log
            .requests()
            .iter()
            .filter(|q| q.outcome == Outcome::Success)
            .map(|q| q.finished)
            .collect()
    });
    let sent = series(&|r| r.lane.log.attempts().iter().map(|a| a.at).collect());
    let rates: Vec<Series> = std::iter::once(limit())
        .chain(
            gated
                .iter()
                .filter(|(r, _)| r.contender != Contender::Gate(Control::Off))
                .map(|(r, rates)| Series {
                    name: r.contender.short(),
                    points: rates
                        .iter()
                        .filter_map(|&(at, rate)| rate.map(|rate| (at, rate)))
                        .collect(),
                }),
        )
        .collect();
    let panels = [
        Panel {
            y_label: "successes per second",
            series: successes,
            reference: None,
            shade: None,
        },
        Panel {
            y_label: "attempts sent per second",
            series: sent,
            reference: None,
            shade: None,
        },
        Panel {
            y_label: "learned rate (r/s)",
            series: rates,
            reference: None,
            shade: None,
        },
    ];
    let path = config.out_dir.join("storm-adaptive.svg");
    let caption = format!(
        "{:.0} r/s offered to an nginx limit of {first:.0} r/s, halved to {second:.0} r/s at \
         {halved:.0} s; 429 without any hint",
        first * config.offered_factor
    );
    match write_svg(&path, &caption, &panels, end) {
        Ok(()) => println!("\nPlot: {}", path.display()),
        Err(error) => eprintln!("storm: could not write {}: {error}", path.display()),
    }
}
