//! The rig of the fault matrix: a `FireworksServer`, a real HTTP client (hyper-util's or
//! reqwest's) wrapped in the Fireworks preset, a log of the attempts the client really made,
//! and the helpers every row uses. The rows themselves are in [`rows`], so the hyper-util and
//! reqwest files run the very same assertions.
#![allow(dead_code)]

pub mod matrix;
pub mod reqwest_adapter;
pub mod rows;

use std::{
    future::Future,
    pin::{pin, Pin},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

pub use crate::common::{
    chat::{self, fast_server, start},
    closed_port, eventually, fast_backoff,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;
use tower::{util::BoxCloneSyncService, Layer, Service, ServiceExt};
use tower_reliability::{
    backoff::Jitter,
    context::RetryContext,
    fireworks::{self, FireworksLayer, FireworksService},
    retry::ReplayBody,
    testing::{FireworksServer, ServerConfig, Stats, DEFAULT_API_KEY},
    BoxError, Error, JitteredBackoff, TimeoutByWorkload, TimeoutProfile, Workload,
};

/// The total deadline of most rows: every attempt and wait until the response head.
pub const TOTAL: Duration = Duration::from_secs(4);
/// The idle-read timeout of most rows: the longest silence allowed inside a response body.
pub const IDLE: Duration = Duration::from_millis(300);

/// Every request body of the matrix (a `Full` or a slow stream), boxed so that one client type
/// serves every row.
///
/// The boxed types are newtypes on purpose: a `dyn Trait` (with its implicit `'static`) inside
/// the generic arguments of a future's state trips rustc's higher-ranked `Send` inference when
/// the future is awaited inside a spawned `async` block; types without lifetimes do not.
pub struct ReqBody(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send + Sync>>);

/// The client's response body, boxed the same way.
pub struct ResBody(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>);

macro_rules! delegate_body {
    ($ty:ident) => {
        impl Body for $ty {
            type Data = Bytes;
            type Error = BoxError;

            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                self.0.as_mut().poll_frame(cx)
            }

            fn is_end_stream(&self) -> bool {
                self.0.is_end_stream()
            }

            fn size_hint(&self) -> http_body::SizeHint {
                self.0.size_hint()
            }
        }
    };
}
delegate_body!(ReqBody);
delegate_body!(ResBody);

impl ReqBody {
    fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        ReqBody(Box::pin(body.map_err(Into::into)))
    }
}

impl ResBody {
    fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        ResBody(Box::pin(body.map_err(Into::into)))
    }
}

/// The real client under test, behind one type: hyper-util's or reqwest's, with the attempt log.
#[derive(Clone)]
pub struct Inner(BoxCloneSyncService<Request<ReplayBody<ReqBody>>, Response<ResBody>, BoxError>);

impl Service<Request<ReplayBody<ReqBody>>> for Inner {
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<ResBody>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReplayBody<ReqBody>>) -> Self::Future {
        self.0.call(request)
    }
}

/// The preset around the client.
pub type Stack = FireworksService<Inner>;
/// What a caller gets back from the preset.
pub type Reply = Response<fireworks::ResponseBody<ResBody>>;

/// Which real HTTP client carries the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `hyper_util::client::legacy::Client<HttpConnector, ReplayBody<_>>`.
    Hyper,
    /// `reqwest::Client` behind [`reqwest_adapter::ReqwestService`].
    Reqwest,
}

impl Transport {
    /// A fresh client (its own connection pool) that logs every attempt into `log`.
    pub fn client(self, log: AttemptLog) -> Inner {
        match self {
            Transport::Hyper => {
                let client: Client<HttpConnector, ReplayBody<ReqBody>> =
                    Client::builder(TokioExecutor::new()).build_http();
                erase(client, log)
            }
            Transport::Reqwest => {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .expect("a reqwest client");
                erase(reqwest_adapter::ReqwestService::new(client), log)
            }
        }
    }
}

/// Boxes a client's body and error types (nothing else changes: errors keep their source
/// chain, bodies their frames) and logs its attempts.
fn erase<S, B>(client: S, log: AttemptLog) -> Inner
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let client =
        ServiceExt::<Request<ReplayBody<ReqBody>>>::map_response(client, |r: Response<B>| {
            r.map(ResBody::new)
        });
    let client = ServiceExt::<Request<ReplayBody<ReqBody>>>::map_err(client, Into::into);
    Inner(BoxCloneSyncService::new(Recorder { inner: client, log }))
}

