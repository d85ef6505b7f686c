//! `JitteredBackoff`: when to retry.
//!
//! Retrying at once turns one overloaded server into a retry storm; retrying on a fixed
//! schedule makes every client that failed together retry together. Exponential backoff
//! spreads attempts out in time, jitter spreads them across clients. The guide's loop waits
//! `1 s * 2^n + U(0, 1 s)`; [`Jitter`] also offers the better-studied full, equal and
//! decorrelated modes.
//!
//! The server knows better than any schedule: a `retry-after-ms` or `Retry-After` hint replaces
//! the computed wait when it is longer, up to [`JitteredBackoff::max_server_wait`]. Every wait is
//! capped, and no wait starts that would end past the request's [`Deadline`](crate::context::Deadline).
//!
//! [`Schedule`] and [`RandomSource`] are plain values with no I/O, usable on their own.

pub mod future;
#[cfg(feature = "backoff")]
mod interop;
mod layer;
mod random;
mod schedule;
mod service;

pub use layer::{CustomSchedule, JitteredBackoff};
pub use random::RandomSource;
pub use schedule::{Jitter, Schedule};
pub use service::JitteredBackoffService;
