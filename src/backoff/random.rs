//! Where backoff randomness comes from: per-thread by default, seedable for tests.

use std::sync::{Arc, Mutex};

/// A source of uniform draws in `[0, 1)`.
///
/// The default draws from a per-thread generator seeded from the OS, so concurrent requests
/// never share one sequence (tower's `ExponentialBackoff` clones one RNG state into every
/// backoff, which makes concurrent retries fire in lockstep). [`RandomSource::seeded`] makes
/// every draw reproducible: clones share one sequence.
#[derive(Debug, Clone, Default)]
pub struct RandomSource {
    seeded: Option<Arc<Mutex<fastrand::Rng>>>,
}

impl RandomSource {
    /// Per-thread, OS-seeded draws (the default).
    pub fn thread_local() -> Self {
        RandomSource::default()
    }

    /// A reproducible sequence from `seed`, shared by clones.
    pub fn seeded(seed: u64) -> Self {
        RandomSource {
            seeded: Some(Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)))),
        }
    }

    /// The next draw in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        match &self.seeded {
            None => fastrand::f64(),
            Some(rng) => match rng.lock() {
                Ok(mut rng) => rng.f64(),
                Err(poisoned) => poisoned.into_inner().f64(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sources_repeat_and_clones_share_the_sequence() {
        let a = RandomSource::seeded(7);
        let b = RandomSource::seeded(7);
        let a2 = a.clone();
        let first = a.unit();
        assert_eq!(first, b.unit());
        assert_ne!(a2.unit(), first, "clones advance one shared sequence");
        let x = RandomSource::thread_local().unit();
        assert!((0.0..1.0).contains(&x));
    }
}
