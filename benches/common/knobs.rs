//! The benchmarks' knobs: numbers read from environment variables.

/// The positive number in the environment variable `name`; `None` when it is unset, or (with a
/// warning headed by `bench`, the benchmark's name) when it holds anything else.
pub fn positive_number(bench: &str, name: &str) -> Option<f64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Some(n),
        _ => {
            eprintln!("{bench}: ignoring {name}={value:?} (not a positive number)");
            None
        }
    }
}
