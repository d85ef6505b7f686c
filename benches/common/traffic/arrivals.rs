//! When requests arrive: open-loop, on a schedule drawn in advance, whatever happens to earlier
//! ones (as users of an API do).

use std::time::Duration;

/// Arrival times (seconds from the start) of a Poisson process of `rate` per second over
/// `length`, from `seed`: the same seed gives the same arrivals. None when `rate` is not
/// positive.
pub fn poisson_arrivals(rate: f64, length: Duration, seed: u64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut arrivals = Vec::new();
    let mut t = 0.0;
    if rate <= 0.0 {
        return arrivals;
    }
    loop {
        // Inverse transform of an exponential gap; `1 - u` is in (0, 1].
        t += -(1.0 - rng.f64()).ln() / rate;
        if t >= length.as_secs_f64() {
            return arrivals;
        }
        arrivals.push(t);
    }
}
