//! The learned rates of the gated lanes, sampled while the lanes run.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    task::JoinHandle,
    time::{Instant, MissedTickBehavior},
};
use tower_reliability::rate_limit::LocalStore;

/// How often the learned rate is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A lane's learned rate over time: `(seconds since the start, rate)`, `None` while not
/// adapting.
pub type Learned = Vec<(f64, Option<f64>)>;

/// One sample of the learned rates, per gated lane (in lane order; `None`: not adapting).
#[derive(Debug, Clone)]
pub struct Sample {
    at: f64,
    rates: Vec<Option<f64>>,
}

/// Samples the learned rates of `stores` every 250 ms from `start` into `samples`, until the
/// task is aborted.
pub fn spawn_sampler(
    start: Instant,
    stores: Vec<Arc<LocalStore>>,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(start, SAMPLE_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let now = tick.tick().await;
            let sample = Sample {
                at: now.saturating_duration_since(start).as_secs_f64(),
                rates: stores
                    .iter()
                    .map(|s| s.paced_rate(Instant::now()))
                    .collect(),
            };
            if let Ok(mut samples) = samples.lock() {
                samples.push(sample);
            }
        }
    })
}

/// The learned rate of lane `index` among the gated ones, over time.
pub fn learned(samples: &[Sample], index: usize) -> Learned {
    samples
        .iter()
        .map(|s| (s.at, s.rates.get(index).copied().flatten()))
        .collect()
}
