//! The nginx zone of this part (see `scripts/nginx.sh`): its rate, changed by a reload, and its
//! burst.

use std::{path::Path, process::Command};

/// The nginx zone of this part.
pub const ZONE: &str = "adaptive";

/// Sets the rate of the `adaptive` zone of the nginx in `dir` and waits for the reload.
pub fn set_rate(dir: &Path, rate: f64) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nginx.sh");
    let output = Command::new(script)
        .arg("set-rate")
        .arg(dir)
        .arg(format!("{rate:.0}"))
        .arg(ZONE)
        .output()
        .map_err(|error| format!("cannot run {script}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{script} set-rate failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The burst of the `adaptive` zone, read from the running configuration (0: none).
pub fn burst(dir: &Path) -> Option<u32> {
    let config = std::fs::read_to_string(dir.join("nginx.conf")).ok()?;
    let rest = config
        .split(&format!("limit_req zone={ZONE}"))
        .nth(1)?
        .trim_start();
    if rest.starts_with(';') {
        return Some(0);
    }
    let digits = rest.strip_prefix("burst=")?;
    digits
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
