//! Per-model scopes: providers limit per account *and model*, so a 429 for one model holds
//! that model's requests and no other's; the circuit breaker stays the upstream's.
mod support;

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use support::call;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_reliability::{
    fireworks,
    rate_limit::{LocalStore, Scope},
    retry::ReplayBody,
    RateLimitAware, Workload,
};

fn chat(model: &str) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],"model":"{model}"}}"#);
    Request::post("http://x/v1/chat/completions")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Answers 429 (`Retry-After: 5`) to the first request for `model-a`, 200 to everything else.
fn upstream(
    a_throttled: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<ReplayBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    tower::service_fn(move |request: Request<ReplayBody<Full<Bytes>>>| {
        let a_throttled = a_throttled.clone();
        async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let is_a = body.windows(7).any(|w| w == b"model-a");
            if is_a && a_throttled.fetch_add(1, Ordering::SeqCst) == 0 {
                return Ok(Response::builder()
                    .status(429)
                    .header("retry-after", "5")
                    .body(Full::new(Bytes::new()))
                    .unwrap());
            }
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_429_for_one_model_holds_that_model_only() {
    let store = Arc::new(LocalStore::default());
    let gate = RateLimitAware::with_store(store.clone());
    let a_seen = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive).rate_limit(gate))
        .service(upstream(a_seen.clone()));
    // Model A: 429 with a 5 s hint, retried after it.
    let start = Instant::now();
    let mut a = svc.clone();
    let a_done = tokio::spawn(async move {
        let response = call(&mut a, chat("model-a")).await.unwrap();
        assert_eq!(response.status(), 200);
        Instant::now()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The gate holds model A now, not model B.
    assert!(store
        .closed_until_in(&Scope::named("model-a"), Instant::now())
        .is_some());
    assert_eq!(
        store.closed_until_in(&Scope::named("model-b"), Instant::now()),
        None
    );
    let b_start = Instant::now();
    let response = call(&mut svc, chat("model-b")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(b_start.elapsed(), Duration::ZERO, "model B is not held");
    // A new request for model A waits for the hint.
    let a2_start = Instant::now();
    let response = call(&mut svc, chat("model-a")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        a2_start.elapsed() >= Duration::from_millis(4800),
        "{:?}",
        a2_start.elapsed()
    );
    let a_done = a_done.await.unwrap();
    assert!(a_done - start >= Duration::from_secs(5));
    assert_eq!(a_seen.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_scope_extension_overrides_the_model() {
    let store = Arc::new(LocalStore::default());
    let gate = RateLimitAware::with_store(store.clone());
    let svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive).rate_limit(gate))
        .service(upstream(Arc::new(AtomicUsize::new(0))));
    // Model A's 429 lands in the tenant's scope.
    let mut request = chat("model-a");
    request.extensions_mut().insert(Scope::named("tenant-1"));
    let mut first = svc.clone();
    let held = tokio::spawn(async move { call(&mut first, request).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let now = Instant::now();
    assert!(store
        .closed_until_in(&Scope::named("tenant-1"), now)
        .is_some());
    assert_eq!(store.closed_until_in(&Scope::named("model-a"), now), None);
    assert_eq!(store.active_scopes(), vec![Scope::named("tenant-1")]);
    assert_eq!(held.await.unwrap().unwrap(), 200);
}
