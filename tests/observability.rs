//! What the layers report, end to end (issue 4, part 5): a real hyper-util client under the
//! `fireworks` preset, talking to the in-process [`FireworksServer`] on 127.0.0.1.
//!
//! - **No secrets anywhere**: a realistic scenario with a secret API key (in the
//!   `Authorization` header and pasted into the prompt) runs through every code path of the
//!   layers while *all* tracing output is captured at TRACE for every target, along with the
//!   `Debug` / `Display` of every error (and its sources), response, `RetryReport`, the service
//!   stack, the layer and every metric key. The key appears in none of it.
//! - **Metrics**: a scripted scenario, step by step, with the exact counters and histogram
//!   sample counts each step adds; the attempts the server acknowledged (by status) match the
//!   server's own counts, and the ones that never reached it are counted apart (`not_sent`).
//!
//! Each test runs its scenario on its own current-thread runtime inside a thread-scoped metrics
//! recorder (`metrics::with_local_recorder`): every task it spawns (client connections, the
//! server) runs on that thread, so the recorder sees all of it and nothing of the other test.
//! Tracing goes to one global subscriber for the whole binary (see `global_capture`); the
//! secret scenario runs in a span, so its own lines can be told apart.
mod common;
mod observability_support;

use std::{collections::BTreeMap, time::Duration};

use common::{closed_port, hyper_client, tracing_capture::global_capture};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use observability_support::{
    chat, collect, metric_deltas, metric_samples, seeded_backoff, send, Stack, Transcript, SECRET,
    WRONG_KEY,
};
use tower::ServiceBuilder;
use tower_reliability::{
    context::StopReason,
    error::TimeoutPhase,
    fireworks,
    rate_limit::{GateConfig, RateControl, RateLimitAware},
    testing::{Fault, FireworksServer, ServerConfig},
    timeout::AttemptTimeout,
    ErrorKind, RetryOnStatus, RetryReport, TimeoutByWorkload, TimeoutProfile, Workload,
};
use tracing::Instrument;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const KEY: &str = tower_reliability::testing::DEFAULT_API_KEY;

fn retry_after_ms(status: u16, ms: u64) -> Fault {
    Fault::StatusWithHeaders(status, vec![("retry-after-ms".into(), ms.to_string())])
}

// ---------------------------------------------------------------------------------------------
// No secrets anywhere
// ---------------------------------------------------------------------------------------------

/// The preset with short timeouts, fast backoff and a fast circuit breaker:
/// - interactive requests: 3 s deadline, 200 ms idle read, 400 ms per attempt;
/// - agentic requests: 250 ms deadline, no per-attempt limit (to provoke the deadline).
fn secret_scenario_preset(seed: u64) -> fireworks::FireworksLayer {
    let idle = Duration::from_millis(200);
    fireworks::layer(Workload::Interactive)
        .timeouts(
            TimeoutByWorkload::new(Workload::Interactive)
                .profile(
                    Workload::Interactive,
                    TimeoutProfile::new(Duration::from_secs(3)).with_idle_read(idle),
                )
                .profile(
                    Workload::Agentic,
                    TimeoutProfile::new(Duration::from_millis(250)).with_idle_read(idle),
                ),
        )
        .backoff(seeded_backoff(seed))
        .rate_limit(RateLimitAware::with_config(
            GateConfig::default()
                // The adaptive rate's metrics depend on measured timing: `tests/adaptive.rs`.
                .with_rate_control(RateControl::Off)
                // Three failures (of three) trip the breaker, as the scenario's steps expect.
                .with_minimum_throughput(3)
                .with_release_spacing(Duration::from_millis(5))
                .with_no_hint_base(Duration::from_millis(20))
                .with_probe_base(Duration::from_millis(20))
                .with_probe_max(Duration::from_millis(40)),
        ))
        .attempt_timeout(
            AttemptTimeout::fixed(Duration::from_millis(400)).limit(Workload::Agentic, None),
        )
}

