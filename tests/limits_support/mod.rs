//! The preset against the local server's per-model limits, driven open-loop: one helper for
//! the token and over-limit tests.
#![allow(dead_code)]

use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    fireworks,
    testing::{FireworksServer, ModelLimits, ServerConfig, DEFAULT_API_KEY},
    Workload,
};

use crate::common::{chat::chat_request, hyper_client};

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
    let svc = ServiceBuilder::new()
        .layer(fireworks::layer(Workload::Interactive))
        .service(hyper_client());
    let mut calls = Vec::new();
    for _ in 0..count {
        let mut svc = svc.clone();
        let request = chat_request(&server.chat_url(), DEFAULT_API_KEY, body.to_owned());
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