/// What the client really did, recorded around the real client: one [`Attempt`] per attempt
/// that left the preset, in the order they left.
#[derive(Debug, Clone, Default)]
pub struct AttemptLog {
    inner: Arc<Mutex<Vec<Attempt>>>,
}

/// One attempt handed to the real client.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When it was handed to the client.
    pub sent: Instant,
    /// Its number within its logical request (1 = first attempt), from its `RetryContext`.
    pub number: u32,
    /// When its response head arrived, and its status (`None` while pending or on error).
    pub answered: Option<(Instant, u16)>,
}

impl AttemptLog {
    /// Every attempt so far.
    pub fn all(&self) -> Vec<Attempt> {
        self.inner.lock().unwrap().clone()
    }

    /// When each attempt was handed to the client, in order.
    pub fn sent(&self) -> Vec<Instant> {
        self.all().iter().map(|a| a.sent).collect()
    }

    /// How many attempts were handed to the client.
    pub fn attempts(&self) -> usize {
        self.inner.lock().unwrap().len()
    }

    /// How many response heads arrived.
    pub fn answered(&self) -> usize {
        self.all().iter().filter(|a| a.answered.is_some()).count()
    }

    /// The time between attempt `i` and attempt `i + 1` (0-based).
    pub fn gap(&self, i: usize) -> Duration {
        let sent = self.sent();
        sent[i + 1] - sent[i]
    }
}

/// Logs each attempt (and its response head) around the real client.
#[derive(Debug, Clone)]
pub struct Recorder<S> {
    inner: S,
    log: AttemptLog,
}

impl<S, B, ResB> Service<Request<B>> for Recorder<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let number = request
            .extensions()
            .get::<RetryContext>()
            .map_or(1, RetryContext::attempt);
        let index = {
            let mut log = self.log.inner.lock().unwrap();
            log.push(Attempt {
                sent: Instant::now(),
                number,
                answered: None,
            });
            log.len() - 1
        };
        let future = self.inner.call(request);
        let log = self.log.clone();
        Box::pin(async move {
            let result = future.await;
            if let Ok(response) = &result {
                let status = response.status().as_u16();
                log.inner.lock().unwrap()[index].answered = Some((Instant::now(), status));
            }
            result
        })
    }
}

/// `JitteredBackoff` with full jitter on a 10 ms base: retries without a server hint are quick.
pub fn matrix_backoff() -> JitteredBackoff {
    fast_backoff(Jitter::Full, 10)
}

/// Interactive timeouts with this total deadline and idle-read timeout.
pub fn timeouts(total: Duration, idle: Duration) -> TimeoutByWorkload {
    TimeoutByWorkload::new(Workload::Interactive).profile(
        Workload::Interactive,
        TimeoutProfile::new(total).with_idle_read(idle),
    )
}

/// The preset with short timeouts and fast backoff; every other layer as shipped.
pub fn preset(total: Duration, idle: Duration) -> FireworksLayer {
    fireworks::layer(Workload::Interactive)
        .timeouts(timeouts(total, idle))
        .backoff(matrix_backoff())
}

/// The usual preset of the matrix: [`TOTAL`], [`IDLE`], fast backoff.
pub fn default_preset() -> FireworksLayer {
    preset(TOTAL, IDLE)
}

/// One server, one client, one preset around it.
pub struct Rig {
    pub server: FireworksServer,
    pub svc: Stack,
    pub log: AttemptLog,
    /// The total deadline of the preset's default workload.
    pub total: Duration,
}

impl Rig {
    /// Starts a server with `config` and wraps a fresh `transport` client in `layer`.
    pub async fn start(transport: Transport, config: ServerConfig, layer: FireworksLayer) -> Rig {
        let server = start(config).await;
        let log = AttemptLog::default();
        let total = layer
            .timeouts_layer()
            .profile_of(Workload::Interactive)
            .total();
        let svc = layer.layer(transport.client(log.clone()));
        Rig {
            server,
            svc,
            log,
            total,
        }
    }

