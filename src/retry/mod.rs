//! `RetryOnStatus`: what to retry, how often, and with which body.
//!
//! The guide's table splits errors into the ones another attempt can fix (429, 500, 502, 503,
//! 504: rate limits and transient server trouble) and the ones it cannot (400, 401, 404, 422:
//! fix the request). Failures that never reached the server are always worth another try, and
//! are exactly the ones the Fireworks dashboard cannot show you.
//!
//! Retrying safely needs more than a status table:
//! - the request body must be sent again byte for byte, whatever its type ([`ReplayBody`]);
//! - retries must be budgeted across the whole client, or an outage multiplies load by the
//!   attempt cap ([`RetryBudget`]);
//! - no retry may start that cannot finish before the deadline, and when retrying stops the
//!   caller must get the real last response, never a made-up one.
//!
//! The *when* of a retry is [`JitteredBackoff`](crate::JitteredBackoff)'s job, and whether the
//! server may be sent anything at all is [`RateLimitAware`](crate::RateLimitAware)'s: stack them
//! inside this layer (the [`fireworks`](crate::fireworks) preset does).

mod body;
mod budget;
pub mod future;
mod head;
mod layer;
mod service;

pub use crate::classify::{RetryCause, StatusSet};
pub use body::ReplayBody;
pub use budget::RetryBudget;
pub use layer::RetryOnStatus;
pub use service::RetryOnStatusService;
