//! `jobs::JobPoller`: paused-time tests against a scripted job service (intervals, tolerated
//! and fatal failures, the overall deadline, progress, resuming, cancellation), then end to end
//! through a real hyper-util client and the preset against the crate's `FireworksServer`.

mod common;
use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tokio::time::Instant;
use tower::Service;
use tower_reliability::{
    backoff::Jitter,
    context::Deadline,
    fireworks,
    jobs::{
        fireworks_json, get_request, JobError, JobErrorKind, JobPoller, JobState, JobStatus,
        JsonStatusError, PollFailure,
    },
    BoxError, JitteredBackoff, RetryOnStatus, Workload,
};

// ---- A scripted job service ------------------------------------------------------------------

const PENDING: &str = r#"{"state":"JOB_STATE_PENDING"}"#;
const RUNNING: &str = r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":50}}"#;
const COMPLETED: &str = r#"{"state":"JOB_STATE_COMPLETED","progress":{"percent":100}}"#;

/// What the mock does for one poll.
#[derive(Clone, Debug)]
enum Reply {
    /// `200` with this body.
    Json(&'static str),
    /// This status, with these headers and body.
    Status(u16, &'static [(&'static str, &'static str)], &'static str),
    /// Fail with this I/O error (`ConnectionRefused`: never reached the server).
    Fail(io::ErrorKind),
    /// Never answer.
    Hang,
    /// Answer like a real job that completes at the mock's `done_at`.
    Clock,
}

#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    deadline: Option<Deadline>,
}

#[derive(Debug)]
struct MockState {
    script: VecDeque<Reply>,
    otherwise: Reply,
    calls: Vec<Call>,
    done_at: Option<Instant>,
}

/// A job-status service: one scripted [`Reply`] per call, `otherwise` once the script is empty.
#[derive(Clone, Debug)]
struct JobMock {
    state: Arc<Mutex<MockState>>,
    in_flight: Arc<AtomicUsize>,
}

impl JobMock {
    fn new(script: impl IntoIterator<Item = Reply>, otherwise: Reply) -> Self {
        JobMock {
            state: Arc::new(Mutex::new(MockState {
                script: script.into_iter().collect(),
                otherwise,
                calls: Vec::new(),
                done_at: None,
            })),
            in_flight: Arc::default(),
        }
    }