/// Every path of every layer, with the secret key on every request. Returns the transcript of
/// everything a caller could print.
async fn secret_scenario() -> Transcript {
    let mut t = Transcript::default();
    let server = FireworksServer::start(
        ServerConfig::default()
            .api_key(SECRET)
            .token_interval(Duration::from_millis(2))
            .tokens_per_completion(4)
            .shutdown_grace(Duration::from_millis(100)),
    )
    .await
    .expect("server");
    let url = server.chat_url();
    // Proves the capture sees any target at TRACE (the check below cannot pass vacuously).
    tracing::trace!(target: "observability::canary", "canary {CANARY}");
    let layer = secret_scenario_preset(11);
    t.debug("layer", &layer);
    let mut svc: Stack = ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client());
    t.debug("service stack", &svc);

    // 1. A 429 with `retry-after-ms`: the gate closes, the backoff honours the hint, retried.
    server.push_script([retry_after_ms(429, 30)]);
    let response = t.response(
        "429 then ok",
        send(&mut svc, chat(&url, SECRET, false)).await,
    );
    assert_eq!(response.status(), 200);
    assert_eq!(report(&response).attempts, 2);
    collect(&mut t, response).await.expect("body");

    // 2. A burst of 503s without a hint: three failures in a row trip the circuit breaker; the
    //    fourth attempt goes out as its probe and succeeds.
    server.push_script([Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
    let response = t.response("503 burst", send(&mut svc, chat(&url, SECRET, false)).await);
    assert_eq!(response.status(), 200);
    assert_eq!(report(&response).attempts, 4);
    collect(&mut t, response).await.expect("body");

    // 3. The connection is reset before any response: a transport failure, retried.
    server.push_script([Fault::ResetBeforeResponse]);
    let response = t.response("reset", send(&mut svc, chat(&url, SECRET, false)).await);
    assert_eq!(response.status(), 200);
    assert_eq!(report(&response).attempts, 2);
    collect(&mut t, response).await.expect("body");

    // 4. Headers too slow: the per-attempt timeout fires, retried.
    server.push_script([Fault::DelayHeaders(Duration::from_millis(700))]);
    let response = t.response("slow head", send(&mut svc, chat(&url, SECRET, false)).await);
    assert_eq!(response.status(), 200);
    assert_eq!(report(&response).attempts, 2);
    collect(&mut t, response).await.expect("body");

    // 5. A stream that goes silent after two events: the idle-read timeout cuts it.
    server.push_script([Fault::StallAfterEvents(2)]);
    let response = t.response(
        "stalled stream",
        send(&mut svc, chat(&url, SECRET, true)).await,
    );
    assert_eq!(response.status(), 200);
    let err = collect(&mut t, response).await.expect_err("stalled");
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::BodyIdle));

    // 6. A stream that completes.
    let response = t.response("stream", send(&mut svc, chat(&url, SECRET, true)).await);
    assert_eq!(response.status(), 200);
    let body = collect(&mut t, response).await.expect("stream");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // 7. A wrong key: 401, never retried.
    let response = t.response(
        "wrong key",
        send(&mut svc, chat(&url, WRONG_KEY, false)).await,
    );
    assert_eq!(response.status(), 401);
    collect(&mut t, response).await.expect("body");

    // 8. A 503 that says `x-should-retry: false`: handed back at once.
    server.push_script([Fault::StatusWithHeaders(
        503,
        vec![("x-should-retry".into(), "false".into())],
    )]);
    let response = t.response(
        "should-retry false",
        send(&mut svc, chat(&url, SECRET, false)).await,
    );
    assert_eq!(response.status(), 503);
    assert_eq!(report(&response).stopped, Some(StopReason::ServerSaidNo));
    collect(&mut t, response).await.expect("body");

    // 9. The total deadline passes while the head is awaited.
    server.push_script([Fault::DelayHeaders(Duration::from_millis(600))]);
    let mut request = chat(&url, SECRET, false);
    request.extensions_mut().insert(Workload::Agentic);
    let err = t.error("deadline", send(&mut svc, request).await);
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::Deadline));

    // 10. Nothing listens: every attempt fails to connect, the breaker trips and probes.
    //     (Another host: a stack of its own, with its own gate.)
    let mut elsewhere: Stack = ServiceBuilder::new()
        .layer(secret_scenario_preset(12))
        .service(hyper_client());
    let refused_url = format!("http://{}/inference/v1/chat/completions", closed_port());
    let err = t.error(
        "refused",
        send(&mut elsewhere, chat(&refused_url, SECRET, false)).await,
    );
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert_eq!(err.reached_server(), Some(false));

    // 11. A 429 asking for a wait past the deadline: the backoff refuses the retry, the 429 is
    //     handed back; the gate stays closed, so the next request fails fast, unsent.
    server.push_script([retry_after_ms(429, 10_000)]);
    let response = t.response("long hint", send(&mut svc, chat(&url, SECRET, false)).await);
    assert_eq!(response.status(), 429);
    assert_eq!(
        report(&response).stopped,
        Some(StopReason::NextAttemptRefused)
    );
    collect(&mut t, response).await.expect("body");
    let err = t.error(
        "gate closed",
        send(&mut svc, chat(&url, SECRET, false)).await,
    );
    assert!(err.is_rate_limited(), "{err:?}");
    assert_eq!(err.reached_server(), Some(false));

    t.debug("service stack at the end", &svc);
    t.debug("layer at the end", &layer);
    t.debug("server stats", &server.stats());
    server.shutdown().await;
    t
}

