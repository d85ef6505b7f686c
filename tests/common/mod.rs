//! What the integration tests share, written once: the quick backoff they configure, an
//! address nothing listens on, a hyper-util client, chat completion requests for the local
//! server, waiting for another task in real time, and a capture of tracing output.
//!
//! Declared as `mod common;` by each test file that uses it; the per-topic support modules
//! (`support`, `fault_matrix_support`, `security_support`, `redis_support`, ...) reach it as
//! `crate::common`.
#![allow(dead_code, unused_imports)] // each test binary uses some of it only

pub mod backoff;
#[cfg(feature = "testing")]
pub mod chat;
pub mod eventually;
pub mod net;
pub mod tracing_capture;

pub use backoff::fast_backoff;
pub use net::{closed_port, hyper_client, HyperClient};