    /// A job that completes `after` from now, polled with [`Reply::Clock`].
    fn clock(after: Duration) -> Self {
        let mock = JobMock::new([], Reply::Clock);
        mock.state.lock().unwrap().done_at = Some(Instant::now() + after);
        mock
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    fn count(&self) -> usize {
        self.state.lock().unwrap().calls.len()
    }

    /// Requests whose futures are alive (called and neither finished nor dropped).
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// Counts a request future as in flight until it is dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn respond(
    code: u16,
    headers: &[(&'static str, &str)],
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(*name, value.parse().unwrap());
    }
    response
}

type MockFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send>>;

impl<B> Service<Request<B>> for JobMock {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = MockFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> MockFuture {
        let (reply, done_at) = {
            let mut state = self.state.lock().unwrap();
            state.calls.push(Call {
                at: Instant::now(),
                deadline: Deadline::of(&request),
            });
            let otherwise = state.otherwise.clone();
            let reply = state.script.pop_front().unwrap_or(otherwise);
            (reply, state.done_at)
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.in_flight.clone());
        Box::pin(async move {
            let _guard = guard;
            match reply {
                Reply::Json(body) => Ok(respond(200, &[], body)),
                Reply::Status(code, headers, body) => Ok(respond(code, headers, body)),
                Reply::Fail(kind) => {
                    Err(Box::new(io::Error::new(kind, "mock failure")) as BoxError)
                }
                Reply::Hang => std::future::pending().await,
                Reply::Clock => match done_at {
                    Some(done) if Instant::now() >= done => Ok(respond(200, &[], COMPLETED)),
                    _ => Ok(respond(200, &[], RUNNING)),
                },
            }
        })
    }
}

/// The ready-made interpreter, as a nameable type.
type Interpret = fn(&http::response::Parts, &Bytes) -> Result<JobStatus, JsonStatusError>;

fn status_uri() -> Uri {
    Uri::from_static("http://jobs.test/v1/accounts/me/batchJobs/b1")
}

/// A poller with exact intervals 1, 2, 4, 4, ... s (no jitter) and a 10-minute deadline.
fn exact_poller() -> JobPoller<impl Fn() -> Request<Full<Bytes>> + Clone, Interpret> {
    JobPoller::new(
        get_request::<Full<Bytes>>(status_uri(), HeaderMap::new()),
        fireworks_json as Interpret,
    )
    .jitter(Jitter::None)
    .first_interval(Duration::from_secs(1))
    .max_interval(Duration::from_secs(4))
    .deadline(Duration::from_secs(600))
}

/// The gaps between consecutive calls.
fn gaps(calls: &[Call]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().copied().map(Duration::from_secs).collect()
}

// ---- Paused time -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn completes_after_n_polls_with_growing_intervals_and_reports_every_status() {
    let mut mock = JobMock::new(
        [
            Reply::Json(PENDING),
            Reply::Json(r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":10}}"#),
            Reply::Json(RUNNING),
            Reply::Json(r#"{"state":"JOB_STATE_WRITING_RESULTS","progress":{"percent":99}}"#),
            Reply::Json(r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":99}}"#),
            Reply::Json(COMPLETED),
        ],
        Reply::Hang,
    );
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut poller = exact_poller().on_progress(|s: &JobStatus| {
        seen.push((s.raw_state.clone(), s.progress, Instant::now() - start))
    });
    let status = poller.poll_until_done(&mut mock).await.unwrap();
    drop(poller);

    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!(status.progress, Some(100.0));
    assert_eq!(
        &status.body[..],
        COMPLETED.as_bytes(),
        "the final body is kept"
    );
    let calls = mock.calls();
    assert_eq!(calls[0].at, start, "the first poll is sent at once");
    assert_eq!(
        gaps(&calls),
        secs(&[1, 2, 4, 4, 4]),
        "1 s * 2^n, capped at 4 s"
    );
    let states: Vec<_> = seen.iter().map(|(s, p, _)| (s.as_str(), *p)).collect();
    assert_eq!(
        states,
        [
            ("JOB_STATE_PENDING", None),
            ("JOB_STATE_RUNNING", Some(10.0)),
            ("JOB_STATE_RUNNING", Some(50.0)),
            ("JOB_STATE_WRITING_RESULTS", Some(99.0)),
            ("JOB_STATE_RUNNING", Some(99.0)),
            ("JOB_STATE_COMPLETED", Some(100.0)),
        ],
        "the callback sees every status, in order, the last included"
    );
    let times: Vec<_> = seen.iter().map(|(_, _, t)| *t).collect();
    assert_eq!(times, secs(&[0, 1, 3, 7, 11, 15]), "as soon as it is read");
}

#[tokio::test(start_paused = true)]
async fn default_intervals_grow_with_equal_jitter_up_to_30_s_and_repeat_with_a_seed() {
    async fn run(seed: u64) -> Vec<Duration> {
        let mut script = vec![Reply::Json(RUNNING); 9];
        script.push(Reply::Json(COMPLETED));
        let mut mock = JobMock::new(script, Reply::Hang);
        let mut poller = JobPoller::new(
            get_request::<Full<Bytes>>(status_uri(), HeaderMap::new()),
            fireworks_json,
        )
        .seed(seed);
        poller.poll_until_done(&mut mock).await.unwrap();
        gaps(&mock.calls())
    }
    let waits = run(3).await;
    assert_eq!(waits.len(), 9);
    for (n, wait) in waits.iter().enumerate() {
        let nominal = Duration::from_secs(1u64 << n).min(Duration::from_secs(30));
        assert!(
            *wait >= nominal / 2 && *wait <= nominal,
            "wait {n} = {wait:?}, nominal {nominal:?}"
        );
    }
    assert_eq!(run(3).await, waits, "a seed makes the jitter reproducible");
    assert_ne!(run(4).await, waits);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_tolerated_and_the_count_restarts_after_a_success() {
    let mut mock = JobMock::new(
        [
            Reply::Json(RUNNING),
            Reply::Fail(io::ErrorKind::ConnectionRefused),
            Reply::Status(503, &[], "Service Overloaded"),
            Reply::Json(RUNNING),
            Reply::Fail(io::ErrorKind::ConnectionReset),
            Reply::Status(502, &[], ""),
            Reply::Json(COMPLETED),
        ],
        Reply::Hang,
    );
    let mut statuses = 0;
    let mut poller = exact_poller()
        .max_consecutive_failures(3)
        .on_progress(|_: &JobStatus| statuses += 1);
    let status = poller.poll_until_done(&mut mock).await.unwrap();
    drop(poller);
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!(mock.count(), 7);
    assert_eq!(statuses, 3, "failed polls report no status");
    assert_eq!(
        gaps(&mock.calls()),
        secs(&[1, 2, 4, 4, 4, 4]),
        "failures do not reset the interval growth"
    );
}

#[tokio::test(start_paused = true)]
async fn too_many_failures_in_a_row_end_the_wait_with_the_last_one() {
    let mut mock = JobMock::new(
        [
            Reply::Json(RUNNING),
            Reply::Status(503, &[], ""),
            Reply::Fail(io::ErrorKind::ConnectionRefused),
            Reply::Fail(io::ErrorKind::ConnectionRefused),
        ],
        Reply::Json(COMPLETED),
    );
    let err = exact_poller()
        .max_consecutive_failures(3)
        .poll_until_done(&mut mock)
        .await
        .unwrap_err();
    let (failures, connect) = match err.kind() {
        JobErrorKind::TooManyFailures {
            failures,
            last: PollFailure::Error(e),
        } => (*failures, e.is_connect()),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        (failures, connect),
        (3, true),
        "the last failure never reached the server"
    );
    assert!(
        err.resumable(),
        "the job may well be fine: waiting again can help"
    );
    assert_eq!(err.polls(), 4);
    assert_eq!(err.last_status().map(|s| s.state), Some(JobState::Running));
    assert!(std::error::Error::source(&err).is_some());
    assert!(err
        .to_string()
        .starts_with("3 job status polls failed in a row"));

    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(mock.count(), 4, "nothing polls after giving up");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_wait_as_soon_as_no_further_poll_fits() {
    let mut mock = JobMock::new([], Reply::Json(RUNNING));
    let start = Instant::now();
    let err = exact_poller()
        .deadline(Duration::from_secs(10))
        .poll_until_done(&mut mock)
        .await
        .unwrap_err();
    assert!(err.is_deadline() && err.resumable());
    assert_eq!(err.last_status().map(|s| s.state), Some(JobState::Running));
    // Polls at 0, 1, 3 and 7 s; the next would be at 11 s, past the deadline: stop at 7 s.
    assert_eq!(err.polls(), 4);
    assert_eq!(Instant::now() - start, Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_poll_in_flight_and_travels_with_every_poll() {
    let mut mock = JobMock::new([Reply::Json(RUNNING)], Reply::Hang);
    let start = Instant::now();
    let err = exact_poller()
        .deadline(Duration::from_secs(5))
        .poll_until_done(&mut mock)
        .await
        .unwrap_err();
    assert!(err.is_deadline());
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(5),
        "exactly at the deadline"
    );
    assert_eq!(mock.in_flight(), 0, "the hanging poll was dropped");
    let deadlines: Vec<_> = mock.calls().iter().map(|c| c.deadline).collect();
    let expected = Some(Deadline::at(start + Duration::from_secs(5)));
    assert_eq!(
        deadlines,
        [expected, expected],
        "each poll carries the wait's deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_hint_stretches_the_next_wait() {
    let mut mock = JobMock::new(
        [
            Reply::Status(503, &[("retry-after", "7")], ""),
            Reply::Status(429, &[("retry-after-ms", "2500")], ""),
            Reply::Json(COMPLETED),
        ],
        Reply::Hang,
    );
    exact_poller().poll_until_done(&mut mock).await.unwrap();
    assert_eq!(
        gaps(&mock.calls()),
        [Duration::from_secs(7), Duration::from_millis(2500)],
        "the hint when longer than the schedule's 1 s and 2 s"
    );
}

/// The long-running-operation pattern: `200`/`202` with the job still running and a
/// `Retry-After` saying when to look again. The hint stretches the next wait there too.
#[tokio::test(start_paused = true)]
async fn a_hint_on_a_successful_answer_stretches_the_next_wait() {
    let mut mock = JobMock::new(
        [
            Reply::Status(202, &[("retry-after", "20")], RUNNING),
            Reply::Status(200, &[("retry-after-ms", "1500")], RUNNING),
            Reply::Json(COMPLETED),
        ],
        Reply::Hang,
    );
    exact_poller().poll_until_done(&mut mock).await.unwrap();
    assert_eq!(
        gaps(&mock.calls()),
        [Duration::from_secs(20), Duration::from_secs(2)],
        "the hint when longer than the schedule's 1 s; the schedule's 2 s when longer"
    );
}

/// A rejection's body over the limit is cut at the limit, not emptied: the server's
/// explanation starts it.
#[tokio::test(start_paused = true)]
async fn a_rejection_over_the_body_limit_keeps_its_first_bytes() {
    let mut mock = JobMock::new(
        [Reply::Status(
            404,
            &[],
            r#"{"error":{"message":"Batch job not found: it was deleted"}}"#,
        )],
        Reply::Hang,
    );
    let err = exact_poller()
        .max_body_bytes(16)
        .poll_until_done(&mut mock)
        .await
        .unwrap_err();
    match err.kind() {
        JobErrorKind::Rejected { status, body } => {
            assert_eq!(*status, StatusCode::NOT_FOUND);
            assert_eq!(&body[..], b"{\"error\":{\"messa", "16 bytes");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Statuses are judged as the retry layer judges them (`classify::Standard`): the server's
/// `x-should-retry: true` makes a poll transient, and its `false` on a guide status does not
/// end a wait (the next poll comes much later than a retry would).
#[tokio::test(start_paused = true)]
async fn polls_read_x_should_retry_as_the_retry_layer_does() {
    let mut mock = JobMock::new(
        [
            Reply::Status(409, &[("x-should-retry", "true")], "busy"),
            Reply::Status(503, &[("x-should-retry", "false")], "overloaded"),
        ],
        Reply::Json(COMPLETED),
    );
    let status = exact_poller().poll_until_done(&mut mock).await.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!(mock.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn answers_another_poll_cannot_fix_end_the_wait_at_once() {
    let mut mock = JobMock::new(
        [
            Reply::Json(RUNNING),
            Reply::Status(404, &[], r#"{"error":{"message":"Batch job not found"}}"#),
        ],
        Reply::Json(COMPLETED),
    );
    let err = exact_poller().poll_until_done(&mut mock).await.unwrap_err();
    match err.kind() {
        JobErrorKind::Rejected { status, body } => {
            assert_eq!(*status, StatusCode::NOT_FOUND);
            assert!(body.starts_with(b"{\"error\""));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.resumable());
    assert_eq!((err.polls(), mock.count()), (2, 2));

    let mut mock = JobMock::new([Reply::Json("<html>Bad gateway</html>")], Reply::Hang);
    let err = exact_poller().poll_until_done(&mut mock).await.unwrap_err();
    assert!(matches!(
        err.into_kind(),
        JobErrorKind::Interpret(JsonStatusError::NotAnObject)
    ));

    let mut mock = JobMock::new([Reply::Json(RUNNING)], Reply::Hang);
    let err: JobError<JsonStatusError> = exact_poller()
        .max_body_bytes(16)
        .poll_until_done(&mut mock)
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        JobErrorKind::BodyTooLarge { limit: 16 }
    ));
}

#[tokio::test(start_paused = true)]
async fn failed_and_cancelled_jobs_end_the_wait_unknown_states_do_not() {
    for (body, state) in [
        (r#"{"state":"JOB_STATE_FAILED"}"#, JobState::Failed),
        (r#"{"state":"JOB_STATE_EXPIRED"}"#, JobState::Failed),
        (r#"{"state":"JOB_STATE_CANCELLED"}"#, JobState::Cancelled),
    ] {
        let mut mock = JobMock::new([Reply::Json(body)], Reply::Hang);
        let status = exact_poller().poll_until_done(&mut mock).await.unwrap();
        assert_eq!(
            status.state, state,
            "a job that ended is a wait that succeeded"
        );
    }
    let mut mock = JobMock::new(
        [
            Reply::Json(r#"{"state":"JOB_STATE_SOMETHING_NEW"}"#),
            Reply::Json(COMPLETED),
        ],
        Reply::Hang,
    );
    let status = exact_poller().poll_until_done(&mut mock).await.unwrap();
    assert_eq!((status.state, mock.count()), (JobState::Succeeded, 2));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_resumes_where_the_job_is() {
    // A job that completes 20 s from now, whoever is watching.
    let mut mock = JobMock::clock(Duration::from_secs(20));
    let start = Instant::now();

    // The first wait is cut after 6 s (a cancelled task, a crash): polls at 0, 1, 3 s.
    let first = tokio::time::timeout(
        Duration::from_secs(6),
        exact_poller().poll_until_done(&mut mock),
    )
    .await;
    assert!(first.is_err(), "still waiting when dropped");
    assert_eq!(mock.count(), 3);

    // Down for a while: nothing polls.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!((mock.count(), mock.in_flight()), (3, 0));

    // A new poller for the same job (as a restarted process builds it from the job's id).
    let status = exact_poller().poll_until_done(&mut mock).await.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    let resumed: Vec<_> = mock.calls()[3..].iter().map(|c| c.at - start).collect();
    assert_eq!(
        resumed,
        secs(&[10, 11, 13, 17, 21]),
        "polls at once on resuming, then on a fresh schedule, until the job is done"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_wait_leaves_nothing_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();

    // Dropped while a poll is in flight.
    let mut mock = JobMock::new([Reply::Json(RUNNING)], Reply::Hang);
    {
        let mut poller = exact_poller();
        let wait = poller.poll_until_done(&mut mock);
        let cut = tokio::time::timeout(Duration::from_secs(3), wait).await;
        assert!(cut.is_err());
    }
    assert_eq!(mock.count(), 2);
    assert_eq!(
        mock.in_flight(),
        0,
        "the request future was dropped with the wait"
    );

    // Dropped while sleeping between polls.
    let mut sleeping = JobMock::new([], Reply::Json(RUNNING));
    let cut = tokio::time::timeout(
        Duration::from_millis(1500),
        exact_poller().poll_until_done(&mut sleeping),
    )
    .await;
    assert!(cut.is_err());
    assert_eq!(sleeping.count(), 2);

    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        (mock.count(), sleeping.count()),
        (2, 2),
        "no poll after the drop"
    );
    assert_eq!(metrics.num_alive_tasks(), 0, "no task was spawned");
}

#[tokio::test(start_paused = true)]
async fn the_preset_absorbs_what_it_can_and_the_poller_tolerates_the_rest() {
    let mock = JobMock::new(
        [
            Reply::Status(503, &[], ""),
            Reply::Json(RUNNING),
            Reply::Status(503, &[], ""),
            Reply::Status(503, &[], ""),
            Reply::Json(COMPLETED),
        ],
        Reply::Hang,
    );
    let preset = fireworks::layer(Workload::BatchSubmit)
        .retry(RetryOnStatus::default().max_attempts(2))
        .backoff(JitteredBackoff::default().jitter(Jitter::None));
    let mut service = tower::ServiceBuilder::new()
        .layer(preset)
        .service(mock.clone());
    let start = Instant::now();
    let mut seen = 0;
    let mut poller = exact_poller()
        .deadline(Duration::from_secs(30))
        .max_consecutive_failures(2)
        .on_progress(|_: &JobStatus| seen += 1);
    let status = poller.poll_until_done(&mut service).await.unwrap();
    drop(poller);
    assert_eq!(status.state, JobState::Succeeded);
    // Poll 1: 503, retried by the stack after 1 s: RUNNING. Poll 2 (1 s later): 503 twice,
    // handed back by the stack: one failure for the poller. Poll 3 (2 s later): COMPLETED.
    let at: Vec<_> = mock.calls().iter().map(|c| c.at - start).collect();
    assert_eq!(at, secs(&[0, 1, 2, 3, 5]));
    assert_eq!(seen, 2);
    // The stack saw the wait's deadline (30 s), earlier than its own (60 s for BatchSubmit).
    let deadline = mock.calls()[0].deadline.map(|d| d.instant() - start);
    assert_eq!(deadline, Some(Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn the_nearer_of_the_waits_and_the_stacks_deadline_reaches_the_layers() {
    // A distant wait deadline (the default 24 h) must not hide BatchSubmit's 60 s.
    let mock = JobMock::new([Reply::Json(COMPLETED)], Reply::Hang);
    let mut service = tower::ServiceBuilder::new()
        .layer(fireworks::layer(Workload::BatchSubmit))
        .service(mock.clone());
    let start = Instant::now();
    let poller = JobPoller::new(
        get_request::<Full<Bytes>>(status_uri(), HeaderMap::new()),
        fireworks_json,
    );
    poller.clone().poll_until_done(&mut service).await.unwrap();
    let seen = mock.calls()[0].deadline.map(|d| d.instant() - start);
    assert_eq!(seen, Some(Duration::from_secs(60)));

    // A deadline the caller put in the request is tightened to the wait's, never loosened.
    for (own, expected) in [(3600, 5), (2, 2)] {
        let mock = JobMock::new([Reply::Json(COMPLETED)], Reply::Hang);
        let start = Instant::now();
        let make_request = move || {
            let mut request = Request::new(Full::<Bytes>::default());
            *request.uri_mut() = status_uri();
            request
                .extensions_mut()
                .insert(Deadline::after(Duration::from_secs(own)));
            request
        };
        JobPoller::new(make_request, fireworks_json)
            .deadline(Duration::from_secs(5))
            .poll_until_done(&mut mock.clone())
            .await
            .unwrap();
        let seen = mock.calls()[0].deadline.map(|d| d.instant() - start);
        assert_eq!(seen, Some(Duration::from_secs(expected)), "own {own} s");
    }
}

// ---- End to end: hyper-util, the preset, FireworksServer -------------------------------------

mod e2e {
    use super::*;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};
    use http_body_util::BodyExt;
    use hyper_util::{
        client::legacy::{connect::HttpConnector, Client},
        rt::TokioExecutor,
    };
    use tower::ServiceExt;
    use tower_reliability::{
        fireworks::{FireworksLayer, FireworksService},
        retry::ReplayBody,
        testing::{Fault, FireworksServer, ServerConfig, DEFAULT_API_KEY, DEFAULT_MODEL},
    };

    type Stack = FireworksService<Client<HttpConnector, ReplayBody<Full<Bytes>>>>;

    /// The preset for batch work, with millisecond backoff so the test runs fast.
    fn preset() -> FireworksLayer {
        fireworks::layer(Workload::BatchSubmit)
            .backoff(crate::common::fast_backoff(Jitter::Full, 5).spread(Duration::from_millis(5)))
    }

    fn stack(layer: FireworksLayer) -> Stack {
        let client = Client::builder(TokioExecutor::new()).build_http();
        tower::ServiceBuilder::new().layer(layer).service(client)
    }

    fn auth(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
        headers
    }

    /// Creates a job through `service`; returns its status URI.
    async fn submit(server: &FireworksServer, service: &mut Stack) -> Uri {
        let body = serde_json::json!({"model": DEFAULT_MODEL, "inputDatasetId": "prompts"});
        let mut request = Request::post(server.batch_jobs_url("acme"))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        *request.headers_mut() = {
            let mut headers = auth(DEFAULT_API_KEY);
            headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
            headers
        };
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let job: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(job["state"], "JOB_STATE_PENDING");
        let name = job["name"].as_str().unwrap();
        assert!(name.starts_with("accounts/acme/batchJobs/"), "{name}");
        Uri::try_from(format!("{}/v1/{name}", server.base_url())).unwrap()
    }

    fn fast_poller(
        uri: Uri,
        key: &str,
    ) -> JobPoller<impl Fn() -> Request<Full<Bytes>> + Clone, Interpret> {
        JobPoller::new(
            get_request::<Full<Bytes>>(uri, auth(key)),
            fireworks_json as Interpret,
        )
        .first_interval(Duration::from_millis(40))
        .max_interval(Duration::from_millis(120))
        .deadline(Duration::from_secs(20))
    }

    #[tokio::test]
    async fn submit_then_poll_to_completion_through_injected_faults() {
        let server = FireworksServer::start(ServerConfig::default())
            .await
            .unwrap();
        server.set_job_duration(Duration::from_millis(600));
        let mut service = stack(preset());

        server.push_script([Fault::Status(503)]);
        let uri = submit(&server, &mut service).await;
        assert_eq!(server.stats().count(503), 1, "the create call was retried");

        // Faults for the polls: the stack retries each one inside a single poll.
        server.push_script([
            Fault::Status(503),
            Fault::ResetBeforeResponse,
            Fault::None,
            Fault::StatusWithHeaders(429, vec![("retry-after-ms".into(), "50".into())]),
            Fault::ResetBeforeResponse,
        ]);
        let mut progress = Vec::new();
        let mut poller = fast_poller(uri.clone(), DEFAULT_API_KEY)
            .on_progress(|s: &JobStatus| progress.push((s.state, s.progress)));
        let status = poller.poll_until_done(&mut service).await.unwrap();
        drop(poller);

        assert_eq!(status.state, JobState::Succeeded);
        assert_eq!(status.progress, Some(100.0));
        assert_eq!(server.script_len(), 0, "every fault was used");
        let stats = server.stats();
        assert_eq!(stats.count(503), 2);
        assert_eq!(stats.count(429), 1);
        assert_eq!(stats.connections_reset, 2);
        assert!(stats.path_count(uri.path()) as usize >= progress.len() + 4);
        let percents: Vec<f64> = progress.iter().filter_map(|(_, p)| *p).collect();
        assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
        assert_eq!(progress.last(), Some(&(JobState::Succeeded, Some(100.0))));
        assert!(
            progress.iter().any(|(s, _)| *s == JobState::Running),
            "{progress:?}"
        );
    }

    #[tokio::test]
    async fn failures_that_outlive_the_stacks_retries_are_the_pollers_to_tolerate() {
        let server = FireworksServer::start(ServerConfig::default())
            .await
            .unwrap();
        server.set_job_duration(Duration::from_millis(200));
        // One attempt per poll: every fault reaches the poller.
        let mut service = stack(preset().retry(RetryOnStatus::default().max_attempts(1)));
        let uri = submit(&server, &mut service).await;

        server.push_script([Fault::Status(502), Fault::ResetBeforeResponse]);
        let status = fast_poller(uri.clone(), DEFAULT_API_KEY)
            .max_consecutive_failures(3)
            .poll_until_done(&mut service)
            .await
            .unwrap();
        assert_eq!(status.state, JobState::Succeeded);

        server.push_script([Fault::Status(503), Fault::Status(503)]);
        let err = fast_poller(uri, DEFAULT_API_KEY)
            .max_consecutive_failures(2)
            .poll_until_done(&mut service)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                JobErrorKind::TooManyFailures {
                    failures: 2,
                    last: PollFailure::Status(StatusCode::SERVICE_UNAVAILABLE)
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_wrong_key_or_an_unknown_job_is_rejected_after_one_request() {
        let server = FireworksServer::start(ServerConfig::default())
            .await
            .unwrap();
        let mut service = stack(preset());
        let uri = submit(&server, &mut service).await;
        server.reset_stats();

        let err = fast_poller(uri.clone(), "wrong-key")
            .poll_until_done(&mut service)
            .await
            .unwrap_err();
        match err.kind() {
            JobErrorKind::Rejected { status, body } => {
                assert_eq!(*status, StatusCode::UNAUTHORIZED);
                assert!(String::from_utf8_lossy(body).contains("invalid_api_key"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let unknown = Uri::try_from(format!(
            "{}/v1/accounts/acme/batchJobs/nope",
            server.base_url()
        ))
        .unwrap();
        let err = fast_poller(unknown, DEFAULT_API_KEY)
            .poll_until_done(&mut service)
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), JobErrorKind::Rejected { status, .. } if *status == StatusCode::NOT_FOUND)
        );
        let stats = server.stats();
        assert_eq!(
            (stats.requests, stats.count(401), stats.count(404)),
            (2, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_wait_in_an_aborted_task_resumes_over_the_wire() {
        let server = FireworksServer::start(ServerConfig::default())
            .await
            .unwrap();
        server.set_job_duration(Duration::from_secs(1));
        let mut service = stack(preset());
        let uri = submit(&server, &mut service).await;

        // The wait runs in its own task (so its future is `Send + 'static`), which is aborted
        // mid-job.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut poller = fast_poller(uri.clone(), DEFAULT_API_KEY)
            .on_progress(move |s: &JobStatus| record.lock().unwrap().push(s.state));
        let mut polls = service.clone();
        let task = tokio::spawn(async move { poller.poll_until_done(&mut polls).await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let before = seen.lock().unwrap().clone();
        assert!(!before.is_empty(), "it polled");
        assert!(!before.iter().any(|s| s.is_terminal()), "{before:?}");

        let status = fast_poller(uri, DEFAULT_API_KEY)
            .poll_until_done(&mut service)
            .await
            .unwrap();
        assert_eq!(status.state, JobState::Succeeded);
        assert_eq!(
            *seen.lock().unwrap(),
            before,
            "the aborted wait reports nothing more"
        );
    }
}
