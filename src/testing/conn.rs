//! Per-connection control: lets a handler or a body close its own TCP connection, either
//! gracefully (FIN, so bytes already sent still arrive) or abortively (RST).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Shared by a connection's task, its requests (as a request extension) and its socket.
#[derive(Debug, Default)]
pub(crate) struct ConnControl {
    kill: Notify,
    abortive: AtomicBool,
}

impl ConnControl {
    /// Asks the connection task to drop the connection; `abortive` makes the close a reset.
    pub(crate) fn close(&self, abortive: bool) {
        if abortive {
            self.abortive.store(true, Ordering::SeqCst);
        }
        // `notify_one` stores a permit, so the request is not lost if nobody waits yet.
        self.kill.notify_one();
    }

    /// Resolves once [`close`](Self::close) has been called.
    pub(crate) async fn closed(&self) {
        self.kill.notified().await;
    }

    fn is_abortive(&self) -> bool {
        self.abortive.load(Ordering::SeqCst)
    }
}

/// The accepted socket; on drop it resets the connection if that was asked for.
#[derive(Debug)]
pub(crate) struct ConnStream {
    inner: TcpStream,
    control: Arc<ConnControl>,
}

impl ConnStream {
    pub(crate) fn new(inner: TcpStream, control: Arc<ConnControl>) -> Self {
        Self { inner, control }
    }
}

impl Drop for ConnStream {
    fn drop(&mut self) {
        if self.control.is_abortive() {
            // A zero linger makes the close send RST; unlike a non-zero linger it never blocks
            // (`set_zero_linger` says the same but needs tokio 1.50).
            #[allow(deprecated)]
            let _ = self.inner.set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ConnStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
