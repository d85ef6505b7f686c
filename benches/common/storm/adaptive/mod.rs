//! Adaptation to a limit that is not known and that moves: nginx `limit_req` answering 429
//! without any hint, at a limit that is not the gate's fixed release pace, halved mid-run.
//!
//! The lanes run side by side on the same Poisson arrivals, each on its own nginx bucket (the
//! `adaptive` zone of `scripts/nginx.sh`, keyed by path): `fireworks::layer` with the gate's
//! adaptive rate set to CUBIC (the default), to AIMD, and off (the gate alone: a 429 closes it
//! for 100 ms, doubling, and held requests leave at the fixed `release_spacing`, 50/s), and,
//! for context, the other three strategies of the storm.
//!
//! The limit is `STORM_ADAPTIVE_RATE` (40 r/s) for one phase, then half of it for another; the
//! offered load stays at `STORM_OFFERED_FACTOR` × the first limit (80/s) throughout, so demand
//! does not fall when the server halves what it allows (the second phase is 4× overloaded).
//! 40, not the storm's 50: 50/s is exactly the gate's fixed release pace, which would let a
//! client that does not adapt look as if it did. The limit is halved by rewriting the zone's
//! rate and reloading nginx (`scripts/nginx.sh set-rate`): a reload keeps the zone's buckets
//! and applies the new rate at once.
//!
//! The pieces: the lanes ([`lanes`]), the nginx zone ([`zone`]), the learned rates sampled
//! while the lanes run ([`learned`]), driving the lanes and the halving ([`run`]), the numbers
//! of a phase and of the settling after the halving ([`phases`]), the tables ([`report`]), and
//! the per-second lines and the plot ([`timeline`]).

mod lanes;
mod learned;
mod phases;
mod report;
mod run;
mod timeline;
mod zone;

pub use run::run;
