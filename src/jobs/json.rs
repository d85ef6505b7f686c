//! [`fireworks_json`]: the ready-made interpreter for Fireworks-style job documents.
//!
//! Why not a naive substring search: `"state"` may appear inside another string or a nested
//! object, keys come in any order with any whitespace, and strings carry escapes. So this reads
//! the top-level object properly with `serde_json` (`crate::json`), skipping every member it
//! does not need without building it.

use std::{borrow::Cow, fmt};

use bytes::Bytes;
use http::response::Parts;
use serde_json::value::RawValue;

use super::status::{JobState, JobStatus};
use crate::json;

/// Reads a job-status document shaped like Fireworks' (`GET
/// /v1/accounts/{account}/batchInferenceJobs/{id}` and friends) into a [`JobStatus`].
///
/// It reads only these members of the top-level object, in any order, with any whitespace:
///
/// - `"state"`: a string such as `"JOB_STATE_RUNNING"`, mapped by [`JobState::from_name`]; when
///   it is absent or not a string, a string `"status"` is used instead (OpenAI's batch API names
///   it so; Fireworks' own `"status"` is an object and is ignored);
/// - progress in percent: `"progress": {"percent": N}`, `"progress": N`, or Fireworks'
///   `"jobProgress": {"percent": N}`, the first found in that order of names. A progress that is
///   not a finite number is ignored.
///
/// Limits, by design: members of nested objects other than the progress object are not read;
/// a member given twice counts as given once, by its last occurrence; the document's other
/// parts are skipped (checked as JSON, not built). The body is kept in [`JobStatus::body`] for whatever else
/// you need from it.
///
/// Errors: the body is not one complete JSON object (nothing but whitespace after it), or it
/// names no state.
///
/// ```
/// use bytes::Bytes;
/// use tower_reliability::jobs::{fireworks_json, JobState};
///
/// let (parts, ()) = http::Response::new(()).into_parts();
/// let body = Bytes::from_static(br#"{ "progress": {"percent": 40},
///     "name": "accounts/me/batchInferenceJobs/b1", "state": "JOB_STATE_RUNNING" }"#);
/// let status = fireworks_json(&parts, &body)?;
/// assert_eq!(status.state, JobState::Running);
/// assert_eq!(status.raw_state, "JOB_STATE_RUNNING");
/// assert_eq!(status.progress, Some(40.0));
/// # Ok::<(), tower_reliability::jobs::JsonStatusError>(())
/// ```
pub fn fireworks_json(parts: &Parts, body: &Bytes) -> Result<JobStatus, JsonStatusError> {
    let _ = parts;
    let mut state = None;
    let mut status = None;
    let mut progress = None;
    let mut job_progress = None;
    // The last occurrence of a member counts; a value of another type says nothing usable.
    json::members(
        body,
        &["state", "status", "progress", "jobProgress"],
        |index, raw| match index {
            0 => state = json::string(raw).map(Cow::into_owned),
            1 => status = json::string(raw).map(Cow::into_owned),
            2 if json::is_object(raw) => progress = percent(raw),
            2 => progress = json::number(raw),
            _ => job_progress = json::is_object(raw).then(|| percent(raw)).flatten(),
        },
    )
    .ok_or(JsonStatusError::NotAnObject)?;
    let raw_state = state.or(status).ok_or(JsonStatusError::NoState)?;
    let mut job =
        JobStatus::new(JobState::from_name(&raw_state), raw_state).with_body(body.clone());
    job.progress = progress.or(job_progress);
    Ok(job)
}

/// The `percent` member of an object, if its last occurrence is a finite number.
fn percent(object: &RawValue) -> Option<f64> {
    let mut found = None;
    json::members(object.get().as_bytes(), &["percent"], |_, raw| {
        found = json::number(raw);
    })?;
    found
}

/// Why [`fireworks_json`] could not read a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonStatusError {
    /// The body is not one complete JSON object.
    NotAnObject,
    /// The object has no string `state` (or `status`) member.
    NoState,
}

impl fmt::Display for JsonStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonStatusError::NotAnObject => "job status body is not a complete JSON object",
            JsonStatusError::NoState => "job status body names no state",
        })
    }
}

