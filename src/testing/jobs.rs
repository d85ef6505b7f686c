//! `POST /v1/accounts/{account}/batchJobs` and `GET /v1/accounts/{account}/batchJobs/{id}`:
//! batch jobs that advance with time, for testing clients that submit work and poll for it.
//!
//! A job created at `t0` with duration `d` (the server's [job duration] when it was created) is
//! `JOB_STATE_PENDING` for the first fifth of `d`, then `JOB_STATE_RUNNING` with
//! `"progress": {"percent": N}` rising from 0 to 99, and `JOB_STATE_COMPLETED` with 100 from
//! `t0 + d` on. Its state is a pure function of the clock, so a client that stops polling and
//! comes back later finds it where it would be anyway, as with a real job.
//!
//! [job duration]: super::FireworksServer::set_job_duration

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{rejection::PathRejection, Path, State};
use axum::response::Response;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::answer::Answer;
use super::conn::ConnControl;
use super::errors::error_answer;
use super::pipeline::{self, Auth};
use super::state::{lock, Shared};

/// The batch job collection path (create).
pub(crate) const COLLECTION_PATH: &str = "/v1/accounts/{account}/batchJobs";
/// One batch job's path (status).
pub(crate) const JOB_PATH: &str = "/v1/accounts/{account}/batchJobs/{id}";

/// How long a job takes unless [`JobStore::set_duration`] says otherwise.
const DEFAULT_DURATION: Duration = Duration::from_secs(2);

/// The jobs created so far, and the duration of the next ones.
#[derive(Debug)]
pub(crate) struct JobStore {
    jobs: Mutex<HashMap<String, Job>>,
    duration: Mutex<Duration>,
    created: AtomicU64,
}

#[derive(Debug)]
struct Job {
    account: String,
    display_name: Option<String>,
    model: Option<String>,
    created: Instant,
    duration: Duration,
}

impl Default for JobStore {
    fn default() -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            duration: Mutex::new(DEFAULT_DURATION),
            created: AtomicU64::new(0),
        }
    }
}

impl JobStore {
    /// Sets how long jobs created from now on take.
    pub(crate) fn set_duration(&self, duration: Duration) {
        *lock(&self.duration) = duration;
    }

    fn create(&self, account: &str, display_name: Option<String>, model: Option<String>) -> Value {
        let n = self.created.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("batch-{n:08x}");
        let job = Job {
            account: account.to_owned(),
            display_name,
            model,
            created: Instant::now(),
            duration: *lock(&self.duration),
        };
        let document = job.document(&id, Duration::ZERO);
        lock(&self.jobs).insert(id, job);
        document
    }

    fn status(&self, account: &str, id: &str) -> Option<Value> {
        let jobs = lock(&self.jobs);
        let job = jobs.get(id).filter(|job| job.account == account)?;
        Some(job.document(id, job.created.elapsed()))
    }
}

impl Job {
    /// The job's document `elapsed` after its creation.
    fn document(&self, id: &str, elapsed: Duration) -> Value {
        let mut document = Map::new();
        let name = format!("accounts/{}/batchJobs/{id}", self.account);
        document.insert("name".into(), Value::String(name));
        if let Some(display_name) = &self.display_name {
            document.insert("displayName".into(), Value::String(display_name.clone()));
        }
        if let Some(model) = &self.model {
            document.insert("model".into(), Value::String(model.clone()));
        }
        let (state, percent) = stage(elapsed, self.duration);
        document.insert("state".into(), Value::String(state.into()));
        if let Some(percent) = percent {
            document.insert("progress".into(), json!({ "percent": percent }));
        }
        Value::Object(document)
    }
}

/// The state and progress of a job of `duration`, `elapsed` after its creation.
fn stage(elapsed: Duration, duration: Duration) -> (&'static str, Option<u64>) {
    if elapsed >= duration {
        return ("JOB_STATE_COMPLETED", Some(100));
    }
    let (elapsed, duration) = (elapsed.as_nanos(), duration.as_nanos());
    let pending = duration / 5;
    if elapsed < pending {
        return ("JOB_STATE_PENDING", None);
    }
    // Integer arithmetic, so the percent is exact: `duration > pending` here.
    let percent = (elapsed - pending) * 100 / (duration - pending);
    (
        "JOB_STATE_RUNNING",
        Some(u64::try_from(percent.min(99)).unwrap_or(99)),
    )
}

