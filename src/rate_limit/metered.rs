//! [`Metered`]: the response body of [`RateLimitAwareService`](super::RateLimitAwareService), which
//! settles a request's token charge with the `usage` its answer reports.
//!
//! Only a request admitted while its scope's token buckets are modelled is tapped: the body
//! keeps a bounded tail of what passes (a JSON body's `usage` comes near its end; a stream's
//! in its last chunk) and, at the end of the stream, reads [`Usage`] from it and settles the
//! scope ([`RateLimitStore::settle_in`](super::RateLimitStore::settle_in)). Every other body
//! passes through untouched: one branch per frame.

use std::{
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{layer::AnyShared, Scope, TokenCharge, Usage};

/// The bytes of a body's end kept to find its `usage`: a final SSE chunk or the end of a JSON
/// completion fit many times over.
const TAIL: usize = 8 * 1024;

pin_project! {
    /// A response body that settles its request's token charge at its end (see the
    /// [module](self)); a pass-through for every request not charged tokens.
    pub struct Metered<B> {
        #[pin]
        inner: B,
        tap: Option<Box<Tap>>,
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for Metered<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("inner", &self.inner)
            .field("tapped", &self.tap.is_some())
            .finish()
    }
}

/// What settles one tapped body.
pub(super) struct Tap {
    shared: Arc<AnyShared>,
    scope: Scope,
    sent_at: Instant,
    charged: TokenCharge,
    tail: Vec<u8>,
}

impl Tap {
    pub(super) fn new(
        shared: Arc<AnyShared>,
        scope: Scope,
        sent_at: Instant,
        charged: TokenCharge,
    ) -> Box<Tap> {
        Box::new(Tap {
            shared,
            scope,
            sent_at,
            charged,
            tail: Vec::new(),
        })
    }

    /// Keeps the last [`TAIL`] bytes seen (at most twice that held: amortised copying).
    fn keep(&mut self, data: &[u8]) {
        if data.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - TAIL..]);
            return;
        }
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * TAIL {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
    }

    /// The body ended: settle with its usage, if it reported one.
    fn finish(self) {
        if let Some(usage) = read_tail(&self.tail) {
            let wake = self.shared.store.settle_in(
                Instant::now(),
                &self.scope,
                self.sent_at,
                self.charged,
                usage,
            );
            self.shared.wake(wake);
        }
    }
}

/// The `usage` of a body's tail: the whole body when it fits, else the last top-level
/// `"usage"` member of a JSON body, or the last event of a stream that carries one.
fn read_tail(tail: &[u8]) -> Option<Usage> {
    if let Some(usage) = Usage::read(tail) {
        return Some(usage);
    }
    // A JSON body cut at its start: read `{"usage": …, … }` from the last `"usage"` on.
    let key = b"\"usage\"";
    let at = tail.windows(key.len()).rposition(|w| w == key)?;
    let mut object = Vec::with_capacity(tail.len() - at + 1);
    object.push(b'{');
    object.extend_from_slice(&tail[at..]);
    Usage::read(&object)
}

impl<B> Metered<B> {
    /// A pass-through body.
    pub fn new(inner: B) -> Self {
        Metered { inner, tap: None }
    }

    pub(super) fn tapped(inner: B, tap: Option<Box<Tap>>) -> Self {
        Metered { inner, tap }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The wrapped body (a tap, if any, is dropped: the charge is not settled).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for Metered<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(tap) = this.tap.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        tap.keep(data.chunk());
                    }
                }
                // Cut short: what it cost is unknown, the charge stands.
                Some(Err(_)) => *this.tap = None,
                None => {}
            }
            // Ended (some consumers stop at `is_end_stream` without polling again).
            if frame.is_none() || this.inner.is_end_stream() {
                if let Some(tap) = this.tap.take() {
                    tap.finish();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_in_a_tail_cut_anywhere() {
        let filler = "x".repeat(3 * TAIL);
        let json = format!(
            r#"{{"choices":[{{"message":{{"content":"{filler}"}}}}],"usage":{{"prompt_tokens":7,"completion_tokens":3}}}}"#
        );
        let mut tap_tail = Vec::new();
        for chunk in json.as_bytes().chunks(1000) {
            tap_tail.extend_from_slice(chunk);
            if tap_tail.len() > 2 * TAIL {
                let cut = tap_tail.len() - TAIL;
                tap_tail.drain(..cut);
            }
        }
        let usage = read_tail(&tap_tail).expect("found");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 3));
        let sse = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{filler}\"}}}}]}}\n\n\
             data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":2}}}}\n\n\
             data: [DONE]\n\n"
        );
        let tail = &sse.as_bytes()[sse.len() - TAIL..];
        let usage = read_tail(tail).expect("found");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (9, 2));
        assert_eq!(read_tail(b"garbage \"usage\": nope"), None);
        assert_eq!(read_tail(b""), None);
    }
}
