//! [`PacedBody`]: a response body sent chunk by chunk at an interval, which then ends, stalls
//! or breaks its connection.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::Sleep;

use super::conn::ConnControl;
use super::meter::GeneratedMeter;

/// A future that resolves when a stalled body should give up (the server shuts down).
pub(crate) type StallUntil = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What happens once every chunk has been sent.
pub(crate) enum BodyEnd {
    /// The body ends normally.
    Finish,
    /// Nothing more is sent, the connection stays open; the body fails when the future resolves.
    Stall(StallUntil),
    /// The connection is closed (FIN) before the body ends, after the chunks were flushed.
    Reset(Arc<ConnControl>),
}

/// Sends its chunks one by one, the first at once and each next one `interval` later; with a
/// meter, each chunk sent counts one generated token (the meter stops at the completion's).
pub(crate) struct PacedBody {
    chunks: VecDeque<Bytes>,
    interval: Duration,
    started: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    end: BodyEnd,
    meter: Option<GeneratedMeter>,
}

impl PacedBody {
    pub(crate) fn new(
        chunks: impl IntoIterator<Item = Bytes>,
        interval: Duration,
        end: BodyEnd,
    ) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
            interval,
            started: false,
            sleep: None,
            end,
            meter: None,
        }
    }

    /// Counts one generated token per chunk sent.
    pub(crate) fn metered(mut self, meter: Option<GeneratedMeter>) -> Self {
        self.meter = meter;
        self
    }
}

/// The error a body ends with when a stall is given up.
#[derive(Debug)]
pub(crate) struct BodyAborted;

impl fmt::Display for BodyAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body aborted by the test server")
    }
}

impl std::error::Error for BodyAborted {}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        let this = self.get_mut();
        if !this.chunks.is_empty() {
            if this.started && !this.interval.is_zero() {
                let interval = this.interval;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            this.started = true;
            if let Some(meter) = &mut this.meter {
                meter.produce(1);
            }
            return Poll::Ready(this.chunks.pop_front().map(|chunk| Ok(Frame::data(chunk))));
        }
        match &mut this.end {
            BodyEnd::Finish => Poll::Ready(None),
            BodyEnd::Stall(until) => match until.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyAborted))),
                Poll::Pending => Poll::Pending,
            },
            BodyEnd::Reset(control) => {
                // hyper flushes what it has written once the body is pending; the connection
                // task then drops the connection, so every chunk above reaches the client.
                control.close(false);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && matches!(self.end, BodyEnd::Finish)
    }
}
