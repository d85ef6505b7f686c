//! A `reqwest::Client` as a tower `Service` over `http` types, so the layers can wrap it.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;
use tower_reliability::BoxError;

/// Sends `http::Request<B>` through a `reqwest::Client` and answers `http::Response<reqwest::Body>`.
///
/// The request body is handed to reqwest as a stream (`reqwest::Body::wrap`), the request's
/// method, URI, headers and extensions are kept (`reqwest::Request::try_from`), and reqwest's
/// own error is returned untouched so the layers classify it from its source chain.
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

impl ReqwestService {
    /// Wraps `client` (cheap to clone: reqwest shares its pool).
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestService { client }
    }
}

impl<B> Service<Request<B>> for ReqwestService
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest queues internally: always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = self.client.clone();
        let request = request.map(reqwest::Body::wrap);
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            Ok(Response::from(response))
        })
    }
}
