//! The wire: a hyper-util client over plain HTTP, and an address where nothing listens.

use std::{net::SocketAddr, sync::Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::net::TcpSocket;
use tower_reliability::retry::ReplayBody;

/// The hyper-util client the layers sit on (its request body is the retry layer's replay body).
pub type HyperClient = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

/// A fresh [`HyperClient`] (its own connection pool).
pub fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An address on 127.0.0.1 where nothing listens, and nothing can start to: a socket is bound
/// there and never listens (a connection is refused), and it stays bound until the test
/// process ends. (Binding port 0, reading the port and closing the listener left the port
/// free: a test running in parallel was once given it for its own server, which answered.)
pub fn closed_port() -> SocketAddr {
    static HELD: Mutex<Vec<TcpSocket>> = Mutex::new(Vec::new());
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let addr = socket.local_addr().expect("local addr");
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(socket);
    addr
}