/// `POST /v1/accounts/{account}/batchJobs`: needs the API key and honours faults and the rate
/// limit like the chat endpoint.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(control): Extension<Arc<ConnControl>>,
    account: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Path(account) = match account {
        Ok(account) => account,
        Err(rejection) => return bad_path(&rejection),
    };
    pipeline::run(&shared, control, &headers, body, Auth::Required, |body| {
        create_answer(&shared, &account, &body)
    })
    .await
}

/// `400` in the error shape for a path axum cannot read (a segment that is not UTF-8 once
/// percent-decoded), instead of axum's plain-text rejection.
fn bad_path(rejection: &PathRejection) -> Response {
    let message = format!("The request path is not valid: {}", rejection.body_text());
    error_answer(StatusCode::BAD_REQUEST, &message, None).into_response(Duration::ZERO)
}

/// `400` for a body that is not JSON, `422` for one that is not an object, else the new job.
fn create_answer(shared: &Shared, account: &str, body: &[u8]) -> Answer {
    let request: Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("The request body is not valid JSON: {error}");
            return error_answer(StatusCode::BAD_REQUEST, &message, None);
        }
    };
    let Value::Object(request) = request else {
        let message = "The request body must be a JSON object.";
        return error_answer(StatusCode::UNPROCESSABLE_ENTITY, message, None);
    };
    let text = |key: &str| request.get(key).and_then(Value::as_str).map(str::to_owned);
    let document = shared
        .jobs
        .create(account, text("displayName"), text("model"));
    Answer::json(StatusCode::OK, &document)
}

/// `GET /v1/accounts/{account}/batchJobs/{id}`: needs the API key and honours faults and the
/// rate limit like the chat endpoint; `404` for a job this account does not have.
pub(crate) async fn status(
    State(shared): State<Arc<Shared>>,
    Extension(control): Extension<Arc<ConnControl>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Path((account, id)) = match path {
        Ok(path) => path,
        Err(rejection) => return bad_path(&rejection),
    };
    pipeline::run(
        &shared,
        control,
        &headers,
        body,
        Auth::Required,
        |_| match shared.jobs.status(&account, &id) {
            Some(document) => Answer::json(StatusCode::OK, &document),
            None => {
                let message = format!("Batch job not found: accounts/{account}/batchJobs/{id}");
                error_answer(StatusCode::NOT_FOUND, &message, Some("NOT_FOUND"))
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_advance_with_time() {
        let d = Duration::from_secs(10);
        let at = |ms| stage(Duration::from_millis(ms), d);
        assert_eq!(at(0), ("JOB_STATE_PENDING", None));
        assert_eq!(at(1_999), ("JOB_STATE_PENDING", None));
        assert_eq!(at(2_000), ("JOB_STATE_RUNNING", Some(0)));
        assert_eq!(at(6_000), ("JOB_STATE_RUNNING", Some(50)));
        assert_eq!(at(9_999), ("JOB_STATE_RUNNING", Some(99)));
        assert_eq!(at(10_000), ("JOB_STATE_COMPLETED", Some(100)));
        assert_eq!(
            stage(Duration::ZERO, Duration::ZERO).0,
            "JOB_STATE_COMPLETED"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_belong_to_their_account() {
        let store = JobStore::default();
        store.set_duration(Duration::from_secs(5));
        let created = store.create("me", Some("nightly".into()), None);
        assert_eq!(created["name"], "accounts/me/batchJobs/batch-00000001");
        assert_eq!(created["state"], "JOB_STATE_PENDING");
        assert_eq!(created["displayName"], "nightly");
        assert!(store.status("you", "batch-00000001").is_none());
        assert!(store.status("me", "batch-00000002").is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        let done = store.status("me", "batch-00000001");
        assert_eq!(
            done.map(|d| d["state"].clone()),
            Some("JOB_STATE_COMPLETED".into())
        );
    }
}
