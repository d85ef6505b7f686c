//! [`FireworksServer`]: starting, steering, observing and stopping the server.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::config::{RateLimitConfig, ServerConfig};
use super::conn::{ConnControl, ConnStream};
use super::faults::{Fault, FaultMix};
use super::model_limits::ModelLimits;
use super::routes::{dispatch, router, CHAT_PATH, ECHO_PATH, MODELS_PATH};
use super::state::{lock, Shared};
use super::stats::Stats;

/// An in-process Fireworks-compatible HTTP server on `127.0.0.1` that injects faults on demand.
///
/// The handle is cheap to clone; every clone steers the same server. The server stops when
/// [`shutdown`](Self::shutdown) is awaited or, abruptly, when the last clone is dropped.
#[derive(Clone)]
pub struct FireworksServer {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        // Aborting the accept loop drops its set of connection tasks, which aborts them too.
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
    }
}

impl fmt::Debug for FireworksServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FireworksServer")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl FireworksServer {
    /// Binds `127.0.0.1` on a port the OS chooses and starts serving in the background.
    ///
    /// Must be called within a Tokio runtime with the time driver enabled (as with
    /// `#[tokio::main]` and `#[tokio::test]`). Fails only if the listener cannot be bound.
    pub async fn start(config: ServerConfig) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopping) = watch::channel(false);
        let grace = config.shutdown_grace;
        let shared = Arc::new(Shared::new(config, stopping.clone()));
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopping, grace));
        Ok(Self {
            inner: Arc::new(Inner {
                addr,
                shared,
                shutdown,
                accept: Mutex::new(Some(accept)),
            }),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The URL of `POST /inference/v1/chat/completions`.
    pub fn chat_url(&self) -> String {
        format!("{}{CHAT_PATH}", self.base_url())
    }

    /// The URL of `GET /inference/v1/models`.
    pub fn models_url(&self) -> String {
        format!("{}{MODELS_PATH}", self.base_url())
    }

    /// The URL of `POST /echo-hash`.
    pub fn echo_url(&self) -> String {
        format!("{}{ECHO_PATH}", self.base_url())
    }

    /// The URL of `POST /v1/accounts/{account}/batchJobs`; a job's status is at
    /// `{base_url}/v1/{name}`, with the `name` its creation answered.
    pub fn batch_jobs_url(&self, account: &str) -> String {
        format!("{}/v1/accounts/{account}/batchJobs", self.base_url())
    }

    /// Sets how long batch jobs created from now on take to complete (default 2 s); jobs
    /// already created keep theirs.
    pub fn set_job_duration(&self, duration: Duration) {
        self.inner.shared.jobs.set_duration(duration);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats.snapshot()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.inner.shared.stats.reset();
    }

    /// Queues faults: each chat, `/echo-hash` or batch job request takes the next one (first
    /// in, first out). While the queue is empty, requests are served normally unless the
    /// [`FaultMix`] draws a fault.
    pub fn push_script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.shared.push_script(faults);
    }

    /// Empties the fault queue.
    pub fn clear_script(&self) {
        self.inner.shared.clear_script();
    }

    /// How many scripted faults are still queued.
    pub fn script_len(&self) -> usize {
        self.inner.shared.script_len()
    }

    /// Sets (or, with `None`, removes) the rate limit; a new limit starts with a full bucket.
    pub fn set_rate_limit(&self, limit: impl Into<Option<RateLimitConfig>>) {
        self.inner.shared.set_rate_limit(limit.into());
    }

    /// Sets (or, with `None`, removes) the limits of every model without limits of its own, as
    /// [`ServerConfig::model_limits`] does; the models concerned start again with full buckets.
    pub fn set_model_limits(&self, limits: impl Into<Option<ModelLimits>>) {
        self.inner.shared.limits.set_default(limits.into());
    }

    /// Gives one model its own limits (or, with `None`, returns it to the limits of every
    /// model), as [`ServerConfig::limits_for`] does; it starts again with full buckets.
    pub fn set_limits_for(&self, model: &str, limits: impl Into<Option<ModelLimits>>) {
        self.inner.shared.limits.set_for(model, limits.into());
    }

    /// Replaces the random fault mix (and reseeds it).
    pub fn set_fault_mix(&self, mix: FaultMix) {
        self.inner.shared.set_fault_mix(mix);
    }

    /// Makes every request, on any path, answer this status (with a Fireworks-shaped error
    /// body) until cleared with `None`. Outage answers consume no scripted fault.
    pub fn set_outage(&self, status: impl Into<Option<u16>>) {
        self.inner.shared.set_outage(status.into());
    }

    /// Stops the server gracefully: no new connections are accepted, idle connections close,
    /// stalled responses are cut off, and responses in flight get the configured grace (one
    /// second by default) to finish before their connections are closed.
    ///
    /// Returns at once if the server was already shut down.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let accept = lock(&self.inner.accept).take();
        if let Some(accept) = accept {
            let _ = accept.await;
        }
    }
}

/// Accepts connections until shutdown, then lets them drain for `grace`.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
    grace: Duration,
) {
    let router = router(Arc::clone(&shared));
    let connection_stopping = stopping.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    shared.stats.connection_accepted();
                    connections.spawn(serve_connection(
                        stream,
                        Arc::clone(&shared),
                        router.clone(),
                        connection_stopping.clone(),
                    ));
                }
                // Such as running out of file descriptors: wait a little instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(grace, drain).await;
    // Dropping `connections` aborts the ones still open.
}

/// Serves one connection (HTTP/1.1, or HTTP/2 with prior knowledge) until it ends, a fault
/// closes it, or shutdown has drained it.
async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let control = Arc::new(ConnControl::default());
    let io = TokioIo::new(ConnStream::new(stream, Arc::clone(&control)));
    let service = {
        let control = Arc::clone(&control);
        service_fn(move |request: Request<Incoming>| {
            let response = dispatch(
                Arc::clone(&shared),
                router.clone(),
                Arc::clone(&control),
                request,
            );
            async move { Ok::<_, Infallible>(response.await) }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = control.closed() => return,
            () = stopped(&mut stopping), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves once shutdown has begun (or the server handle is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}
