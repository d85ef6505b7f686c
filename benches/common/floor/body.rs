//! The floor's bodies: the request body the inner service receives, and the response-body
//! wrapper with its idle-read timer and usage tap; and where its timers live.

use std::{
    marker::PhantomData,
    pin::Pin,
    task::{ready, Context, Poll, Waker},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::BoxError;

pub use super::timer::TimerSlot;

/// The request body the inner service receives: the collected bytes, replayable.
#[derive(Debug, Default)]
pub struct FloorReplayBody {
    pub(super) data: Option<Bytes>,
}

impl Body for FloorReplayBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Reads an in-memory body with one poll on a no-op waker: `Ok(None)` when empty, an error
/// when it is not in memory (more than one frame, trailers, not ready) or fails.
pub(super) fn collect_once<B>(body: &mut B) -> Result<Option<Bytes>, BoxError>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    if body.is_end_stream() {
        return Ok(None);
    }
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut *body).poll_frame(&mut cx) {
        Poll::Ready(None) => Ok(None),
        Poll::Ready(Some(Ok(frame))) if body.is_end_stream() => match frame.into_data() {
            Ok(mut data) => Ok(Some(data.copy_to_bytes(data.remaining()))),
            Err(_) => Err("the floor replays data frames only".into()),
        },
        Poll::Ready(Some(Err(e))) => Err(e.into()),
        _ => Err("the floor handles request bodies in memory (one frame) only".into()),
    }
}

/// The timer slot a [`Wrap`] uses, for the response future and the body alike.
pub trait WrapTimer {
    /// Inline or boxed.
    type Timer: TimerSlot;
}

/// How the floor wraps the inner service's response body.
pub trait Wrap<B>: WrapTimer {
    /// The body handed back.
    type Body: Body;
    /// Wraps `body`, with `idle` as its idle-read timeout.
    fn wrap(body: B, idle: Duration) -> Self::Body;
}

/// The floor's response body: [`FloorBody`], its timers in a `T` ([`TimerSlot`]).
#[derive(Debug)]
pub struct Timed<T = Option<Sleep>>(PhantomData<T>);

/// The floor with its timers boxed (created at the first `Pending` only, as before).
pub type TimedBoxed = Timed<Option<Pin<Box<Sleep>>>>;

impl<T: TimerSlot> WrapTimer for Timed<T> {
    type Timer = T;
}

impl WrapTimer for Plain {
    type Timer = Option<Sleep>;
}

/// No response body wrapper (a variant, to measure the wrapper).
#[derive(Debug)]
pub struct Plain;

impl<B, T> Wrap<B> for Timed<T>
where
    B: Body,
    B::Error: Into<BoxError>,
    T: TimerSlot,
{
    type Body = FloorBody<B, T>;

    #[inline]
    fn wrap(body: B, idle: Duration) -> FloorBody<B, T> {
        FloorBody {
            inner: body,
            sleep: T::default(),
            idle,
            armed: false,
            timed_out: false,
            tap: None,
        }
    }
}

impl<B: Body> Wrap<B> for Plain {
    type Body = B;

    #[inline]
    fn wrap(body: B, _idle: Duration) -> B {
        body
    }
}

pin_project! {
    /// The floor's response body: the idle-read timer (`src/timeout/body.rs`; its `Sleep`
    /// created the first time a read finds nothing ready) and the usage tap
    /// (`src/rate_limit/metered.rs`: none when no token limit is known, one branch per frame).
    pub struct FloorBody<B, T> {
        #[pin]
        inner: B,
        #[pin]
        sleep: T,
        idle: Duration,
        armed: bool,
        timed_out: bool,
        // The end of the body, kept to settle a token charge (never on the success path).
        tap: Option<Box<Vec<u8>>>,
    }
}

impl<B, T: TimerSlot> FloorBody<B, T> {
    /// Whether the idle-read timer was created (at a `Pending` frame).
    pub fn timer_armed(&self) -> bool {
        self.sleep.is_armed()
    }
}

impl<B, T> Body for FloorBody<B, T>
where
    B: Body,
    B::Error: Into<BoxError>,
    T: TimerSlot,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if *this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.as_mut().poll_frame(cx) {
            *this.armed = false;
            if let Some(tap) = this.tap.as_mut() {
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    tap.extend_from_slice(data.chunk());
                }
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if !*this.armed {
            let now = Instant::now();
            let at = now.checked_add(*this.idle).unwrap_or(now);
            this.sleep.as_mut().arm(at);
            *this.armed = true;
        }
        ready!(this.sleep.poll_armed(cx));
        *this.timed_out = true;
        Poll::Ready(Some(
            Err("the floor's body idle-read timeout passed".into()),
        ))
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.timed_out {
            return SizeHint::with_exact(0);
        }
        self.inner.size_hint()
    }
}
