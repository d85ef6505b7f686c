//! Giving back what `poll_ready` reserved before a request waits.
//!
//! tower's contract: `poll_ready` may reserve capacity (a `concurrency_limit` permit, a
//! `buffer` slot) that the next `call` consumes. A layer that decides in `call` to *wait*
//! (back off, queue at the rate-limit gate, read a request body that is still streaming in)
//! must not keep that reservation while it waits: the same request's next step needs the
//! capacity, and a `concurrency_limit(1)` below would deadlock on its own permit until the
//! deadline. So the waiting request takes an unreadied clone, readies it once it is about to
//! send, and the readied instance is dropped, which releases what it held.

/// Releases the readiness of `readied` and returns a clone for a request that waits.
///
/// `readied` is left as a fresh, unreadied clone: it must be readied again before its next
/// call, as after any call. Costs two clones; only requests that wait pay it.
pub(crate) fn release<S: Clone>(readied: &mut S) -> S {
    let waiter = readied.clone();
    // Assigning drops the readied instance, and with it its permit or slot.
    *readied = waiter.clone();
    waiter
}
