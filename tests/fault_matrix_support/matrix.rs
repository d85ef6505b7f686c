//! The rows every client runs, as one list of tests: `every_row!(transport)` expands to one
//! `#[tokio::test]` per row of [`super::rows`], driven through that [`super::Transport`]. The
//! entry points (`tests/fault_matrix.rs`, `tests/fault_matrix_reqwest.rs`) invoke it once and
//! add the rows that concern only their client.

/// One test per shared row of the fault matrix, each through the client `$transport`.
macro_rules! every_row {
    ($transport:expr) => {
        // Row 1: 429 and its hints.

        /// `429` + `Retry-After: 1` is retried once, no sooner than 1 s later, and succeeds.
        #[tokio::test]
        async fn r1_429_retry_after_seconds_is_honoured() {
            $crate::fault_matrix_support::rows::retry_after_seconds($transport).await;
        }

        /// `429` + `Retry-After: <HTTP-date>` is retried once, when the date has come.
        #[tokio::test]
        async fn r1_429_retry_after_http_date_is_honoured() {
            $crate::fault_matrix_support::rows::retry_after_http_date($transport).await;
        }

        /// `429` + `retry-after-ms: 300` is retried once, 300 ms to 900 ms later.
        #[tokio::test]
        async fn r1_429_retry_after_ms_is_honoured() {
            $crate::fault_matrix_support::rows::retry_after_ms($transport).await;
        }

        /// `429` with no hint is retried once, after the shared gate's own short backoff.
        #[tokio::test]
        async fn r1_429_without_a_hint_is_retried_after_the_gates_backoff() {
            $crate::fault_matrix_support::rows::no_hint($transport).await;
        }

        /// `429`s with unparseable hints behave exactly like no hint: retried once, quickly.
        #[tokio::test]
        async fn r1_429_with_garbage_hints_is_retried_as_if_unhinted() {
            $crate::fault_matrix_support::rows::garbage_hints($transport).await;
        }

        /// `429` asking for a day: not retried, handed back intact; the gate then refuses locally.
        #[tokio::test]
        async fn r1_429_with_a_huge_hint_is_handed_back_not_retried() {
            $crate::fault_matrix_support::rows::huge_hint($transport).await;
        }

        // Row 2: 5xx are retried, the caller's own faults never are.

        /// Three 503s then success: four requests, one reply of 200.
        #[tokio::test]
        async fn r2_a_burst_of_503s_then_success_is_retried_through() {
            $crate::fault_matrix_support::rows::burst_of_503s($transport).await;
        }

        /// A 500 is retried once.
        #[tokio::test]
        async fn r2_500_is_retried() {
            $crate::fault_matrix_support::rows::server_error_is_retried($transport, 500).await;
        }

        /// A 502 is retried once.
        #[tokio::test]
        async fn r2_502_is_retried() {
            $crate::fault_matrix_support::rows::server_error_is_retried($transport, 502).await;
        }

        /// A 504 is retried once.
        #[tokio::test]
        async fn r2_504_is_retried() {
            $crate::fault_matrix_support::rows::server_error_is_retried($transport, 504).await;
        }

        /// A wrong API key gets the server's 401, sent once.
        #[tokio::test]
        async fn r2_401_wrong_key_is_not_retried() {
            $crate::fault_matrix_support::rows::client_error_is_not_retried(
                $transport,
                $crate::fault_matrix_support::rows::BadRequest::WrongKey,
            )
            .await;
        }

        /// A body that is not JSON gets the server's 400, sent once.
        #[tokio::test]
        async fn r2_400_malformed_json_is_not_retried() {
            $crate::fault_matrix_support::rows::client_error_is_not_retried(
                $transport,
                $crate::fault_matrix_support::rows::BadRequest::MalformedJson,
            )
            .await;
        }

        /// An unknown model gets the server's 404, sent once.
        #[tokio::test]
        async fn r2_404_unknown_model_is_not_retried() {
            $crate::fault_matrix_support::rows::client_error_is_not_retried(
                $transport,
                $crate::fault_matrix_support::rows::BadRequest::UnknownModel,
            )
            .await;
        }

        /// A body without `messages` gets the server's 422, sent once.
        #[tokio::test]
        async fn r2_422_missing_field_is_not_retried() {
            $crate::fault_matrix_support::rows::client_error_is_not_retried(
                $transport,
                $crate::fault_matrix_support::rows::BadRequest::MissingField,
            )
            .await;
        }

        // Row 3: connections and streams that break.

        /// A refused connection is `ErrorKind::Connect` and never reached the server.
        #[tokio::test]
        async fn r3_connection_refused_is_connect_and_never_reached_the_server() {
            $crate::fault_matrix_support::rows::connection_refused($transport).await;
        }

        /// A reset before the response is retried on a new connection and succeeds.
        #[tokio::test]
        async fn r3_reset_before_headers_is_retried_and_succeeds() {
            $crate::fault_matrix_support::rows::reset_before_headers($transport).await;
        }

        /// A connection closed mid-body is a body error for the reader, and is not retried.
        #[tokio::test]
        async fn r3_reset_mid_body_is_a_body_error_and_not_retried() {
            $crate::fault_matrix_support::rows::reset_mid_body($transport).await;
        }

        /// Headers that never come are cut by the per-attempt limit and retried.
        #[tokio::test]
        async fn r3_missing_headers_are_cut_per_attempt_and_retried() {
            $crate::fault_matrix_support::rows::slow_headers_cut_per_attempt($transport).await;
        }

        /// Headers that never come, with only a total deadline: `Timeout(Deadline)` on time.
        #[tokio::test]
        async fn r3_missing_headers_hit_the_total_deadline() {
            $crate::fault_matrix_support::rows::slow_headers_hit_the_deadline($transport).await;
        }

        /// A stream that stalls after three events fails with `Timeout(BodyIdle)`; not retried.
        #[tokio::test]
        async fn r3_a_stalled_stream_fails_with_body_idle_and_is_not_retried() {
            $crate::fault_matrix_support::rows::stalled_stream($transport).await;
        }

        /// A slow but steady stream outlives the idle timeout and the deadline, and ends with
        /// [DONE].
        #[tokio::test]
        async fn r3_a_slow_steady_stream_is_not_cut() {
            $crate::fault_matrix_support::rows::slow_steady_stream($transport).await;
        }

        // Row 4: request bodies.

        /// A body over the replay cap is sent once, intact, and not retried (`BodyNotReplayable`).
        #[tokio::test]
        async fn r4_a_body_over_the_replay_cap_is_sent_once() {
            $crate::fault_matrix_support::rows::body_over_the_replay_cap($transport).await;
        }

        /// A slowly streamed body under the cap is replayed byte for byte after a 503 and a 502.
        #[tokio::test]
        async fn r4_a_streamed_body_is_replayed_byte_identical() {
            $crate::fault_matrix_support::rows::streamed_body_is_replayed_byte_identical(
                $transport,
            )
            .await;
        }

        // Row 5: many callers, one gate.

        /// 50 callers through one preset against the server's limiter hinting `retry-after-ms`: all
        /// succeed in time, few 429s, no herd once the gate has learned.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn r5_fifty_callers_share_one_gate_with_retry_after_ms() {
            $crate::fault_matrix_support::rows::storm(
                $transport,
                ::tower_reliability::testing::HintStyle::RetryAfterMs,
            )
            .await;
        }

        // Row 6: callers dropped mid-wait.

        /// Callers dropped while backing off and while held at the gate leave no task behind and
        /// send nothing afterwards.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn r6_dropped_callers_leave_no_task_and_send_nothing() {
            $crate::fault_matrix_support::rows::dropped_callers($transport).await;
        }
    };
}
pub(crate) use every_row;
