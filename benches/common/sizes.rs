//! What the preset moves around per request: the size of the service, response future,
//! request and response body at each of its layers, innermost first, over the benchmark's
//! inner service. Every `call` returns its future by value and every enclosing future stores
//! it, so these bytes are copied (often more than once) on every request.

use std::mem::size_of;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, Service};
use tower_reliability::{
    fireworks, retry::ReplayBody, timeout::AttemptTimeout, JitteredBackoff, RateLimitAware,
    RetryOnStatus, TimeoutByWorkload, Workload,
};

use super::in_process::answer;

/// One row: the sizes at one layer `S` serving `Request<ReqB>`.
fn row<S, ReqB, ResB>(name: &str, _service: &S)
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    println!(
        "| {name} | {} | {} | {} | {} |",
        size_of::<S>(),
        size_of::<S::Future>(),
        size_of::<Request<ReqB>>(),
        size_of::<ResB>()
    );
}

/// Prints the table (markdown), for the preset with `workload` as its default.
pub fn print_preset_sizes(workload: Workload) {
    type Replayed = ReplayBody<Full<Bytes>>;
    println!(
        "| layer (innermost first) | service B | response future B | request B | response body B |"
    );
    println!("|---|---:|---:|---:|---:|");
    let inner = service_fn(answer::<Replayed>);
    row("inner service (`service_fn`)", &inner);
    let attempt = AttemptTimeout::by_workload(workload).layer(inner);
    row("AttemptTimeout", &attempt);
    let gate = RateLimitAware::new().layer(attempt);
    row("RateLimitAware", &gate);
    let backoff = JitteredBackoff::default().layer(gate);
    row("JitteredBackoff", &backoff);
    let retry = RetryOnStatus::default().layer(backoff);
    row::<_, Full<Bytes>, _>("RetryOnStatus", &retry);
    let timeout = TimeoutByWorkload::new(workload).layer(retry);
    row::<_, Full<Bytes>, _>("TimeoutByWorkload", &timeout);
    let preset = fireworks::layer(workload).layer(service_fn(answer::<Replayed>));
    row::<_, Full<Bytes>, _>("= fireworks::layer", &preset);
}
