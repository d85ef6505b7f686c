//! The overhead benchmark as a profiling target: one stack's loop, alone, for a set time or a
//! set number of requests, so that `perf record` or `valgrind --tool=callgrind` sees nothing
//! else (no criterion, no other stacks, no loopback server unless asked for).

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use super::{in_process::RequestLoop, knobs, loopback::LoopbackStack};

/// What the profiling mode runs, from the environment.
#[derive(Debug, Clone)]
pub struct ProfileMode {
    /// Only stacks whose name contains this (any case).
    pub only: String,
    /// How long each chosen stack runs (ignored when `requests` is set).
    pub duration: Duration,
    /// Run exactly this many requests instead (in process only): for instruction counters.
    pub requests: Option<u64>,
    /// Profile the loopback stacks instead of the in-process ones.
    pub loopback: bool,
}

/// Requests per timed chunk of the in-process loop.
const CHUNK: u64 = 10_000;

impl ProfileMode {
    /// `Some` when `OVERHEAD_ONLY` is set (see the bench's module docs).
    pub fn from_env() -> Option<ProfileMode> {
        let only = std::env::var("OVERHEAD_ONLY").ok()?;
        let seconds = knobs::positive_number("overhead", "OVERHEAD_SECONDS").unwrap_or(10.0);
        Some(ProfileMode {
            only: only.to_lowercase(),
            duration: Duration::from_secs_f64(seconds),
            requests: knobs::positive_number("overhead", "OVERHEAD_REQUESTS").map(|n| n as u64),
            loopback: std::env::var_os("OVERHEAD_LOOPBACK").is_some(),
        })
    }

    /// Whether the stack called `name` is one to run.
    pub fn chooses(&self, name: &str) -> bool {
        name.to_lowercase().contains(&self.only)
    }

    /// Runs every chosen in-process stack alone, one after the other, and prints its sizes
    /// and the median ns/req of its chunks.
    pub fn run_in_process<'a>(
        &self,
        runtime: &Runtime,
        stacks: impl IntoIterator<Item = (&'static str, &'a mut Box<dyn RequestLoop>)>,
    ) {
        let mut ran = false;
        for (name, requests) in stacks.into_iter().filter(|(name, _)| self.chooses(name)) {
            ran = true;
            let (future, body) = requests.sizes();
            println!("{name}: response future {future} B, response body {body} B");
            let mut chunks = Vec::new();
            if let Some(total) = self.requests {
                let elapsed = requests.run(runtime, total);
                chunks.push(elapsed.as_nanos() as f64 / total as f64);
            } else {
                let start = Instant::now();
                while start.elapsed() < self.duration {
                    let elapsed = requests.run(runtime, CHUNK);
                    chunks.push(elapsed.as_nanos() as f64 / CHUNK as f64);
                }
            }
            chunks.sort_by(f64::total_cmp);
            let (low, high) = (chunks[0], chunks[chunks.len() - 1]);
            println!(
                "{name}: {:.0} ns/req (median of {} chunks; {low:.0}..{high:.0})",
                chunks[chunks.len() / 2],
                chunks.len()
            );
        }
        if !ran {
            eprintln!(
                "overhead: no in-process stack matches OVERHEAD_ONLY={:?}",
                self.only
            );
        }
    }

    /// Runs every chosen loopback stack's closed loop alone for the set time and prints its
    /// throughput, CPU and heap allocations (`allocations`: the process's count so far; client
    /// and server together) per request.
    pub async fn run_loopback(&self, stacks: &[LoopbackStack], allocations: fn() -> u64) {
        let mut ran = false;
        for stack in stacks.iter().filter(|s| self.chooses(s.name)) {
            ran = true;
            // Opens the pool's connections first.
            stack.run_for(Duration::from_millis(200)).await;
            let before = allocations();
            let run = stack.run_for(self.duration).await;
            let allocs = (allocations() - before) as f64 / run.completed.max(1) as f64;
            let cpu = run.cpu.map_or_else(
                || "–".to_owned(),
                |cpu| {
                    format!(
                        "{:.1}",
                        cpu.as_secs_f64() * 1e6 / run.completed.max(1) as f64
                    )
                },
            );
            println!(
                "{}: {:.0} req/s, CPU {cpu} µs/req, {allocs:.2} allocs/req, {} errors",
                stack.name,
                run.per_second(),
                run.errors
            );
        }
        if !ran {
            eprintln!(
                "overhead: no loopback stack matches OVERHEAD_ONLY={:?}",
                self.only
            );
        }
    }
}
