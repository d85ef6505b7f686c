//! Replaying request bodies, and handing back set-aside response bodies.

use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::BoxError;

pin_project! {
    /// A body made of bytes set aside in memory, optionally followed by the rest of a stream.
    ///
    /// [`RetryOnStatus`](crate::RetryOnStatus) sends every attempt's request with one: a fully
    /// buffered copy of the caller's body (replayed byte for byte), or, for a body larger than
    /// the replay cap, the part read so far followed by the rest of the original stream (sent
    /// once). Responses come back in one too: normally just the inner body, untouched; when
    /// retrying stopped after a response had been set aside, that response's bytes.
    pub struct ReplayBody<B> {
        prefix: Option<Bytes>,
        // Boxed: trailers and replayed errors are rare, and the body crosses every layer's
        // `call` and the client's moves; inline, the `HeaderMap` would add 88 bytes to each.
        tail: Option<Box<Tail>>,
        #[pin]
        rest: Option<B>,
    }
}

/// What a body in memory ends with.
enum Tail {
    Trailers(HeaderMap),
    /// The original body broke after the prefix: the reader must see it.
    Error(BoxError),
}

impl<B> ReplayBody<B> {
    /// A body of the given bytes and trailers only.
    pub fn buffered(data: Option<Bytes>, trailers: Option<HeaderMap>) -> Self {
        ReplayBody {
            prefix: data.filter(|d| !d.is_empty()),
            tail: trailers.map(|trailers| Box::new(Tail::Trailers(trailers))),
            rest: None,
        }
    }

    /// The bytes read before a body broke, then its error: a set-aside response handed back
    /// must not pass for complete.
    pub(crate) fn broken(data: Option<Bytes>, error: BoxError) -> Self {
        ReplayBody {
            prefix: data.filter(|d| !d.is_empty()),
            tail: Some(Box::new(Tail::Error(error))),
            rest: None,
        }
    }

    /// `prefix`, then everything `rest` yields.
    pub fn streaming(prefix: Option<Bytes>, rest: B) -> Self {
        ReplayBody {
            prefix: prefix.filter(|d| !d.is_empty()),
            tail: None,
            rest: Some(rest),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        ReplayBody::buffered(None, None)
    }

    /// The whole body, when it is entirely in memory and has no trailers (no copy); the body
    /// back otherwise. Lets adapters hand a replayed body to clients that prefer plain bytes.
    #[allow(clippy::result_large_err)] // handing the body itself back is the point
    pub fn try_into_bytes(self) -> Result<Bytes, Self> {
        match (&self.rest, &self.tail) {
            (None, None) => Ok(self.prefix.unwrap_or_default()),
            _ => Err(self),
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(rest) = this.rest.as_pin_mut() {
            return match ready!(rest.poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(
                    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
                ))),
                Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                None => Poll::Ready(None),
            };
        }
        Poll::Ready(this.tail.take().map(|tail| match *tail {
            Tail::Trailers(trailers) => Ok(Frame::trailers(trailers)),
            Tail::Error(error) => Err(error),
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.tail.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(prefix),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower().saturating_add(prefix));
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper.saturating_add(prefix));
                }
                out
            }
        }
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayBody")
            .field("buffered_len", &self.prefix.as_ref().map_or(0, Bytes::len))
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

/// Reads a body into memory, up to a cap.
#[derive(Debug)]
pub(crate) struct Collector {
    first: Option<Bytes>,
    more: BytesMut,
    len: usize,
    cap: usize,
    trailers: Option<HeaderMap>,
}

/// How collecting ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Collected {
    /// The whole body is in memory.
    Complete,
    /// The body is longer than the cap; what was read is kept as a prefix.
    OverCap,
}

impl Collector {
    pub(crate) fn new(cap: usize) -> Self {
        Collector {
            first: None,
            more: BytesMut::new(),
            len: 0,
            cap,
            trailers: None,
        }
    }

    fn push(&mut self, mut data: impl Buf) {
        let n = data.remaining();
        self.len = self.len.saturating_add(n);
        if self.first.is_none() && self.more.is_empty() {
            // One chunk (a `Full<Bytes>`, a `String`): kept as is, no copy.
            self.first = Some(data.copy_to_bytes(n));
            return;
        }
        if let Some(first) = self.first.take() {
            self.more.reserve(first.len() + n);
            self.more.extend_from_slice(&first);
        }
        self.more.put(data);
    }

    /// Polls `body` until it ends, fails, or passes the cap.
    pub(crate) fn poll_collect<B>(
        &mut self,
        body: &mut B,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Collected, BoxError>>
    where
        B: Body + Unpin,
        B::Error: Into<BoxError>,
    {
        loop {
            if self.len > self.cap {
                return Poll::Ready(Ok(Collected::OverCap));
            }
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => return Poll::Ready(Ok(Collected::Complete)),
                Some(Err(e)) => return Poll::Ready(Err(e.into())),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.push(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            match &mut self.trailers {
                                Some(existing) => existing.extend(trailers),
                                None => self.trailers = Some(trailers),
                            }
                        }
                    }
                },
            }
        }
    }

    /// The bytes read so far (one `Bytes`: cloning it for each attempt is a reference count).
    pub(crate) fn take_data(&mut self) -> Option<Bytes> {
        self.first
            .take()
            .or_else(|| (!self.more.is_empty()).then(|| self.more.split().freeze()))
    }

    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    fn noop_cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    #[tokio::test]
    async fn multi_chunk_body_is_collected_byte_identical_with_trailers() {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"wor"))),
            Ok(Frame::data(Bytes::from_static(b"ld"))),
            Ok(Frame::trailers(HeaderMap::from_iter([(
                http::header::ETAG,
                "x".parse().unwrap(),
            )]))),
        ];
        let mut body = StreamBody::new(futures::stream::iter(chunks));
        let mut c = Collector::new(64);
        let done = std::future::poll_fn(|cx| c.poll_collect(&mut body, cx))
            .await
            .unwrap();
        assert_eq!(done, Collected::Complete);
        let replay: ReplayBody<Full<Bytes>> =
            ReplayBody::buffered(c.take_data(), c.take_trailers());
        assert_eq!(replay.size_hint().exact(), Some(11));
        let collected = replay.collect().await.unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello world"));
    }

    #[test]
    fn single_chunk_is_zero_copy_and_over_cap_keeps_the_prefix() {
        let data = Bytes::from(vec![7u8; 100]);
        let ptr = data.as_ptr();
        let mut body = Full::new(data);
        let mut c = Collector::new(1000);
        assert!(matches!(
            c.poll_collect(&mut body, &mut noop_cx()),
            Poll::Ready(Ok(Collected::Complete))
        ));
        assert_eq!(c.take_data().unwrap().as_ptr(), ptr, "no copy");

        let mut big = Full::new(Bytes::from(vec![1u8; 100]));
        let mut c = Collector::new(10);
        assert!(matches!(
            c.poll_collect(&mut big, &mut noop_cx()),
            Poll::Ready(Ok(Collected::OverCap))
        ));
        assert_eq!(c.len(), 100);
    }

    #[tokio::test]
    async fn streaming_replay_body_yields_prefix_then_rest() {
        let body = ReplayBody::streaming(
            Some(Bytes::from_static(b"ab")),
            Full::new(Bytes::from_static(b"cd")),
        );
        assert_eq!(body.size_hint().exact(), Some(4));
        assert!(!body.is_end_stream());
        assert_eq!(
            body.collect().await.unwrap().to_bytes(),
            Bytes::from_static(b"abcd")
        );
        assert!(ReplayBody::<Full<Bytes>>::empty().is_end_stream());
    }
}
