//! The fleet benchmark's pieces: configuration, the worker process, the parent that runs the
//! workers of each mode side by side, and the tables. Recording, arrivals and the preset client
//! are shared with the storm (`common/traffic`).

pub mod config;
pub mod parent;
pub mod report;
pub mod worker;
