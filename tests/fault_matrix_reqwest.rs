//! The fault matrix through a real reqwest 0.13 client: `reqwest::Client` behind a small tower
//! adapter (`fault_matrix_support::reqwest_adapter`), wrapped in the Fireworks preset, against
//! the fault-injecting `FireworksServer` on 127.0.0.1.
//!
//! The rows are the very ones `fault_matrix.rs` runs through hyper-util
//! (`fault_matrix_support::rows`): the same outcomes, the same server counts, the same
//! deadlines, whatever client carries the requests. reqwest's own errors reach the layers
//! untouched, so these rows also prove that they are classified from their source chain.
mod common;
mod fault_matrix_support;

use fault_matrix_support::rows::{self, BadRequest};
use fault_matrix_support::Transport::Reqwest;
use tower_reliability::testing::HintStyle;

// Row 1: 429 and its hints.

/// `429` + `Retry-After: 1` is retried once, no sooner than 1 s later, and succeeds.
#[tokio::test]
async fn r1_429_retry_after_seconds_is_honoured() {
    rows::retry_after_seconds(Reqwest).await;
}

/// `429` + `Retry-After: <HTTP-date>` is retried once, when the date has come.
#[tokio::test]
async fn r1_429_retry_after_http_date_is_honoured() {
    rows::retry_after_http_date(Reqwest).await;
}

/// `429` + `retry-after-ms: 300` is retried once, 300 ms to 900 ms later.
#[tokio::test]
async fn r1_429_retry_after_ms_is_honoured() {
    rows::retry_after_ms(Reqwest).await;
}

/// `429` with no hint is retried once, after the shared gate's own short backoff.
#[tokio::test]
async fn r1_429_without_a_hint_is_retried_after_the_gates_backoff() {
    rows::no_hint(Reqwest).await;
}

/// `429`s with unparseable hints behave exactly like no hint: retried once, quickly.
#[tokio::test]
async fn r1_429_with_garbage_hints_is_retried_as_if_unhinted() {
    rows::garbage_hints(Reqwest).await;
}

/// `429` asking for a day: not retried, handed back intact; the gate then refuses locally.
#[tokio::test]
async fn r1_429_with_a_huge_hint_is_handed_back_not_retried() {
    rows::huge_hint(Reqwest).await;
}

// Row 2: 5xx are retried, the caller's own faults never are.

/// Three 503s then success: four requests, one reply of 200.
#[tokio::test]
async fn r2_a_burst_of_503s_then_success_is_retried_through() {
    rows::burst_of_503s(Reqwest).await;
}

/// A 500 is retried once.
#[tokio::test]
async fn r2_500_is_retried() {
    rows::server_error_is_retried(Reqwest, 500).await;
}

/// A 502 is retried once.
#[tokio::test]
async fn r2_502_is_retried() {
    rows::server_error_is_retried(Reqwest, 502).await;
}

/// A 504 is retried once.
#[tokio::test]
async fn r2_504_is_retried() {
    rows::server_error_is_retried(Reqwest, 504).await;
}

/// A wrong API key gets the server's 401, sent once.
#[tokio::test]
async fn r2_401_wrong_key_is_not_retried() {
    rows::client_error_is_not_retried(Reqwest, BadRequest::WrongKey).await;
}

/// A body that is not JSON gets the server's 400, sent once.
#[tokio::test]
async fn r2_400_malformed_json_is_not_retried() {
    rows::client_error_is_not_retried(Reqwest, BadRequest::MalformedJson).await;
}

/// An unknown model gets the server's 404, sent once.
#[tokio::test]
async fn r2_404_unknown_model_is_not_retried() {
    rows::client_error_is_not_retried(Reqwest, BadRequest::UnknownModel).await;
}

/// A body without `messages` gets the server's 422, sent once.
#[tokio::test]
async fn r2_422_missing_field_is_not_retried() {
    rows::client_error_is_not_retried(Reqwest, BadRequest::MissingField).await;
}

// Row 3: connections and streams that break.

/// A refused connection is `ErrorKind::Connect` and never reached the server.
#[tokio::test]
async fn r3_connection_refused_is_connect_and_never_reached_the_server() {
    rows::connection_refused(Reqwest).await;
}

/// A reset before the response is retried on a new connection and succeeds.
#[tokio::test]
async fn r3_reset_before_headers_is_retried_and_succeeds() {
    rows::reset_before_headers(Reqwest).await;
}

/// A connection closed mid-body is a body error for the reader, and is not retried.
#[tokio::test]
async fn r3_reset_mid_body_is_a_body_error_and_not_retried() {
    rows::reset_mid_body(Reqwest).await;
}

/// Headers that never come are cut by the per-attempt limit and retried.
#[tokio::test]
async fn r3_missing_headers_are_cut_per_attempt_and_retried() {
    rows::slow_headers_cut_per_attempt(Reqwest).await;
}

/// Headers that never come, with only a total deadline: `Timeout(Deadline)` on time.
#[tokio::test]
async fn r3_missing_headers_hit_the_total_deadline() {
    rows::slow_headers_hit_the_deadline(Reqwest).await;
}

/// A stream that stalls after three events fails with `Timeout(BodyIdle)`; not retried.
#[tokio::test]
async fn r3_a_stalled_stream_fails_with_body_idle_and_is_not_retried() {
    rows::stalled_stream(Reqwest).await;
}

/// A slow but steady stream outlives the idle timeout and the deadline, and ends with [DONE].
#[tokio::test]
async fn r3_a_slow_steady_stream_is_not_cut() {
    rows::slow_steady_stream(Reqwest).await;
}

// Row 4: request bodies.

/// A body over the replay cap is sent once, intact, and not retried (`BodyNotReplayable`).
#[tokio::test]
async fn r4_a_body_over_the_replay_cap_is_sent_once() {
    rows::body_over_the_replay_cap(Reqwest).await;
}

/// A slowly streamed body under the cap is replayed byte for byte after a 503 and a 502.
#[tokio::test]
async fn r4_a_streamed_body_is_replayed_byte_identical() {
    rows::streamed_body_is_replayed_byte_identical(Reqwest).await;
}

// Row 5 and 6 through reqwest.

/// 50 callers through one preset over reqwest, against the server's limiter hinting
/// `retry-after-ms`: all succeed in time, few 429s, no herd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_fifty_callers_share_one_gate_with_retry_after_ms() {
    rows::storm(Reqwest, HintStyle::RetryAfterMs).await;
}

/// Callers dropped while backing off and at the gate leave no task behind and send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_dropped_callers_leave_no_task_and_send_nothing() {
    rows::dropped_callers(Reqwest).await;
}

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
