//! What the storm and fleet benchmarks share: open-loop Poisson arrivals, the log of a run
//! (every attempt on the wire, every logical request and how it ended), the client under test
//! (`fireworks::layer` over a hyper-util client) and the quantiles of the tables.

pub mod arrivals;
pub mod preset;
pub mod record;
pub mod stats;
