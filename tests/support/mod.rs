//! Shared test doubles: a scripted in-process service (for paused-time tests) and a tiny hyper
//! server on 127.0.0.1 (for real-wire tests).
#![allow(dead_code)]

pub mod gate;

use std::{
    collections::VecDeque,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use tokio::time::Instant;
use tower::Service;
use tower_reliability::{
    context::{Deadline, RetryContext},
    BoxError,
};

pub type TestBody = BoxBody<Bytes, BoxError>;

/// What the mock does for one call.
#[derive(Clone, Debug)]
pub enum Step {
    /// Answer with this status and body.
    Status(u16, &'static str),
    /// Answer with this status, headers and body.
    With(u16, Vec<(&'static str, String)>, &'static str),
    /// Fail with this I/O error kind (ConnectionRefused = never reached the server).
    Fail(std::io::ErrorKind),
    /// Wait, then do the next step.
    Delay(Duration, Box<Step>),
    /// 200 with a body of frames, each after its delay; `stall` then never ends the body.
    Stream(Vec<(Duration, &'static str)>, bool),
    /// Like `Stream`, with another status.
    StreamStatus(u16, Vec<(Duration, &'static str)>, bool),
    /// This status and headers, a body that yields this prefix and then breaks.
    Broken(u16, Vec<(&'static str, String)>, &'static str),
}

impl Step {
    pub fn ok() -> Step {
        Step::Status(200, "ok")
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub body: Bytes,
    pub attempt: Option<u32>,
    pub deadline: Option<Deadline>,
    pub headers: http::HeaderMap,
}

#[derive(Debug)]
struct MockState {
    script: VecDeque<Step>,
    otherwise: Step,
    calls: Vec<Call>,
}

/// A scripted service: pops a [`Step`] per call, `otherwise` when the script is empty.
#[derive(Clone, Debug)]
pub struct Mock {
    state: Arc<Mutex<MockState>>,
}

impl Mock {
    pub fn new(script: impl IntoIterator<Item = Step>, otherwise: Step) -> Self {
        Mock {
            state: Arc::new(Mutex::new(MockState {
                script: script.into_iter().collect(),
                otherwise,
                calls: Vec::new(),
            })),
        }
    }

    pub fn always(step: Step) -> Self {
        Mock::new([], step)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().calls.len()
    }

    pub fn set_otherwise(&self, step: Step) {
        self.state.lock().unwrap().otherwise = step;
    }
}

fn full(s: &'static str) -> TestBody {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn perform(
    step: Step,
) -> Pin<Box<dyn Future<Output = Result<Response<TestBody>, BoxError>> + Send>> {
    Box::pin(async move {
        match step {
            Step::Status(code, body) => Ok(status(code, full(body))),
            Step::With(code, headers, body) => {
                let mut response = status(code, full(body));
                for (name, value) in headers {
                    response.headers_mut().append(name, value.parse().unwrap());
                }
                Ok(response)
            }
            Step::Fail(kind) => {
                Err(Box::new(std::io::Error::new(kind, "mock failure")) as BoxError)
            }
            Step::Delay(wait, next) => {
                tokio::time::sleep(wait).await;
                perform(*next).await
            }
            Step::Broken(code, headers, prefix) => {
                let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                    Ok(Frame::data(Bytes::from_static(prefix.as_bytes()))),
                    Err("connection reset mid-body".into()),
                ];
                let body = StreamBody::new(futures::stream::iter(frames)).boxed();
                let mut response = status(code, body);
                for (name, value) in headers {
                    response.headers_mut().append(name, value.parse().unwrap());
                }
                Ok(response)
            }
            Step::Stream(frames, stall) => perform(Step::StreamStatus(200, frames, stall)).await,
            Step::StreamStatus(code, frames, stall) => {
                let stream = futures::stream::unfold(
                    (frames.into_iter(), stall),
                    |(mut it, stall)| async move {
                        match it.next() {
                            Some((wait, chunk)) => {
                                tokio::time::sleep(wait).await;
                                Some((
                                    Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))),
                                    (it, stall),
                                ))
                            }
                            None if stall => std::future::pending().await,
                            None => None,
                        }
                    },
                );
                Ok(status(code, StreamBody::new(stream).boxed()))
            }
        }
    })
}

fn status(code: u16, body: TestBody) -> Response<TestBody> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

impl<B> Service<Request<B>> for Mock
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<TestBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<TestBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = self.state.clone();
        let at = Instant::now();
        let attempt = request
            .extensions()
            .get::<RetryContext>()
            .map(|c| c.attempt());
        let deadline = Deadline::of(&request);
        let headers = request.headers().clone();
        Box::pin(async move {
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(Into::into)?
                .to_bytes();
            let step = {
                let mut state = state.lock().unwrap();
                state.calls.push(Call {
                    at,
                    body,
                    attempt,
                    deadline,
                    headers,
                });
                let otherwise = state.otherwise.clone();
                state.script.pop_front().unwrap_or(otherwise)
            };
            perform(step).await
        })
    }
}

/// Request helper: a POST with a JSON-ish body.
pub fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("http://test.invalid/inference/v1/chat/completions")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// Reads a whole response body.
pub async fn body_bytes<B>(response: Response<B>) -> Result<Bytes, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes())
}

// ---- A real hyper server on 127.0.0.1 -------------------------------------------------------

pub type Handler = Arc<
    dyn Fn(usize, Request<Bytes>) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>
        + Send
        + Sync,
>;

/// A hyper HTTP/1 server on 127.0.0.1 calling `handler(n, request)` for the n-th request (from
/// 0). Returns its address and a counter of requests received.
pub async fn serve(handler: Handler) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use hyper::{server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(handler(n, Request::from_parts(parts, body)).await)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, counter)
}

pub fn respond(
    code: u16,
    headers: &[(&'static str, &str)],
    body: &'static str,
) -> Response<TestBody> {
    let mut response = status(code, full(body));
    for (name, value) in headers {
        response.headers_mut().append(*name, value.parse().unwrap());
    }
    response
}

pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(usize, Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    Arc::new(move |n, req| Box::pin(f(n, req)))
}

pub fn streaming(frames: Vec<(Duration, &'static str)>, stall: bool) -> Response<TestBody> {
    let stream =
        futures::stream::unfold((frames.into_iter(), stall), |(mut it, stall)| async move {
            match it.next() {
                Some((wait, chunk)) => {
                    tokio::time::sleep(wait).await;
                    Some((
                        Ok::<_, BoxError>(Frame::data(Bytes::from_static(chunk.as_bytes()))),
                        (it, stall),
                    ))
                }
                None if stall => std::future::pending().await,
                None => None,
            }
        });
    status(200, StreamBody::new(stream).boxed())
}

/// Readies the service and calls it (infers the request type, unlike `svc.ready()`).
pub async fn call<S, B>(svc: &mut S, request: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(request).await
}
