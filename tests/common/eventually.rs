//! Waiting, in real time, for something another task or process does.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Polls `done` every 5 ms for at most `limit` (real time); whether it came true.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while !done() {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}
