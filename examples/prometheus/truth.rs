//! The run's own counts, kept apart from the metrics: what the check compares Prometheus'
//! answers with.
//!
//! - [`Transport`]: a tower layer right above the HTTP client (below the whole preset) that
//!   counts every attempt handed to the client and how it ended there: a response, a connect
//!   failure (the server never saw it), another failure, or dropped in flight (an attempt
//!   timeout or the deadline cut it: the server may have it).
//! - [`GateLog`]: a `tracing` layer that keeps every gate wait (`waited_ms` of the gate's
//!   release events) and counts breaker trips.
//!
//! The server's side (requests that reached it, answers by status) comes from the in-process
//! server's own stats.

use std::{
    fmt::Debug,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use tower::{Layer, Service};
use tracing::{
    field::{Field, Visit},
    Event, Subscriber,
};

/// What reached the HTTP client, attempt by attempt.
#[derive(Debug, Default)]
pub struct TransportCounts {
    /// Attempts handed to the client.
    pub calls: AtomicU64,
    /// Attempts that got a response (any status).
    pub responses: AtomicU64,
    /// Attempts that failed to connect: the server never saw them.
    pub connect_errors: AtomicU64,
    /// Attempts that failed otherwise (reset, closed): the server may have seen them.
    pub other_errors: AtomicU64,
    /// Attempts dropped before the client answered (attempt timeout, deadline).
    pub dropped: AtomicU64,
}

impl TransportCounts {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Counts what reaches the inner client; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct Transport(pub Arc<TransportCounts>);

impl<S> Layer<S> for Transport {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counts: self.0.clone(),
        }
    }
}

/// The client, counted.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    counts: Arc<TransportCounts>,
}

/// Marks an attempt dropped unless it reached an outcome first.
struct InFlight {
    counts: Arc<TransportCounts>,
    done: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, Req, Res> Service<Req> for Counted<S>
where
    S: Service<Req, Response = Res, Error = hyper_util::client::legacy::Error>,
    S::Future: Send + 'static,
{
    type Response = Res;
    type Error = S::Error;
    type Future = BoxFuture<Result<Res, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let counts = self.counts.clone();
        counts.calls.fetch_add(1, Ordering::Relaxed);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut in_flight = InFlight {
                counts: counts.clone(),
                done: false,
            };
            let result = future.await;
            in_flight.done = true;
            let counter = match &result {
                Ok(_) => &counts.responses,
                Err(e) if e.is_connect() => &counts.connect_errors,
                Err(_) => &counts.other_errors,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            result
        })
    }
}

/// Gate waits and breaker trips, from the layers' `tracing` events.
#[derive(Debug, Default)]
pub struct GateEvents {
    /// Every wait at the gate, in milliseconds (rounded down, as the event carries them).
    pub waits_ms: Vec<u64>,
    /// Times the circuit breaker started holding requests.
    pub breaker_trips: u64,
}

/// A `tracing` layer that fills a shared [`GateEvents`].
#[derive(Debug, Clone, Default)]
pub struct GateLog(pub Arc<Mutex<GateEvents>>);

#[derive(Default)]
struct Fields {
    message: String,
    waited_ms: Option<u64>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "waited_ms" {
            self.waited_ms = Some(value);
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for GateLog {
    fn on_event(&self, event: &Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "tower_reliability" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Ok(mut log) = self.0.lock() else { return };
        match (fields.message.as_str(), fields.waited_ms) {
            ("released by the rate-limit gate", Some(waited)) => log.waits_ms.push(waited),
            ("circuit breaker holds new requests", _) => log.breaker_trips += 1,
            _ => {}
        }
    }
}
