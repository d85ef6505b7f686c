//! A ready hyper-util client for the Fireworks API (feature `rustls`).
//!
//! Some of the guide's timeouts cannot be enforced by a tower layer: the connect timeout lives
//! in the connector. This module builds the connector with the workload's
//! [`TimeoutProfile::connect`], HTTPS via rustls (ring, the webpki root store, so no system
//! certificate store is needed), HTTP/1.1 and HTTP/2, TCP keep-alive and an idle-connection
//! pool, and puts the [`fireworks`](mod@crate::fireworks) preset on top.
//!
//! What hyper-util cannot do, and how the stack covers it:
//! - **write** (30 s): hyper-util has no send timeout; the request's deadline
//!   ([`TimeoutByWorkload`](crate::TimeoutByWorkload)) bounds the whole exchange instead.
//! - **pool** (10 s): hyper-util never waits for a pool slot (it opens a new connection), so
//!   there is nothing to time out; idle connections are dropped after 90 s.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{Service, ServiceExt};
//! use tower_reliability::{client, fireworks, Workload};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut service = client::fireworks::<Full<Bytes>>(Workload::Interactive);
//! let request = http::Request::post(format!("{}/chat/completions", fireworks::BASE_URL))
//!     .header(http::header::AUTHORIZATION, client::bearer("fw-...")?)
//!     .header(http::header::CONTENT_TYPE, "application/json")
//!     .body(Full::new(Bytes::from_static(br#"{"model":"...","messages":[]}"#)))?;
//! let response = service.ready().await?.call(request).await?;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use http::HeaderValue;
use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use tower_layer::Layer;

use crate::{
    fireworks::{self, FireworksService},
    retry::ReplayBody,
    workload::{TimeoutProfile, Workload},
};

/// The HTTPS connector type.
pub type Connector = HttpsConnector<HttpConnector>;

/// A hyper-util client over [`Connector`].
pub type HttpsClient<B> = Client<Connector, B>;

/// The preset over an [`HttpsClient`] (the request body is the caller's `B`).
pub type FireworksClient<B> = FireworksService<HttpsClient<ReplayBody<B>>>;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// An HTTPS (and plain HTTP, for local servers) connector with the profile's connect timeout,
/// `TCP_NODELAY` and TCP keep-alive.
pub fn connector(profile: &TimeoutProfile) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(profile.connect));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// A hyper-util client with [`connector`] and an idle pool of [`POOL_IDLE_TIMEOUT`].
pub fn https_client<B>(profile: &TimeoutProfile) -> HttpsClient<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector(profile))
}

/// The [`fireworks`](mod@crate::fireworks) preset for `workload` over an [`https_client`] built with
/// that workload's profile.
pub fn fireworks<B>(workload: Workload) -> FireworksClient<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
{
    let profile = workload.profile();
    fireworks::layer(workload).layer(https_client::<ReplayBody<B>>(&profile))
}

/// An `Authorization: Bearer <key>` value marked *sensitive*, so that `http`'s `Debug` output
/// (and anything that logs headers through it) shows `Sensitive` instead of the key.
pub fn bearer(api_key: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {api_key}"))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_never_show_in_debug() {
        let value = bearer("fw-very-secret").unwrap();
        assert!(!format!("{value:?}").contains("very-secret"));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        assert!(!format!("{headers:?}").contains("very-secret"));
        assert!(bearer("line\nbreak").is_err());
    }
}
