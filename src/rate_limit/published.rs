//! The body of the request being sent, published by [`RetryOnStatus`](crate::RetryOnStatus)
//! to the layers inside it for the duration of their `call`, the way
//! [`TimeoutByWorkload`](crate::TimeoutByWorkload) publishes its deadline: the rate-limit gate
//! reads the request's model from it without the body type having to expose its bytes, and
//! without an extension (whose insert, cloned into every attempt, would cost allocations on
//! the success path). A handle to shared bytes is published, never a copy.
//!
//! A layer between the two that calls the inner service from another task (`tower::buffer`)
//! hides it: the gate then scopes by a [`Scope`](super::Scope) extension or client-wide.

use std::cell::Cell;

use bytes::Bytes;

use crate::scoped::{self, Published};

thread_local! {
    static BODY: Cell<Option<Bytes>> = const { Cell::new(None) };
}

/// Runs `f` with `body` published (the previous publication is restored afterwards, also when
/// `f` panics).
pub(crate) fn with_body<R>(body: Option<&Bytes>, f: impl FnOnce() -> R) -> R {
    let _restore = enter(body);
    f()
}

/// Publishes `body` until the returned guard is dropped (as [`with_body`] for a closure).
#[inline]
pub(crate) fn enter(body: Option<&Bytes>) -> impl Drop {
    Published::set(&BODY, body.cloned())
}

/// The body published around this call, if any (a cheap handle).
pub(crate) fn body() -> Option<Bytes> {
    scoped::current(&BODY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_for_the_call_only_and_nested_calls_restore() {
        assert_eq!(body(), None);
        let outer = Bytes::from_static(b"outer");
        let inner = Bytes::from_static(b"inner");
        with_body(Some(&outer), || {
            assert_eq!(body().as_deref(), Some(&b"outer"[..]));
            with_body(Some(&inner), || {
                assert_eq!(body().as_deref(), Some(&b"inner"[..]))
            });
            assert_eq!(body().as_deref(), Some(&b"outer"[..]));
        });
        assert_eq!(body(), None);
    }
}
