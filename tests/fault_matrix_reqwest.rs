//! The fault matrix through a real reqwest 0.13 client: `reqwest::Client` behind a small tower
//! adapter (`fault_matrix_support::reqwest_adapter`), wrapped in the Fireworks preset, against
//! the fault-injecting `FireworksServer` on 127.0.0.1.
//!
//! The rows are the very ones `fault_matrix.rs` runs through hyper-util
//! (`fault_matrix_support::matrix::every_row!`): the same outcomes, the same server counts, the same
//! deadlines, whatever client carries the requests. reqwest's own errors reach the layers
//! untouched, so these rows also prove that they are classified from their source chain.
mod common;
mod fault_matrix_support;

use fault_matrix_support::Transport::Reqwest;

fault_matrix_support::matrix::every_row!(Reqwest);

// reqwest's errors, as the layers see them.

/// A refused connection comes out of reqwest as a `reqwest::Error` whose source chain holds
/// hyper-util's connect error and the `io::ErrorKind::ConnectionRefused`; `Error::from_inner`
/// classifies it `Connect`, never reached the server.
#[tokio::test]
async fn reqwest_refused_connection_is_classified_connect() {
    let url = format!("http://{}/", common::closed_port());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let err = client.get(url).send().await.expect_err("nothing listens");
    assert!(err.is_connect());
    let mut refused = false;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = next {
        refused |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        next = e.source();
    }
    assert!(refused, "the io error is in the chain: {err:?}");
    let ours = tower_reliability::Error::from_inner(err);
    assert_eq!(ours.kind(), tower_reliability::ErrorKind::Connect);
    assert_eq!(ours.reached_server(), Some(false));
}
