//! What this crate reads from reqwest's errors: connect failures, and URLs to drop.

use std::error::Error as StdError;

use crate::error::BoxError;

/// reqwest errors carry the request URL, userinfo password and query keys included, into
/// their `Display` and `Debug`: this crate's errors keep them without it.
pub(crate) fn without_url(err: BoxError) -> BoxError {
    match err.downcast::<reqwest::Error>() {
        Ok(e) => Box::new(e.without_url()),
        Err(err) => match err.downcast::<reqwest_middleware::Error>() {
            Ok(e) => Box::new(e.without_url()),
            Err(err) => err,
        },
    }
}

/// Whether `err` (one link of a source chain) is reqwest's or reqwest-middleware's connect
/// failure.
pub(crate) fn is_connect(err: &(dyn StdError + 'static)) -> bool {
    err.downcast_ref::<reqwest::Error>()
        .is_some_and(reqwest::Error::is_connect)
        || err
            .downcast_ref::<reqwest_middleware::Error>()
            .is_some_and(reqwest_middleware::Error::is_connect)
}
