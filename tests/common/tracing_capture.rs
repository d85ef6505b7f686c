//! Every tracing event of a test binary, captured at TRACE for every target into one buffer:
//! shared by the tests that assert what the logs do (and do not) contain.
#![allow(dead_code)]

use std::{
    io,
    sync::{Arc, Mutex, OnceLock},
};

/// Every tracing event of this test binary, at TRACE, for every target.
///
/// One global subscriber, installed before any event is emitted: with only thread-scoped
/// subscribers (`tracing::subscriber::with_default`), a test running in parallel on another
/// thread can register a callsite while no subscriber is interested in it, and its cached
/// interest then drops that event here too.
pub fn global_capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_target(true)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        capture
    })
}

/// A `MakeWriter` appending every line of a `fmt` subscriber to one buffer.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}
