//! The fleet benchmark's pieces: configuration, the worker process, recording, the parent that
//! runs the workers of each mode side by side, and the tables.

pub mod config;
pub mod parent;
pub mod record;
pub mod report;
pub mod worker;
