//! Giving back what `poll_ready` reserved before a request waits.
//!
//! tower's contract: `poll_ready` may reserve capacity (a `concurrency_limit` permit, a
//! `buffer` slot) that the next `call` consumes. A layer that decides in `call` to *wait*
//! (back off, queue at the rate-limit gate, read a request body that is still streaming in)
//! must not keep that reservation while it waits: the same request's next step needs the
//! capacity, and a `concurrency_limit(1)` below would deadlock on its own permit until the
//! deadline. So the waiting request takes an unreadied clone, readies it once it is about to
//! send ([`ReadyCall`]), and the readied instance is dropped, which releases what it held.

use std::task::{ready, Context, Poll};

use tower_service::Service;

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

/// A request that waited, about to be sent: readies its service, then calls it once.
///
/// The one "ready, then call" step of the layers whose requests wait: the backoff future and
/// the rate-limit gate's waiting future (a clone from [`release`], and the request), and the
/// retry future's next attempt (its service, and the attempt that is due). Only the step is
/// shared: what a `poll_ready` error means, deadlines and guards stay with each future, which
/// does them in `send`. Owns what it is given (no allocation, no clone); `S` and `R` need no
/// pinning, so it is a plain field of a pinned state.
pub(crate) struct ReadyCall<S, R> {
    service: S,
    /// What is sent once the service is ready; `None` once sent (or before one is due).
    request: Option<R>,
}

/// Why [`ReadyCall::poll_call`] did not send.
pub(crate) enum NotSent<E> {
    /// The service failed to get ready.
    NotReady(E),
    /// Nothing to send: sent already (a future polled after completion).
    Spent,
}

impl<S, R> ReadyCall<S, R> {
    /// `request`, to be sent with `service` once it is ready.
    pub(crate) fn new(service: S, request: R) -> Self {
        ReadyCall {
            service,
            request: Some(request),
        }
    }

    /// `service`, with nothing due yet (see [`ReadyCall::due`]).
    pub(crate) fn idle(service: S) -> Self {
        ReadyCall {
            service,
            request: None,
        }
    }

    /// `request` is to be sent next.
    pub(crate) fn due(&mut self, request: R) {
        self.request = Some(request);
    }

    /// The service, for a call that needs no readying here (readied by the caller's
    /// `poll_ready`).
    pub(crate) fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// Readies the service; once it is ready, hands it the request through `send` (which
    /// calls it, after dropping what the waiting held), once.
    pub(crate) fn poll_call<Req, T>(
        &mut self,
        cx: &mut Context<'_>,
        send: impl FnOnce(&mut S, R) -> T,
    ) -> Poll<Result<T, NotSent<S::Error>>>
    where
        S: Service<Req>,
    {
        if self.request.is_none() {
            return Poll::Ready(Err(NotSent::Spent));
        }
        if let Err(e) = ready!(self.service.poll_ready(cx)) {
            return Poll::Ready(Err(NotSent::NotReady(e)));
        }
        match self.request.take() {
            Some(request) => Poll::Ready(Ok(send(&mut self.service, request))),
            None => Poll::Ready(Err(NotSent::Spent)),
        }
    }
}
