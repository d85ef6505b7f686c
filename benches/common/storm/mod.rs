//! The storm benchmark's pieces: configuration, the four client strategies, the load driver,
//! the four scenarios (a real rate limiter, the same with a limit that moves, load shedding,
//! an outage), the tables and the plots. Recording, arrivals and the preset client are shared
//! with the fleet (`common/traffic`).

pub mod adaptive;
pub mod config;
pub mod load;
pub mod nginx;
pub mod outage;
pub mod plot;
pub mod priority;
pub mod shedding;
pub mod strategies;
pub mod summary;
