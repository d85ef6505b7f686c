//! The storm benchmark's pieces: configuration, the four client strategies (and the OpenAI
//! SDK's policy), the load drivers, the six scenarios (a real rate limiter, the same with a
//! limit that moves, load shedding, an outage, a token mix, two models on one client), the
//! tables and the plots. Recording, arrivals and the preset client are shared
//! with the fleet (`common/traffic`).

pub mod adaptive;
pub mod config;
pub mod load;
pub mod mix;
pub mod models;
pub mod nginx;
pub mod openai_sdk;
pub mod outage;
pub mod plot;
pub mod priority;
pub mod shedding;
pub mod strategies;
pub mod summary;
pub mod tokens;