impl std::error::Error for JsonStatusError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<JobStatus, JsonStatusError> {
        let (parts, ()) = http::Response::new(()).into_parts();
        fireworks_json(&parts, &Bytes::copy_from_slice(body.as_bytes()))
    }

    #[test]
    fn state_and_progress_in_any_order_and_spacing() {
        let a = read(r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":12.5}}"#).unwrap();
        let b = read("{\n  \"progress\" : { \"other\": [1, \"percent\"], \"percent\" : 12.5 } ,\n\t\"state\" :\"JOB_STATE_RUNNING\" }\n").unwrap();
        assert_eq!((a.state, a.progress), (JobState::Running, Some(12.5)));
        assert_eq!((b.state, b.progress), (JobState::Running, Some(12.5)));
        assert_eq!(a.raw_state, "JOB_STATE_RUNNING");
    }

    /// The last occurrence of a member wins inside the progress object too, as in serde_json:
    /// a later non-number `percent` says nothing usable.
    #[test]
    fn a_repeated_percent_counts_its_last_occurrence() {
        let s = |body: &str| read(body).unwrap().progress;
        let running = r#""state":"JOB_STATE_RUNNING""#;
        assert_eq!(
            s(&format!(
                r#"{{{running},"progress":{{"percent":50,"percent":"unknown"}}}}"#
            )),
            None
        );
        assert_eq!(
            s(&format!(
                r#"{{{running},"progress":{{"percent":50,"percent":[1]}}}}"#
            )),
            None
        );
        assert_eq!(
            s(&format!(
                r#"{{{running},"progress":{{"percent":50,"percent":null}}}}"#
            )),
            None
        );
        assert_eq!(
            s(&format!(
                r#"{{{running},"progress":{{"percent":"x","percent":70}}}}"#
            )),
            Some(70.0)
        );
    }

    #[test]
    fn decoys_in_nested_values_are_not_read() {
        let s = read(
            r#"{"name":"\"state\":\"JOB_STATE_FAILED\"","meta":{"state":"JOB_STATE_FAILED","progress":9},
                "state":"JOB_STATE_PENDING"}"#,
        )
        .unwrap();
        assert_eq!(s.state, JobState::Pending);
        assert_eq!(s.progress, None);
    }

    #[test]
    fn fireworks_and_openai_shapes() {
        let fw = read(
            r#"{"state":"JOB_STATE_COMPLETED","status":{"code":"OK","message":""},"jobProgress":{"percent":100,"epoch":1}}"#,
        )
        .unwrap();
        assert_eq!((fw.state, fw.progress), (JobState::Succeeded, Some(100.0)));
        let openai = read(r#"{"id":"batch_1","status":"in_progress","progress":55}"#).unwrap();
        assert_eq!(
            (openai.state, openai.raw_state.as_str(), openai.progress),
            (JobState::Running, "in_progress", Some(55.0))
        );
        let unknown =
            read(r#"{"state":"JOB_STATE_NEW_THING","progress":{"percent":null}}"#).unwrap();
        assert_eq!((unknown.state, unknown.progress), (JobState::Unknown, None));
        let odd =
            read(r#"{"state":"RUNNING","progress":"12","jobProgress":{"percent":"x"}}"#).unwrap();
        assert_eq!(odd.progress, None);
        let huge = read(r#"{"progress":1e999,"state":"RUNNING","jobProgress":{"percent":-1e999}}"#)
            .unwrap();
        assert_eq!((huge.state, huge.progress), (JobState::Running, None));
    }

    /// Regression: a body that is not one JSON object (bad grammar in a member that is not
    /// read, or something after the object) is an error, as `serde_json` says; the hand-written
    /// scanner skipped such parts unvalidated and read a state from them.
    #[test]
    fn a_body_that_is_not_one_json_object_is_refused_wherever_it_is_broken() {
        for bad in [
            r#"{"x":tru,"state":"JOB_STATE_RUNNING"}"#,
            r#"{"x":[1,}],"state":"JOB_STATE_RUNNING"}"#,
            r#"{"state":"JOB_STATE_RUNNING"} <html>"#,
            r#"{"state":"JOB_STATE_RUNNING"}{"state":"JOB_STATE_FAILED"}"#,
        ] {
            assert_eq!(
                read(bad).unwrap_err(),
                JsonStatusError::NotAnObject,
                "{bad}"
            );
        }
        assert_eq!(
            read("\u{feff}{\"state\":\"JOB_STATE_RUNNING\"}\r\n")
                .unwrap()
                .state,
            JobState::Running
        );
    }

    #[test]
    fn keeps_the_body() {
        let body = r#"{"state":"JOB_STATE_FAILED","status":{"message":"bad input"}}"#;
        let s = read(body).unwrap();
        assert_eq!(s.state, JobState::Failed);
        assert_eq!(&s.body[..], body.as_bytes());
    }

    #[test]
    fn errors_are_errors_not_panics() {
        assert_eq!(read("").unwrap_err(), JsonStatusError::NotAnObject);
        assert_eq!(
            read("<html>502</html>").unwrap_err(),
            JsonStatusError::NotAnObject
        );
        assert_eq!(
            read(r#"{"state":"JOB_STATE_RUNNING""#).unwrap_err(),
            JsonStatusError::NotAnObject
        );
        assert_eq!(
            read(r#"{"state":3}"#).unwrap_err(),
            JsonStatusError::NoState
        );
        assert_eq!(
            read(r#"{"status":{"code":"OK"}}"#).unwrap_err(),
            JsonStatusError::NoState
        );
        let full =
            r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":1e2},"x":[{"y":"\u00e9"}]}"#;
        for end in 0..full.len() {
            assert!(read(&full[..end]).is_err(), "prefix {end} read as complete");
        }
        assert!(read(full).is_ok());
    }
}
