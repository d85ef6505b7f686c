//! Open-loop load: requests arrive on a schedule whatever happens to earlier ones (as users of
//! an API do), each on its own task with a deadline. Poisson arrivals: `traffic::arrivals`.

use std::{sync::Arc, time::Duration};

use tokio::{task::JoinSet, time::Instant};

use super::strategies::Strategy;
use crate::traffic::record::{Outcome, RunLog};

/// Arrival times of `rate` evenly spaced requests per second over `length`.
pub fn steady_arrivals(rate: f64, length: Duration) -> Vec<f64> {
    let count = (rate * length.as_secs_f64()).floor() as usize;
    (0..count).map(|i| i as f64 / rate).collect()
}

/// A strategy and the log its requests go to.
pub struct Lane {
    pub strategy: Arc<dyn Strategy>,
    pub log: Arc<RunLog>,
}

/// At each arrival time after `start`, sends one request through every lane, each on its own
/// task bounded by `deadline`; returns when every request has ended.
pub async fn drive(lanes: &[Lane], arrivals: &[f64], start: Instant, deadline: Duration) {
    let mut tasks = JoinSet::new();
    for &at in arrivals {
        tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
        for lane in lanes {
            let (log, request) = (lane.log.clone(), lane.strategy.send());
            tasks.spawn(async move {
                let arrived = log.now();
                let outcome = tokio::time::timeout(deadline, request)
                    .await
                    .unwrap_or(Outcome::TimedOut);
                log.request(arrived, outcome);
            });
        }
        // Reap finished tasks as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
