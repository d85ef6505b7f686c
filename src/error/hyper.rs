//! What this crate reads from hyper's and hyper-util's errors (feature `hyper-util`).
//!
//! hyper-util has no integration module of its own here (`client` needs `rustls`): its error
//! detection lives beside the error type, behind its feature.

use std::error::Error as StdError;

/// Whether `err` (one link of a source chain) is hyper-util's connect failure (which covers
/// its DNS resolver and connect timeout).
pub(super) fn is_connect(err: &(dyn StdError + 'static)) -> bool {
    err.downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect)
}

/// Whether `err` (one link of a source chain) is hyper's failure before a response: an
/// incomplete message, a closed or canceled connection.
pub(super) fn is_transport(err: &(dyn StdError + 'static)) -> bool {
    err.downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled())
}
