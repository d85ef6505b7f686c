//! The preset against the local server's per-model limits, driven open-loop: one helper for
//! the token and over-limit tests.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    retry::ReplayBody,
    testing::{FireworksServer, ModelLimits, ServerConfig},
    Workload,
};

/// The local server with `limits` for every model, `tokens` generated per completion.
pub async fn server(limits: ModelLimits, tokens: usize) -> FireworksServer {
    FireworksServer::start(
        ServerConfig::default()
            .model_limits(limits)
            .tokens_per_completion(tokens)
            .token_interval(Duration::from_millis(1)),
    )
    .await
    .expect("server starts")
}

/// Sends `count` copies of the JSON `body`, one every `every`, through the preset over a
/// hyper-util client (each caller on its own task), and returns how many got a 200.
pub async fn offer(server: &FireworksServer, body: &str, count: usize, every: Duration) -> usize {
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .service(client);
    let mut calls = Vec::new();
    for _ in 0..count {
        let mut svc = svc.clone();
        let request = http::Request::post(server.chat_url())
            .header("authorization", "Bearer test-key")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a valid request");
        calls.push(tokio::spawn(async move {
            let response = svc.ready().await?.call(request).await?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            Ok::<_, tower_reliability::Error>(status)
        }));
        tokio::time::sleep(every).await;
    }
    let mut ok = 0;
    for call in calls {
        if matches!(call.await, Ok(Ok(StatusCode::OK))) {
            ok += 1;
        }
    }
    ok
}
