//! Load shedding: nginx answers `503 Service Overloaded` (Fireworks' JSON error shape, no
//! `Retry-After`) to a random share of requests (`STORM_SHED_PERCENT`, 30 %) and 200 to the
//! rest, with no rate limit at all (`/shed/<lane>` in `scripts/nginx.sh`: `split_clients` on
//! `$request_id`).
//!
//! A server that sheds a fixed share of requests at random is not down: each retry is a fresh
//! draw, so a client that retries at once succeeds after `1 / (1 - share)` attempts on average
//! (1.43 at 30 %), in milliseconds. A client that takes these 503s for an outage (backing off
//! for seconds, or holding every caller behind a circuit breaker) turns a 30 % error rate into
//! seconds of latency for everyone.
//!
//! The strategies run side by side on the same steady arrivals (50/s for 20 s: 1000 requests
//! each), each on its own path; every
//! request is driven to success or give-up (the fault deadline, 60 s by default). The pieces:
//! driving the lanes and the plot ([`run`]), the table and the targets ([`report`]).

mod report;
mod run;

pub use run::run;
