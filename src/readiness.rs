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

#[cfg(test)]
mod tests {
    use std::{
        future::{ready as done, Ready},
        task::Waker,
    };

    use super::*;

    /// Ready on the second poll (or fails then, if `fail`); counts its calls.
    struct Slow {
        polls: u32,
        calls: u32,
        fail: bool,
    }

    impl Service<u32> for Slow {
        type Response = u32;
        type Error = &'static str;
        type Future = Ready<Result<u32, &'static str>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.polls += 1;
            match (self.polls, self.fail) {
                (1, _) => Poll::Pending,
                (_, true) => Poll::Ready(Err("down")),
                (_, false) => Poll::Ready(Ok(())),
            }
        }

        fn call(&mut self, request: u32) -> Self::Future {
            self.calls += 1;
            done(Ok(request))
        }
    }

    fn slow(fail: bool) -> Slow {
        Slow {
            polls: 0,
            calls: 0,
            fail,
        }
    }

    #[test]
    fn readies_then_calls_once() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut call = ReadyCall::new(slow(false), 7);
        let mut sent = 0;
        let send = |s: &mut Slow, r| s.call(r);
        assert!(call.poll_call(&mut cx, send).is_pending());
        let Poll::Ready(Ok(_)) = call.poll_call(&mut cx, |s: &mut Slow, r| {
            sent += 1;
            s.call(r)
        }) else {
            panic!("not sent once ready");
        };
        assert_eq!((sent, call.service.calls), (1, 1));
        // Sent already: nothing is polled or called again.
        let again = call.poll_call(&mut cx, send);
        assert!(matches!(again, Poll::Ready(Err(NotSent::Spent))));
        assert_eq!((call.service.polls, call.service.calls), (2, 1));
    }

    #[test]
    fn a_readiness_error_sends_nothing() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut call = ReadyCall::idle(slow(true));
        let send = |s: &mut Slow, r| s.call(r);
        assert!(matches!(
            call.poll_call(&mut cx, send),
            Poll::Ready(Err(NotSent::Spent))
        ));
        call.due(3);
        assert!(call.poll_call(&mut cx, send).is_pending());
        let failed = call.poll_call(&mut cx, send);
        assert!(matches!(
            failed,
            Poll::Ready(Err(NotSent::NotReady("down")))
        ));
        assert_eq!(call.service.calls, 0);
    }
}
