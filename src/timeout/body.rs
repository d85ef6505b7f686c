use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::error::{BoxError, Error, TimeoutPhase};

pin_project! {
    /// A response body that fails with [`TimeoutPhase::BodyIdle`] when no frame arrives for
    /// the idle-read timeout while it is being read.
    ///
    /// The clock runs only while the reader waits on the server: it starts when a read finds
    /// nothing ready and resets with every frame, so a slow reader is never blamed on the
    /// server, and a stream that keeps producing is never cut however long it lasts.
    ///
    /// The idle error comes once: after it the body ends (`None`, `is_end_stream`), so a reader
    /// that logs the error and keeps reading stops instead of spinning on the same error. The
    /// error is what tells the body was cut; the rest of the stream is never read.
    ///
    /// The timer lives inline (no allocation per response), which makes this body `!Unpin`.
    /// `BodyExt::collect` does not mind; to read frame by frame, pin it on the stack:
    ///
    /// ```
    /// use http_body_util::{BodyExt, Full};
    /// use tower_reliability::timeout::TimeoutBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let body = TimeoutBody::new(Full::new(bytes::Bytes::from_static(b"data: hi\n\n")), std::time::Duration::from_secs(30));
    /// let mut body = std::pin::pin!(body);
    /// while let Some(frame) = body.frame().await {
    ///     let frame = frame.expect("a stall would surface here as TimeoutPhase::BodyIdle");
    ///     assert_eq!(frame.into_data().unwrap(), "data: hi\n\n");
    /// }
    /// # }
    /// ```
    pub struct TimeoutBody<B> {
        #[pin]
        inner: B,
        // Created the first time a read finds nothing ready.
        #[pin]
        sleep: Option<Sleep>,
        idle: Duration,
        armed: bool,
        // The idle error was returned: the body has ended.
        timed_out: bool,
    }
}

impl<B> TimeoutBody<B> {
    /// Wraps `inner` with an idle-read timeout.
    pub fn new(inner: B, idle: Duration) -> Self {
        TimeoutBody {
            inner,
            sleep: None,
            idle,
            armed: false,
            timed_out: false,
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the body, dropping the timeout.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if *this.timed_out {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.armed = false;
                return Poll::Ready(frame.map(|f| f.map_err(Error::from_inner)));
            }
            Poll::Pending => {}
        }
        if !*this.armed {
            let at = crate::time::after(Instant::now(), *this.idle);
            match this.sleep.as_mut().as_pin_mut() {
                Some(sleep) => sleep.reset(at),
                None => this.sleep.set(Some(tokio::time::sleep_until(at))),
            }
            *this.armed = true;
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            ready!(sleep.poll(cx));
        } else {
            return Poll::Pending;
        }
        crate::observe::timeout(TimeoutPhase::BodyIdle);
        *this.timed_out = true;
        Poll::Ready(Some(Err(Error::timeout(TimeoutPhase::BodyIdle))))
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

impl<B> std::fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutBody")
            .field("idle", &self.idle)
            .finish()
    }
}
