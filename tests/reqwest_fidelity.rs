//! The reqwest-middleware adapter keeps what reqwest and reqwest-middleware promise: the final
//! URL after a redirect, extensions written by inner middlewares, and timeouts that reqwest
//! users can recognise (`is_timeout()`) and reach as this crate's typed error. Real reqwest
//! clients against a hyper server on 127.0.0.1.
mod support;

use std::time::Duration;

use http::Extensions;
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use support::{handler, respond, serve, streaming};
use tower_reliability::{
    error::TimeoutPhase,
    fireworks,
    middleware::{reliability_error, ReliabilityMiddleware},
    TimeoutByWorkload, TimeoutProfile, Workload,
};

/// `/start` redirects to `/final`, which answers 200.
async fn redirecting_server() -> String {
    let (addr, _) = serve(handler(|_, request| async move {
        if request.uri().path() == "/start" {
            respond(302, &[("location", "/final")], "")
        } else {
            respond(200, &[], "final")
        }
    }))
    .await;
    format!("http://{addr}")
}

#[tokio::test]
async fn the_response_url_is_the_final_url_after_a_redirect() {
    let base = redirecting_server().await;
    let plain = reqwest::Client::new()
        .get(format!("{base}/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.url().path(), "/final", "plain reqwest");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ReliabilityMiddleware::new(Workload::Interactive))
        .build();
    let response = client.get(format!("{base}/start")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().path(), "/final", "through the adapter");
}

#[derive(Clone, Debug, PartialEq)]
struct Marker(&'static str);

/// Writes a marker into the shared extensions on the way back out.
struct Inner;

#[async_trait::async_trait]
impl Middleware for Inner {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = next.run(request, extensions).await;
        extensions.insert(Marker("from the inner middleware"));
        response
    }
}

/// Reads the marker after the rest of the chain ran.
struct Outer(std::sync::Arc<std::sync::Mutex<Option<Marker>>>);

#[async_trait::async_trait]
impl Middleware for Outer {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = next.run(request, extensions).await;
        *self.0.lock().unwrap() = extensions.get::<Marker>().cloned();
        response
    }
}

#[tokio::test]
async fn extensions_written_by_inner_middlewares_flow_back_out() {
    let base = redirecting_server().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Outer(seen.clone()))
        .with(ReliabilityMiddleware::new(Workload::Interactive))
        .with(Inner)
        .build();
    client.get(format!("{base}/final")).send().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Marker("from the inner middleware"))
    );
}

#[tokio::test]
async fn a_stalled_body_is_a_timeout_reqwest_users_recognise() {
    let (addr, _) = serve(handler(|_, _| async move {
        streaming(vec![(Duration::ZERO, "data: a\n\n")], true)
    }))
    .await;
    let timeouts = TimeoutByWorkload::new(Workload::Interactive).profile(
        Workload::Interactive,
        TimeoutProfile::new(Duration::from_secs(30)).with_idle_read(Duration::from_millis(200)),
    );
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ReliabilityMiddleware::from_layer(
            fireworks::layer(Workload::Interactive).timeouts(timeouts),
        ))
        .build();
    let response = client.get(format!("http://{addr}/")).send().await.unwrap();
    let error = response.bytes().await.unwrap_err();
    assert!(error.is_timeout(), "reqwest's own check: {error:?}");
    let ours = tower_reliability::middleware::find_reliability_error(&error)
        .expect("the typed error is reachable");
    assert_eq!(ours.timeout_phase(), Some(TimeoutPhase::BodyIdle));
    let wrapped = reqwest_middleware::Error::Reqwest(error);
    assert_eq!(
        reliability_error(&wrapped).and_then(|e| e.timeout_phase()),
        Some(TimeoutPhase::BodyIdle)
    );
}