    /// The server's counters.
    pub fn stats(&self) -> Stats {
        self.server.stats()
    }

    /// Sends one logical request through the preset; returns the outcome and how long it took.
    pub async fn send(&mut self, request: Request<ReqBody>) -> (Result<Reply, Error>, Duration) {
        send(&mut self.svc, request).await
    }

    /// A chat request with the right key and a valid body.
    pub fn chat(&self, stream: bool) -> Request<ReqBody> {
        chat_request(&self.server.chat_url(), DEFAULT_API_KEY, chat_json(stream))
    }
}

/// No call or body read of the matrix may take this long: a regression that hangs fails the
/// row instead of stalling the run.
pub const HANG: Duration = Duration::from_secs(30);

/// Sends one logical request through `svc`, timing it.
pub async fn send(svc: &mut Stack, request: Request<ReqBody>) -> (Result<Reply, Error>, Duration) {
    let start = Instant::now();
    let call = async {
        match svc.ready().await {
            Ok(svc) => svc.call(request).await,
            Err(e) => Err(e),
        }
    };
    let result = tokio::time::timeout(HANG, call)
        .await
        .unwrap_or_else(|_| panic!("the call hung for {HANG:?}"));
    (result, start.elapsed())
}

/// A valid chat completion request body.
pub fn chat_json(stream: bool) -> String {
    chat::chat_json("Say hello to the fault matrix", stream)
}

/// `POST url` with `Authorization: Bearer key` and a JSON body.
pub fn chat_request(url: &str, key: &str, body: impl Into<Bytes>) -> Request<ReqBody> {
    chat::chat_request(url, key, body).map(ReqBody::new)
}

/// `POST url` with this body (for `/echo-hash`).
pub fn post(url: &str, body: ReqBody) -> Request<ReqBody> {
    Request::post(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .expect("a valid request")
}

/// A body of these bytes, in one frame.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    ReqBody::new(Full::new(bytes.into()))
}

/// A body streamed chunk by chunk, each chunk after `gap` (so it is not ready when the
/// request is made, and must be read in the background before the first attempt).
pub fn slow_chunks(chunks: Vec<Bytes>, gap: Duration) -> ReqBody {
    let stream = futures::stream::unfold(chunks.into_iter(), move |mut rest| async move {
        let chunk = rest.next()?;
        tokio::time::sleep(gap).await;
        Some((Ok::<_, BoxError>(Frame::data(chunk)), rest))
    });
    ReqBody::new(StreamBody::new(stream))
}

/// `n` bytes of a pattern that never repeats on a short period (so a reordered or dropped
/// chunk changes the hash).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect()
}

/// How reading a response body ended.
#[derive(Debug)]
pub struct BodyRead {
    pub bytes: Vec<u8>,
    /// The error the body failed with, if it did.
    pub error: Option<Error>,
    /// When the last data frame arrived.
    pub last_data: Option<Instant>,
    /// When the body ended or failed.
    pub ended: Instant,
}

impl BodyRead {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.bytes))
        })
    }

    /// The `data:` payloads of a server-sent-event body.
    pub fn events(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.bytes)
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| event.strip_prefix("data: ").unwrap_or(event).to_owned())
            .collect()
    }
}

/// Reads a body frame by frame until it ends or fails.
pub async fn read_body<B>(body: B) -> BodyRead
where
    B: Body<Data = Bytes, Error = Error>,
{
    tokio::time::timeout(HANG, read_frames(body))
        .await
        .unwrap_or_else(|_| panic!("the body hung for {HANG:?}"))
}

async fn read_frames<B>(body: B) -> BodyRead
where
    B: Body<Data = Bytes, Error = Error>,
{
    let mut body = pin!(body);
    let mut bytes = Vec::new();
    let mut last_data = None;
    loop {
        match body.frame().await {
            None => {
                return BodyRead {
                    bytes,
                    error: None,
                    last_data,
                    ended: Instant::now(),
                }
            }
            Some(Err(error)) => {
                return BodyRead {
                    bytes,
                    error: Some(error),
                    last_data,
                    ended: Instant::now(),
                }
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    last_data = Some(Instant::now());
                }
            }
        }
    }
}

/// The largest number of instants in any window of `width` (the instants need not be sorted).
pub fn max_in_window(times: &[Instant], width: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}
