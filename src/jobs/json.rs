//! [`fireworks_json`]: the ready-made interpreter for Fireworks-style job documents.
//!
//! Why not a JSON library: the crate's core depends on none, and a poller must not pull one in
//! for two fields. Why not a naive substring search: `"state"` may appear inside another string
//! or a nested object, keys come in any order with any whitespace, and strings carry escapes. So
//! this reads the top-level object properly, with a small total scanner, and skips everything
//! it does not need.

use std::fmt;

use bytes::Bytes;
use http::response::Parts;

use super::status::{JobState, JobStatus};
use crate::json::Cursor;

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
/// parts are skipped, not validated. The body is kept in [`JobStatus::body`] for whatever else
/// you need from it.
///
/// Errors: the body is not a complete JSON object, or it names no state.
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
    let mut cursor = Cursor::new(body);
    cursor
        .object(|key, cursor| {
            match key {
                "state" if cursor.at(b'"') => state = Some(cursor.string()?.into_owned()),
                "status" if cursor.at(b'"') => status = Some(cursor.string()?.into_owned()),
                "progress" if cursor.at(b'{') => progress = percent(cursor)?,
                "progress" if !cursor.at(b'"') && !cursor.at(b'[') => {
                    progress = cursor.number();
                    if progress.is_none() {
                        return Some(false);
                    }
                }
                "jobProgress" if cursor.at(b'{') => job_progress = percent(cursor)?,
                // A member given again with a value of another type: the last occurrence
                // counts, and it says nothing usable.
                "state" => {
                    state = None;
                    return Some(false);
                }
                "status" => {
                    status = None;
                    return Some(false);
                }
                "progress" => {
                    progress = None;
                    return Some(false);
                }
                "jobProgress" => {
                    job_progress = None;
                    return Some(false);
                }
                _ => return Some(false),
            }
            Some(true)
        })
        .ok_or(JsonStatusError::NotAnObject)?;
    let raw_state = state.or(status).ok_or(JsonStatusError::NoState)?;
    let mut job =
        JobStatus::new(JobState::from_name(&raw_state), raw_state).with_body(body.clone());
    job.progress = progress.or(job_progress);
    Ok(job)
}

/// The `percent` member of the object that comes next, if it is a finite number; the whole
/// object is consumed. `None` (outer) when the object cannot be read.
fn percent(cursor: &mut Cursor<'_>) -> Option<Option<f64>> {
    let mut found = None;
    cursor.object(|key, cursor| {
        if key != "percent" {
            return Some(false);
        }
        // The last occurrence counts: a later `percent` that is not a number clears an earlier
        // one (and is skipped by the caller).
        if cursor.at(b'"') || cursor.at(b'{') || cursor.at(b'[') {
            found = None;
            return Some(false);
        }
        found = cursor.number();
        // A non-number scalar (`null`) was not consumed: let the caller skip it.
        Some(found.is_some())
    })?;
    Some(found)
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
