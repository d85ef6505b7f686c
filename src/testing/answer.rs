//! [`Answer`]: what an endpoint decided to send, and [`render`], which sends it shaped by the
//! request's body fault (delayed, slowed, stalled or broken off).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;

use super::body::{BodyEnd, PacedBody};
use super::conn::ConnControl;
use super::faults::Fault;
use super::meter::GeneratedMeter;
use super::state::Shared;

/// The size of the chunks a non-streaming body is cut into when a fault shapes it.
const JSON_CHUNK: usize = 32;

/// An answer before it is sent.
#[derive(Debug)]
pub(crate) struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: AnswerBody,
    /// How many token intervals producing a non-streaming body takes (for `SlowStream`).
    steps: u32,
    /// The generated tokens to charge as the body is produced: all at once for a JSON body
    /// (when it is sent), one per event for a stream.
    meter: Option<GeneratedMeter>,
}

#[derive(Debug)]
enum AnswerBody {
    Full(Bytes),
    Events(Vec<Bytes>),
}

impl Answer {
    /// A JSON document with this status.
    pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            status,
            headers,
            body: AnswerBody::Full(Bytes::from(value.to_string())),
            steps: 1,
            meter: None,
        }
    }

    /// A `200` stream of server-sent events, each already framed (`data: ...\n\n`).
    pub(crate) fn events(events: Vec<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Self {
            status: StatusCode::OK,
            headers,
            body: AnswerBody::Events(events),
            steps: 1,
            meter: None,
        }
    }

    /// Sets how many token intervals generating this answer takes.
    pub(crate) fn steps(mut self, steps: usize) -> Self {
        self.steps = u32::try_from(steps).unwrap_or(u32::MAX).max(1);
        self
    }

    /// Charges the generated tokens of this answer as it is produced.
    pub(crate) fn meter(mut self, meter: GeneratedMeter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Adds these headers, replacing any of the same name.
    pub(crate) fn headers(mut self, headers: &HeaderMap) -> Self {
        for (name, value) in headers {
            self.headers.insert(name.clone(), value.clone());
        }
        self
    }

    /// Adds headers given as text: the first of a name replaces a default header, later ones of
    /// the same name are appended; invalid names or values are skipped.
    pub(crate) fn text_headers(mut self, headers: &[(String, String)]) -> Self {
        let mut seen: Vec<HeaderName> = Vec::new();
        for (name, value) in headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                continue;
            };
            if seen.contains(&name) {
                self.headers.append(name, value);
            } else {
                self.headers.insert(name.clone(), value);
                seen.push(name);
            }
        }
        self
    }

    /// Sends the answer as it is; events are paced at `interval`.
    pub(crate) fn into_response(self, interval: Duration) -> Response {
        let Self {
            status,
            headers,
            body,
            mut meter,
            ..
        } = self;
        let body = match body {
            AnswerBody::Full(bytes) => {
                if let Some(meter) = meter.as_mut() {
                    meter.produce_all();
                }
                Body::from(bytes)
            }
            AnswerBody::Events(events) => {
                Body::new(PacedBody::new(events, interval, BodyEnd::Finish).metered(meter))
            }
        };
        response(status, headers, body)
    }

    /// Sends the first `limit` events (or 32-byte chunks), then ends the body with `end`.
    /// A JSON body was generated whole, so all its tokens are charged; a stream is charged
    /// for the events it sends.
    fn into_cut_response(self, interval: Duration, limit: usize, end: BodyEnd) -> Response {
        let mut meter = self.meter;
        let (chunks, interval) = match self.body {
            AnswerBody::Full(bytes) => {
                if let Some(mut meter) = meter.take() {
                    meter.produce_all();
                }
                (chunk(&bytes), Duration::ZERO)
            }
            AnswerBody::Events(events) => (events, interval),
        };
        let kept = chunks.into_iter().take(limit);
        let body = Body::new(PacedBody::new(kept, interval, end).metered(meter));
        response(self.status, self.headers, body)
    }
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn chunk(bytes: &Bytes) -> Vec<Bytes> {
    (0..bytes.len())
        .step_by(JSON_CHUNK)
        .map(|start| bytes.slice(start..(start + JSON_CHUNK).min(bytes.len())))
        .collect()
}

/// Sends `answer` shaped by `fault`; faults that replace the answer were handled before.
pub(crate) async fn render(
    answer: Answer,
    fault: Fault,
    shared: &Shared,
    control: Arc<ConnControl>,
) -> Response {
    let interval = shared.config.token_interval;
    match fault {
        Fault::DelayHeaders(delay) => {
            tokio::time::sleep(delay).await;
            answer.into_response(interval)
        }
        Fault::SlowStream(slow) => {
            if let AnswerBody::Full(_) = answer.body {
                tokio::time::sleep(slow.saturating_mul(answer.steps)).await;
            }
            answer.into_response(slow)
        }
        Fault::StallAfterEvents(events) => {
            shared.stats.stream_stalled();
            answer.into_cut_response(interval, events, BodyEnd::Stall(shared.stall_until()))
        }
        Fault::ResetMidBody(events) => {
            shared.stats.connection_reset();
            answer.into_cut_response(interval, events, BodyEnd::Reset(control))
        }
        _ => answer.into_response(interval),
    }
}
