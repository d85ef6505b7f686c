//! The wire: a hyper-util client over plain HTTP, and an address where nothing listens.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tower_reliability::retry::ReplayBody;

/// The hyper-util client the layers sit on (its request body is the retry layer's replay body).
pub type HyperClient = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

/// A fresh [`HyperClient`] (its own connection pool).
pub fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An address on 127.0.0.1 where nothing listens: bound, learnt, closed.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}
