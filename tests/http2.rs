//! HTTP/2 streams the server refused before processing them (RFC 9113 §8.7: `REFUSED_STREAM`,
//! and streams above a graceful `GOAWAY`'s last stream id) never reached the application: they
//! are the safest retry there is, classified like a connect failure. Tested against a real
//! HTTP/2 server (the `h2` crate) on 127.0.0.1 through a real hyper-util HTTP/2 client.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use h2::Reason;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_reliability::{
    backoff::Jitter, retry::ReplayBody, Error, ErrorKind, JitteredBackoff, RetryOnStatus,
    RetryReport,
};

/// What the server does with the n-th stream (from 0) it is asked for.
#[derive(Clone, Copy)]
enum Answer {
    Refuse,
    Ok,
}

/// An HTTP/2 (prior knowledge, h2c) server answering streams by `script`, then 200.
async fn serve(script: Vec<Answer>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let script = script.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = conn.accept().await {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    match script.get(n).copied().unwrap_or(Answer::Ok) {
                        Answer::Refuse => respond.send_reset(Reason::REFUSED_STREAM),
                        Answer::Ok => {
                            let response = http::Response::new(());
                            if let Ok(mut send) = respond.send_response(response, false) {
                                let _ = send.send_data(Bytes::from_static(b"ok"), true);
                            }
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/"), streams)
}

fn h2_client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

#[tokio::test]
async fn a_refused_stream_is_classified_as_never_processed() {
    let (url, _) = serve(vec![Answer::Refuse]).await;
    let client = h2_client::<Full<Bytes>>();
    let request = http::Request::post(&url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let error = client.request(request).await.unwrap_err();
    let error = Error::from_inner(error);
    assert_eq!(error.kind(), ErrorKind::Connect, "{error:?}");
    assert!(error.is_connect());
}

#[tokio::test]
async fn a_refused_stream_is_retried() {
    let (url, streams) = serve(vec![Answer::Refuse, Answer::Refuse]).await;
    let mut svc = ServiceBuilder::new()
        .layer(RetryOnStatus::default())
        .layer(
            JitteredBackoff::default()
                .jitter(Jitter::None)
                .base(Duration::from_millis(1)),
        )
        .service(h2_client::<ReplayBody<Full<Bytes>>>());
    let request = http::Request::post(&url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let report = response.extensions().get::<RetryReport>().copied().unwrap();
    assert_eq!(report.attempts, 3);
    assert_eq!(streams.load(Ordering::SeqCst), 3);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
}
