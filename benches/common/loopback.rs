//! Real HTTP over 127.0.0.1: a trivial hyper server, and a closed-loop load generator that
//! keeps a fixed number of requests in flight through a client stack.

use std::{
    convert::Infallible,
    fmt::Debug,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use super::chat::{chat_request, drain_body};

/// Starts an HTTP/1.1 server on 127.0.0.1 that answers every request `200 ok` (after reading
/// its body) and returns its address. It runs until the runtime stops.
pub async fn start_ok_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let _ = drain_body(request.into_body()).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// What one closed-loop run achieved.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Requests answered (any status) with their body read to the end.
    pub completed: u64,
    /// Requests that failed (transport errors, body errors).
    pub errors: u64,
    /// How long the run lasted.
    pub elapsed: Duration,
}

impl Throughput {
    /// Completed requests per second.
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Keeps `in_flight` requests outstanding through clones of `service` for `duration`: each of
/// `in_flight` tasks sends a request, reads the whole response, and sends the next.
pub async fn closed_loop<S, ResB>(
    service: S,
    uri: Uri,
    in_flight: usize,
    duration: Duration,
) -> Throughput
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug + Send,
    ResB: Body + Send,
    ResB::Data: Send,
    ResB::Error: Debug,
{
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + duration;
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let mut service = service.clone();
            let (uri, completed, errors) = (uri.clone(), completed.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < stop {
                    let outcome = match service.ready().await {
                        Ok(ready) => match ready.call(chat_request(&uri)).await {
                            Ok(response) => drain_body(response.into_body()).await.is_ok(),
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    let counter = if outcome { &completed } else { &errors };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    Throughput {
        completed: completed.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}
