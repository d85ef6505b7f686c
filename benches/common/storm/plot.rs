//! SVG line charts of a run over time (plotters): one line per strategy, panels stacked.

use std::{error::Error, path::Path};

use plotters::prelude::*;

/// One strategy's line.
pub struct Series {
    pub name: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// One chart of the figure.
pub struct Panel {
    pub y_label: &'static str,
    pub series: Vec<Series>,
    /// A dashed horizontal reference line (such as the rate limit) and its label.
    pub reference: Option<(f64, &'static str)>,
    /// A shaded interval of the x axis (such as the outage) and its label.
    pub shade: Option<(f64, f64, &'static str)>,
}

/// The x axis of a run's plots: whole seconds until the last request finished (at least
/// `at_least`), in bins of 1 s, or 0.5 s for a short run.
pub struct Axis {
    pub end: f64,
    pub bin: f64,
}

impl Axis {
    pub fn of(lanes: &[super::load::Lane], at_least: f64, short: bool) -> Axis {
        let end = lanes
            .iter()
            .flat_map(|lane| lane.log.requests())
            .map(|r| r.finished)
            .fold(at_least, f64::max)
            .ceil();
        Axis {
            end,
            bin: if short { 0.5 } else { 1.0 },
        }
    }

    /// One line per strategy: the rate of the times `pick` takes from each lane.
    pub fn series(
        &self,
        lanes: &[super::load::Lane],
        pick: &dyn Fn(&super::load::Lane) -> Vec<f64>,
    ) -> Vec<Series> {
        per_strategy(lanes, self.bin, self.end, pick)
    }

    /// One line per strategy: successes per second.
    pub fn successes(&self, lanes: &[super::load::Lane]) -> Vec<Series> {
        self.series(lanes, &|lane| {
            lane.log
                .requests()
                .iter()
                .filter(|r| r.outcome == crate::traffic::record::Outcome::Success)
                .map(|r| r.finished)
                .collect()
        })
    }
}

/// One line per strategy: the rate of the times `pick` takes from each strategy's lane.
pub fn per_strategy(
    lanes: &[super::load::Lane],
    bin: f64,
    end: f64,
    pick: &dyn Fn(&super::load::Lane) -> Vec<f64>,
) -> Vec<Series> {
    super::strategies::Kind::ALL
        .iter()
        .zip(lanes)
        .map(|(kind, lane)| Series {
            name: kind.name(),
            points: rate_series(pick(lane).into_iter(), bin, end),
        })
        .collect()
}

/// Events per second in consecutive bins of `bin` seconds from 0 to `end`, as `(bin middle,
/// rate)` points.
pub fn rate_series(times: impl Iterator<Item = f64>, bin: f64, end: f64) -> Vec<(f64, f64)> {
    let bins = (end / bin).ceil().max(1.0) as usize;
    let mut counts = vec![0u32; bins];
    for t in times {
        if t >= 0.0 && t < end {
            counts[((t / bin) as usize).min(bins - 1)] += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| ((i as f64 + 0.5) * bin, f64::from(n) / bin))
        .collect()
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// Writes `panels`, stacked, sharing an x axis of seconds from 0 to `x_max`, to `path`.
pub fn write_svg(
    path: &Path,
    caption: &str,
    panels: &[Panel],
    x_max: f64,
) -> Result<(), Box<dyn Error>> {
    let height = 40 + 320 * panels.len() as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(caption, ("sans-serif", 22))?;
    for (panel, area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        draw_panel(&area, panel, x_max)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    x_max: f64,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let highest = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(panel.reference.map(|r| r.0))
        .fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..highest * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc(panel.y_label)
        .draw()?;
    if let Some((from, to, label)) = panel.shade {
        let grey = RGBColor(0xdd, 0xdd, 0xdd).mix(0.5).filled();
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(from, 0.0), (to, highest * 1.1)],
                grey,
            )))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], grey));
    }
    if let Some((level, label)) = panel.reference {
        let style = BLACK.mix(0.6).stroke_width(1);
        let dashes = (0..(x_max.ceil() as u32))
            .map(|s| PathElement::new(vec![(s as f64, level), (s as f64 + 0.5, level)], style));
        chart
            .draw_series(dashes)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    for (series, color) in panel.series.iter().zip(COLORS.iter().cycle()) {
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(series.points.iter().copied(), style))?
            .label(series.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
