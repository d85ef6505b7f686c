//! A relayed server-sent-event stream that ends with an error event instead of a broken body.
//!
//! When the upstream stream stalls past the idle-read timeout (or breaks), the body fails.
//! Relayed as is, the gateway's caller sees a chunked body cut short, which the OpenAI SDKs
//! report as a network error (and may retry, from the start). [`SseErrorTail`] instead ends the
//! stream cleanly after one last event, `data: {"error": {...}}`, which both SDKs raise as an
//! `APIError` carrying the message (openai-python's and openai-node's `Stream`).
//!
//! The error event must start at an event boundary: appended to half an event, it would make
//! that event's JSON unreadable. So bytes after the last blank line are held back until the
//! event they belong to is complete (which costs nothing while every chunk holds whole events,
//! the usual case), and dropped if the stream fails before it is.

use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::{BoxError, Error};

pin_project! {
    /// A server-sent-event body that turns its inner body's failure into a final
    /// `data: {"error": {...}}` event (see the [module docs](self)).
    pub(crate) struct SseErrorTail<B> {
        #[pin]
        inner: B,
        // The start of an event whose end has not arrived yet.
        partial: BytesMut,
        done: bool,
    }
}

impl<B> SseErrorTail<B> {
    pub(crate) fn new(inner: B) -> Self {
        SseErrorTail {
            inner,
            partial: BytesMut::new(),
            done: false,
        }
    }
}

impl<B> Body for SseErrorTail<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let complete = complete_events(this.partial, data);
                        if !complete.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(complete))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(error)) => {
                    *this.done = true;
                    this.partial.clear();
                    let error = Error::from_inner(error);
                    return Poll::Ready(Some(Ok(Frame::data(error_event(&error)))));
                }
                None => {
                    // The upstream ended the stream itself: pass on what it sent, as it sent it.
                    *this.done = true;
                    if !this.partial.is_empty() {
                        let rest = this.partial.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // The error event can add bytes: no exact size.
        SizeHint::default()
    }
}

/// Adds `data` to the held-back `partial` event and returns every complete event: `data`
/// itself, without a copy, when nothing is held back and it ends on an event boundary.
fn complete_events(partial: &mut BytesMut, mut data: Bytes) -> Bytes {
    if partial.is_empty() {
        let end = last_boundary(&data).unwrap_or(0);
        if end < data.len() {
            partial.extend_from_slice(&data.split_off(end));
        }
        return data;
    }
    partial.extend_from_slice(&data);
    match last_boundary(partial) {
        Some(end) => partial.split_to(end).freeze(),
        None => Bytes::new(),
    }
}

/// Where the last event of `buf` ends: just after its last blank line (an empty line ended by
/// CRLF, LF or CR, as the SSE format allows). `buf` starts on a line start.
fn last_boundary(buf: &[u8]) -> Option<usize> {
    let mut line_start = true;
    let mut last = None;
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\r' | b'\n' => {
                let crlf = buf[i] == b'\r' && buf.get(i + 1) == Some(&b'\n');
                let end = i + if crlf { 2 } else { 1 };
                if line_start {
                    last = Some(end);
                }
                line_start = true;
                i = end;
            }
            _ => {
                line_start = false;
                i += 1;
            }
        }
    }
    last
}

/// `data: {"error": {...}}` and the blank line that ends the event.
fn error_event(error: &Error) -> Bytes {
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(error.error_json().to_string().as_bytes());
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures::stream;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::error::TimeoutPhase;

    type Chunk = Result<Frame<Bytes>, Error>;

    fn data(text: &'static str) -> Chunk {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    async fn relay(chunks: Vec<Chunk>) -> String {
        let body = SseErrorTail::new(StreamBody::new(stream::iter(chunks)));
        let bytes = body
            .collect()
            .await
            .map_err(|never: Infallible| match never {})
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn idle() -> Chunk {
        Err(Error::timeout(TimeoutPhase::BodyIdle))
    }

    #[tokio::test]
    async fn a_failure_becomes_a_last_error_event() {
        let text = relay(vec![data("data: {\"n\":1}\n\n"), idle()]).await;
        let (first, rest) = text.split_once("\n\n").unwrap();
        assert_eq!(first, "data: {\"n\":1}");
        let error: serde_json::Value =
            serde_json::from_str(rest.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(error["error"]["type"], "timeout_error");
        assert_eq!(error["error"]["code"], 504);
        assert!(error["error"]["message"].is_string());
        assert!(rest.ends_with("}\n\n"));
    }

    #[tokio::test]
    async fn half_an_event_is_held_back_and_dropped_on_failure() {
        let text = relay(vec![data("data: {\"n\":1}\n\ndata: {\"n\""), idle()]).await;
        assert!(
            text.starts_with("data: {\"n\":1}\n\ndata: {\"error\""),
            "{text}"
        );
        assert!(!text.contains("{\"n\"data"), "{text}");
    }

    #[tokio::test]
    async fn events_split_across_chunks_are_joined_and_a_clean_end_keeps_everything() {
        let text = relay(vec![
            data("data: {\"n\""),
            data(":1}\r\n"),
            data("\r\ndata: [DONE]\n"),
            data("\n"),
        ])
        .await;
        assert_eq!(text, "data: {\"n\":1}\r\n\r\ndata: [DONE]\n\n");
        // An upstream that ends without the final blank line: its bytes still go through.
        assert_eq!(relay(vec![data("data: x")]).await, "data: x");
    }

    #[test]
    fn boundaries() {
        assert_eq!(last_boundary(b"data: a\n\n"), Some(9));
        assert_eq!(last_boundary(b"data: a\r\n\r\ndata: b"), Some(11));
        assert_eq!(last_boundary(b"data: a\r\rdata: b\n"), Some(9));
        assert_eq!(last_boundary(b"data: a\r\n"), None);
        assert_eq!(last_boundary(b"data: a"), None);
        assert_eq!(last_boundary(b""), None);
    }

    #[test]
    fn whole_events_pass_without_a_copy() {
        let mut partial = BytesMut::new();
        let chunk = Bytes::from_static(b"data: a\n\n");
        let out = complete_events(&mut partial, chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert!(partial.is_empty());
    }
}