/// Not a secret: a marker that must show up in the capture.
const CANARY: &str = "canary-6e0f3d1b";

fn report<B>(response: &http::Response<B>) -> RetryReport {
    *response
        .extensions()
        .get::<RetryReport>()
        .expect("a RetryReport")
}

#[test]
fn no_secret_reaches_logs_errors_debug_output_or_metric_labels() {
    let capture = global_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = current_thread();
    let transcript = metrics::with_local_recorder(&recorder, || {
        rt.block_on(secret_scenario().instrument(tracing::info_span!("secret_scenario")))
    });
    drop(rt);

    let logs = capture.text();
    let metrics: Vec<String> = metric_deltas(&snapshotter).into_keys().collect();
    let metric_keys = metrics.join("\n");
    let everything = [logs.as_str(), transcript.text(), metric_keys.as_str()];

    // Not vacuous: the capture holds every kind of event the scenario provokes (the scenario's
    // own lines: the other test shares the global subscriber).
    let ours: String = logs
        .lines()
        .filter(|line| line.contains("secret_scenario"))
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        CANARY,
        "attempt answered",
        "retryable response",
        "backing off before retry",
        "rate-limit gate closed",
        "circuit breaker holds new requests",
        "attempt failed",
        "retrying after error",
        "attempt timed out",
        "response body idle timeout",
        "request timed out",
        "not retrying",
        "backoff refused the retry",
        "gate closed past the deadline",
        "server_hint_ms=30",
        "status=401",
    ] {
        assert!(
            ours.contains(expected),
            "the capture lacks {expected:?}:\n{logs}"
        );
    }
    for expected in [
        "Error { kind: Connect",
        "request never reached the server",
        "RetryReport { attempts: 4",
        "FireworksLayer",
        "TimeoutByWorkloadService",
    ] {
        assert!(
            transcript.text().contains(expected),
            "the transcript lacks {expected:?}:\n{}",
            transcript.text()
        );
    }
    assert!(
        metrics
            .iter()
            .any(|m| m.starts_with("tower_reliability_retries_total")),
        "{metrics:?}"
    );
    assert!(ours.len() > 2_000, "{} bytes of logs", ours.len());
    assert!(
        logs.contains("TRACE hyper_util::client::legacy"),
        "other crates' events are captured too"
    );

    for haystack in everything {
        for secret in [SECRET, WRONG_KEY, "SECRET-", "WRONG-"] {
            if let Some(at) = haystack.find(secret) {
                let from = haystack[..at]
                    .char_indices()
                    .rev()
                    .nth(300)
                    .map_or(0, |(i, _)| i);
                let to = (at + 300).min(haystack.len());
                panic!(
                    "{secret:?} leaked at byte {at}:\n...{}...",
                    haystack.get(from..to).unwrap_or(haystack)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

type Deltas = BTreeMap<String, u64>;

fn labelled(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("tower_reliability_{name}{{{}}}", labels.join(","))
}

fn attempts(outcome: &str, status: &str) -> String {
    labelled(
        "attempts_total",
        &[("outcome", outcome), ("status", status)],
    )
}

fn retries(cause: &str) -> String {
    labelled("retries_total", &[("cause", cause)])
}

fn retry_stops(reason: &str) -> String {
    labelled("retry_stops_total", &[("reason", reason)])
}

fn timeouts(phase: &str) -> String {
    labelled("timeouts_total", &[("phase", phase)])
}

fn gate_closures(hinted: bool) -> String {
    labelled("gate_closures_total", &[("hinted", &hinted.to_string())])
}

/// The key of a histogram's sample count in [`metric_deltas`].
fn backoff_samples(hinted: bool) -> String {
    format!(
        "{} samples",
        labelled("backoff_seconds", &[("hinted", &hinted.to_string())])
    )
}

const BREAKER_TRIPS: &str = "tower_reliability_breaker_trips_total";
const GATE_REFUSALS: &str = "tower_reliability_gate_refusals_total";
const GATE_WAIT_SAMPLES: &str = "tower_reliability_gate_wait_seconds samples";

fn expect<const N: usize>(pairs: [(String, u64); N]) -> Deltas {
    pairs.into_iter().collect()
}

/// Checks one step's metrics and adds them to the running totals.
#[track_caller]
fn step(name: &str, got: Deltas, expected: Deltas, totals: &mut Deltas) {
    assert_eq!(got, expected, "step {name:?}: metrics differ");
    for (key, value) in got {
        *totals.entry(key).or_default() += value;
    }
}

/// The sum of the counters whose key contains `needle`.
fn sum(totals: &Deltas, needle: &str) -> u64 {
    totals
        .iter()
        .filter(|(k, _)| k.contains(needle))
        .map(|(_, v)| v)
        .sum()
}

/// The preset with a 5 s deadline, a 150 ms idle read, three attempts and fast backoff; the
/// gate keeps its defaults (the breaker holds for 500 ms once it trips) but for the adaptive
/// rate, whose pacing depends on measured timing (`tests/adaptive.rs`), and a breaker that
/// trips on three failures within 100 ms (the scenario's steps are milliseconds apart).
fn metrics_preset() -> fireworks::FireworksLayer {
    fireworks::layer(Workload::Interactive)
        .timeouts(TimeoutByWorkload::new(Workload::Interactive).profile(
            Workload::Interactive,
            TimeoutProfile::new(Duration::from_secs(5)).with_idle_read(Duration::from_millis(150)),
        ))
        .retry(RetryOnStatus::default().max_attempts(3))
        .backoff(seeded_backoff(7))
        .rate_limit(RateLimitAware::with_config(
            GateConfig::default()
                .with_rate_control(RateControl::Off)
                .with_minimum_throughput(3)
                .with_sampling_duration(Duration::from_millis(100)),
        ))
}

async fn quick_server() -> FireworksServer {
    FireworksServer::start(
        ServerConfig::default()
            .token_interval(Duration::from_millis(2))
            .tokens_per_completion(4)
            .shutdown_grace(Duration::from_millis(100)),
    )
    .await
    .expect("server")
}

/// Each step of a scripted scenario, with exactly the counters and histogram samples it adds.
async fn metrics_scenario(snapshotter: Snapshotter) -> Deltas {
    let server = quick_server().await;
    let url = server.chat_url();
    let mut svc: Stack = ServiceBuilder::new()
        .layer(metrics_preset())
        .service(hyper_client());
    let mut t = Transcript::default();
    let mut totals = Deltas::new();
    assert!(metric_deltas(&snapshotter).is_empty(), "a fresh recorder");

    // 503, 503, then 200: two server-acknowledged failures, two retries, two unhinted waits.
    server.push_script([Fault::Status(503), Fault::Status(503)]);
    let response = t.response("503 503 ok", send(&mut svc, chat(&url, KEY, false)).await);
    assert_eq!(
        (response.status().as_u16(), report(&response).attempts),
        (200, 3)
    );
    collect(&mut t, response).await.expect("body");
    step(
        "503, 503, ok",
        metric_deltas(&snapshotter),
        expect([
            (attempts("response", "2xx"), 1),
            (attempts("response", "503"), 2),
            (backoff_samples(false), 2),
            (retries("5xx"), 2),
        ]),
        &mut totals,
    );

    // A 429 hinting 50 ms: the shared gate closes (hinted), the backoff waits the hint.
    server.push_script([retry_after_ms(429, 50)]);
    let response = t.response("429 ok", send(&mut svc, chat(&url, KEY, false)).await);
    assert_eq!(
        (response.status().as_u16(), report(&response).attempts),
        (200, 2)
    );
    assert!(report(&response).waited >= Duration::from_millis(50));
    collect(&mut t, response).await.expect("body");
    let (got, samples) = metric_samples(&snapshotter);
    let hinted = &samples[backoff_samples(true).trim_end_matches(" samples")];
    assert!(
        hinted[0] >= 0.05,
        "the wait honoured the 50 ms hint: {hinted:?}"
    );
    step(
        "429 with retry-after-ms, ok",
        got,
        expect([
            (attempts("response", "2xx"), 1),
            (attempts("response", "429"), 1),
            (backoff_samples(true), 1),
            (gate_closures(true), 1),
            (retries("429"), 1),
        ]),
        &mut totals,
    );

    // A reset before the response: the server saw the request but answered nothing.
    server.push_script([Fault::ResetBeforeResponse]);
    let response = t.response("reset ok", send(&mut svc, chat(&url, KEY, false)).await);
    assert_eq!(
        (response.status().as_u16(), report(&response).attempts),
        (200, 2)
    );
    collect(&mut t, response).await.expect("body");
    step(
        "reset, ok",
        metric_deltas(&snapshotter),
        expect([
            (attempts("error", "inner"), 1),
            (attempts("response", "2xx"), 1),
            (backoff_samples(false), 1),
            (retries("transport"), 1),
        ]),
        &mut totals,
    );

    // A stream that stalls after two events: a 200 attempt, then a body-idle timeout.
    server.push_script([Fault::StallAfterEvents(2)]);
    let response = t.response("stall", send(&mut svc, chat(&url, KEY, true)).await);
    assert_eq!(response.status(), 200);
    let err = collect(&mut t, response).await.expect_err("stalled");
    assert_eq!(err.timeout_phase(), Some(TimeoutPhase::BodyIdle));
    step(
        "stalled stream",
        metric_deltas(&snapshotter),
        expect([(attempts("response", "2xx"), 1), (timeouts("body_idle"), 1)]),
        &mut totals,
    );

    // A wrong key: a 401, counted and not retried.
    let response = t.response("401", send(&mut svc, chat(&url, WRONG_KEY, false)).await);
    assert_eq!(response.status(), 401);
    assert!(response.extensions().get::<RetryReport>().is_none());
    collect(&mut t, response).await.expect("body");
    step(
        "401",
        metric_deltas(&snapshotter),
        expect([(attempts("response", "401"), 1)]),
        &mut totals,
    );

    // Nothing listens on the port: three attempts that never left, two retries; the third
    // failure in a row trips the breaker of the (shared) gate.
    let refused_url = format!("http://{}/inference/v1/chat/completions", closed_port());
    let err = t.error(
        "refused",
        send(&mut svc, chat(&refused_url, KEY, false)).await,
    );
    assert_eq!(err.kind(), ErrorKind::Connect);
    step(
        "connection refused",
        metric_deltas(&snapshotter),
        expect([
            (attempts("not_sent", "connect"), 3),
            (backoff_samples(false), 2),
            (BREAKER_TRIPS.to_owned(), 1),
            (retries("connect"), 2),
            (retry_stops("attempts_exhausted"), 1),
        ]),
        &mut totals,
    );

    // The breaker holds the next request ~500 ms, then lets it probe; the server answers 429
    // with a hint past the deadline: the gate closes, the retry is refused before sending and
    // the 429 handed back.
    server.push_script([retry_after_ms(429, 10_000)]);
    let response = t.response("long hint", send(&mut svc, chat(&url, KEY, false)).await);
    assert_eq!(response.status(), 429);
    assert_eq!(report(&response).attempts, 1);
    assert_eq!(
        report(&response).stopped,
        Some(StopReason::NextAttemptRefused)
    );
    collect(&mut t, response).await.expect("body");
    let (mut got, samples) = metric_samples(&snapshotter);
    let held = &samples["tower_reliability_gate_wait_seconds"];
    assert!(held[0] >= 0.4, "held by the breaker: {held:?}");
    // Also counted today: `retries_total{cause="429"}` for the retry that was refused; see
    // `bug_retries_total_counts_a_retry_refused_before_sending`.
    got.remove(&retries("429"));
    step(
        "breaker probe answered 429, hint past the deadline",
        got,
        expect([
            (attempts("response", "429"), 1),
            (gate_closures(true), 1),
            (GATE_WAIT_SAMPLES.to_owned(), 1),
            (retry_stops("next_attempt_refused"), 1),
        ]),
        &mut totals,
    );

    // The gate stays closed past the next request's deadline: it fails at once, unsent.
    let err = t.error("gate closed", send(&mut svc, chat(&url, KEY, false)).await);
    assert!(err.is_rate_limited(), "{err:?}");
    step(
        "gate closed",
        metric_deltas(&snapshotter),
        expect([
            (attempts("not_sent", "rate_limited"), 1),
            (GATE_REFUSALS.to_owned(), 1),
        ]),
        &mut totals,
    );

    // The dashboard's view vs the client's: the server counted exactly the attempts that got a
    // response, status by status; the reset one reached it without an answer; the refused and
    // rate-limited ones never reached it.
    let stats = server.stats();
    assert_eq!(stats.count(200), totals[&attempts("response", "2xx")]);
    for code in [401, 429, 503] {
        let code = code.to_string();
        assert_eq!(
            stats.count(code.parse().expect("code")),
            totals[&attempts("response", &code)],
            "{code}"
        );
    }
    let responses = sum(&totals, r#"outcome="response""#);
    let errors = sum(&totals, r#"outcome="error""#);
    let not_sent = sum(&totals, r#"outcome="not_sent""#);
    assert_eq!(stats.responses(), responses, "{stats:?}");
    assert_eq!(stats.requests, responses + errors, "{stats:?}");
    assert_eq!(stats.connections_reset, errors);
    assert_eq!(stats.streams_stalled, 1);
    assert_eq!((responses, errors, not_sent), (9, 1, 4));
    server.shutdown().await;
    totals
}

#[test]
fn metrics_count_attempts_by_outcome_and_status_retries_timeouts_and_gate_closures() {
    // Its events go to the shared capture too, which the other test also checks for secrets.
    global_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = current_thread();
    let totals = metrics::with_local_recorder(&recorder, || {
        rt.block_on(metrics_scenario(snapshotter.clone()))
    });
    assert_eq!(
        totals,
        expect([
            (attempts("error", "inner"), 1),
            (attempts("not_sent", "connect"), 3),
            (attempts("not_sent", "rate_limited"), 1),
            (attempts("response", "2xx"), 4),
            (attempts("response", "401"), 1),
            (attempts("response", "429"), 2),
            (attempts("response", "503"), 2),
            (backoff_samples(false), 5),
            (backoff_samples(true), 1),
            (BREAKER_TRIPS.to_owned(), 1),
            (gate_closures(true), 2),
            (GATE_REFUSALS.to_owned(), 1),
            (GATE_WAIT_SAMPLES.to_owned(), 1),
            (retries("429"), 1),
            (retries("5xx"), 2),
            (retries("connect"), 2),
            (retries("transport"), 1),
            (retry_stops("attempts_exhausted"), 1),
            (retry_stops("next_attempt_refused"), 1),
            (timeouts("body_idle"), 1),
        ])
    );
}

/// Runs `scenario` on a current-thread runtime with a fresh local recorder.
fn with_recorder<F, T>(scenario: impl FnOnce(Snapshotter) -> F) -> T
where
    F: std::future::Future<Output = T>,
{
    global_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = current_thread();
    metrics::with_local_recorder(&recorder, || rt.block_on(scenario(snapshotter)))
}

/// `attempts_total` is "every attempt", and the guide's reconciliation needs every attempt
/// the server may have seen: an attempt still waiting for its head when the total deadline
/// fires reached the server (it counts, and bills, the request), so it is counted, as
/// `outcome="error",status="abandoned"`.
#[test]
fn an_attempt_cut_off_by_the_deadline_is_counted_as_abandoned() {
    with_recorder(|snapshotter| async move {
        let server = quick_server().await;
        let layer =
            metrics_preset().timeouts(TimeoutByWorkload::new(Workload::Interactive).profile(
                Workload::Interactive,
                TimeoutProfile::new(Duration::from_millis(200)),
            ));
        let mut svc: Stack = ServiceBuilder::new().layer(layer).service(hyper_client());
        server.push_script([Fault::DelayHeaders(Duration::from_millis(500))]);
        let err = send(&mut svc, chat(&server.chat_url(), KEY, false))
            .await
            .expect_err("deadline");
        assert_eq!(err.timeout_phase(), Some(TimeoutPhase::Deadline));
        let got = metric_deltas(&snapshotter);
        assert_eq!(got.get(&timeouts("deadline")), Some(&1), "{got:?}");
        assert_eq!(server.stats().requests, 1, "the server saw the attempt");
        assert_eq!(
            sum(&got, "tower_reliability_attempts_total"),
            1,
            "the attempt the server saw is counted (as outcome=\"error\"): {got:?}"
        );
        server.shutdown().await;
    });
}

/// `retries_total` is "retries started" and `retry_stops_total` "retryable outcomes handed back
/// without retrying": a 429 whose hinted wait passes the deadline is handed back unretried
/// (the `RetryReport` says 1 attempt, stopped `NextAttemptRefused`), so it is counted only as a
/// stop, and `attempts_total` equals requests + `retries_total`.
#[test]
fn a_retry_refused_before_sending_is_not_counted_as_a_retry() {
    with_recorder(|snapshotter| async move {
        let server = quick_server().await;
        let mut svc: Stack = ServiceBuilder::new()
            .layer(metrics_preset())
            .service(hyper_client());
        server.push_script([retry_after_ms(429, 10_000)]);
        let response = send(&mut svc, chat(&server.chat_url(), KEY, false))
            .await
            .expect("the 429 back");
        assert_eq!(response.status(), 429);
        assert_eq!(report(&response).attempts, 1);
        assert_eq!(
            report(&response).stopped,
            Some(StopReason::NextAttemptRefused)
        );
        let got = metric_deltas(&snapshotter);
        assert_eq!(
            got.get(&retry_stops("next_attempt_refused")),
            Some(&1),
            "{got:?}"
        );
        let attempts = sum(&got, "tower_reliability_attempts_total");
        let retries = sum(&got, "tower_reliability_retries_total");
        assert_eq!(
            attempts,
            1 + retries,
            "one request: attempts = 1 + retries started: {got:?}"
        );
        server.shutdown().await;
    });
}
