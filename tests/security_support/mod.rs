//! Helpers of `tests/security.rs`: a recording wrapper around the client, bodies that count the
//! bytes they produce and consume, the hyper-util stack, and a check that a secret is absent.

#![allow(dead_code)] // each helper is used by some tests only

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use tower::{Service, ServiceExt};
use tower_reliability::{
    backoff::Jitter,
    fireworks,
    rate_limit::{GateConfig, LocalStore},
    timeout::AttemptTimeout,
    Error, JitteredBackoff, RateLimitAware, TimeoutByWorkload, TimeoutProfile, Workload,
};

use crate::common::{fast_backoff, hyper_client, HyperClient};

/// The preset over a recording client.
pub type Stack = fireworks::FireworksService<Recorder<HyperClient>>;
/// What the stack answers.
pub type Reply = http::Response<fireworks::ResponseBody<hyper::body::Incoming>>;

/// One request as the client under the preset received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: Uri,
    pub authorization: Option<HeaderValue>,
}

/// Records every request handed to the inner service (every attempt), then forwards it.
#[derive(Clone)]
pub struct Recorder<S> {
    inner: S,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl<S> Recorder<S> {
    pub fn new(inner: S) -> (Self, Arc<Mutex<Vec<Seen>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            Recorder {
                inner,
                log: log.clone(),
            },
            log,
        )
    }
}

impl<S, B> Service<Request<B>> for Recorder<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.log.lock().unwrap().push(Seen {
            method: request.method().clone(),
            uri: request.uri().clone(),
            authorization: request.headers().get(http::header::AUTHORIZATION).cloned(),
        });
        self.inner.call(request)
    }
}

/// A gate that holds at most `max_hold`, reopens fast without a hint, and paces tightly.
pub fn gate(max_hold: Duration) -> Arc<LocalStore> {
    Arc::new(LocalStore::new(
        GateConfig::default()
            .with_max_hold(max_hold)
            .with_release_spacing(Duration::from_millis(1))
            .with_no_hint_base(Duration::from_millis(20))
            .with_no_hint_max(Duration::from_millis(100))
            .with_probe_base(Duration::from_millis(20))
            .with_probe_max(Duration::from_millis(40)),
    ))
}

/// The preset with a `total` deadline, a 1 s per-attempt limit, fast seeded backoff
/// (`U(0, 5 ms * 2^n)`), the default `max_server_wait` (120 s) unless `backoff` replaces it, and
/// the given gate.
pub fn preset(
    total: Duration,
    store: Arc<LocalStore>,
    backoff: Option<JitteredBackoff>,
) -> fireworks::FireworksLayer {
    fireworks::layer(Workload::Interactive)
        .timeouts(TimeoutByWorkload::new(Workload::Interactive).profile(
            Workload::Interactive,
            TimeoutProfile::new(total).with_idle_read(Duration::from_secs(2)),
        ))
        .backoff(backoff.unwrap_or_else(seeded_backoff))
        .rate_limit(RateLimitAware::with_store(store))
        .attempt_timeout(AttemptTimeout::fixed(Duration::from_secs(1)))
}

/// Waits of `U(0, 5 ms * 2^n)`, from seed 7 so every run makes the same draws.
pub fn seeded_backoff() -> JitteredBackoff {
    fast_backoff(Jitter::Full, 5).seed(7)
}

/// The preset over a recording hyper-util client, and the recording.
pub fn stack(layer: &fireworks::FireworksLayer) -> (Stack, Arc<Mutex<Vec<Seen>>>) {
    use tower::Layer;
    let (recorder, log) = Recorder::new(hyper_client());
    (layer.layer(recorder), log)
}

pub async fn send(svc: &mut Stack, request: Request<Full<Bytes>>) -> Result<Reply, Error> {
    svc.ready().await?.call(request).await
}

/// A request for `/echo-hash`, which needs no key.
pub fn echo(url: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"hello\":\"world\"}")))
        .expect("request")
}

// ---------------------------------------------------------------------------------------------
// Counting bodies
// ---------------------------------------------------------------------------------------------

/// Shared byte counters: what a [`CountingBody`] produced, and what its reader consumed.
#[derive(Debug, Default)]
pub struct Meter {
    pub produced: AtomicU64,
    pub consumed: AtomicU64,
    /// The most bytes produced but not yet consumed, sampled each time the reader takes a frame
    /// (the frame included): an upper bound on what the layers between held in memory.
    pub peak_held: AtomicU64,
    pub polls: AtomicUsize,
}

impl Meter {
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::SeqCst)
    }

    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::SeqCst)
    }

    pub fn peak_held(&self) -> u64 {
        self.peak_held.load(Ordering::SeqCst)
    }

    /// The reader took a frame of `n` bytes.
    pub fn take(&self, n: u64) {
        let held = self.produced() - self.consumed();
        self.peak_held.fetch_max(held, Ordering::SeqCst);
        self.consumed.fetch_add(n, Ordering::SeqCst);
    }
}

/// A streamed body of `len` bytes in `chunk`-sized frames, made on demand (every frame is a
/// slice of one shared buffer, so the body itself holds one chunk), with no size hint. With
/// `pending_every_other`, every other poll returns `Pending` first (and wakes), like a socket.
pub struct CountingBody {
    chunk: Bytes,
    remaining: u64,
    meter: Arc<Meter>,
    pending_every_other: bool,
    flip: bool,
}

impl CountingBody {
    pub fn new(len: u64, chunk: usize, meter: Arc<Meter>, pending_every_other: bool) -> Self {
        CountingBody {
            chunk: Bytes::from(vec![b'x'; chunk]),
            remaining: len,
            meter,
            pending_every_other,
            flip: false,
        }
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.meter.polls.fetch_add(1, Ordering::Relaxed);
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if self.pending_every_other {
            self.flip = !self.flip;
            if self.flip {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let n = (self.chunk.len() as u64).min(self.remaining);
        self.remaining -= n;
        self.meter.produced.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Reads a body to the end frame by frame, telling `meter` about each frame; returns the length.
pub async fn drain<B>(body: B, meter: &Meter) -> Result<u64, B::Error>
where
    B: Body,
    B::Data: bytes::Buf,
{
    use bytes::Buf;
    use http_body_util::BodyExt;
    let mut body = std::pin::pin!(body);
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let n = data.remaining() as u64;
            meter.take(n);
            total += n;
        }
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// What the logs must not contain
// ---------------------------------------------------------------------------------------------

/// Panics with context if `needle` occurs in `haystack`.
#[track_caller]
pub fn assert_absent(what: &str, haystack: &str, needle: &str) {
    if let Some(at) = haystack.find(needle) {
        let from = haystack[..at]
            .char_indices()
            .rev()
            .nth(200)
            .map_or(0, |(i, _)| i);
        let to = (at + 200).min(haystack.len());
        panic!(
            "{what}: {needle:?} leaked at byte {at}:\n...{}...",
            haystack.get(from..to).unwrap_or(haystack)
        );
    }
}
