//! Helpers of `tests/observability.rs`: the client stack, requests carrying a key, a capture of
//! tracing output, a transcript of everything a caller could print, and metric snapshots.

use std::{
    collections::BTreeMap,
    fmt::{Debug, Write as _},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, Snapshotter};
use tower::{Service, ServiceExt};
use tower_reliability::{backoff::Jitter, fireworks, Error, JitteredBackoff};

use crate::common::{chat::chat_json, chat::chat_request, fast_backoff, HyperClient};

/// The key the server expects; it must never show up in anything the layers report.
pub const SECRET: &str = "sk-SECRET-4f1c9a77e2b04d6c8a5b";
/// A key the server rejects, just as secret.
pub const WRONG_KEY: &str = "sk-WRONG-0d3b5e9a71c24f88c1e7";

/// The preset over the client.
pub type Stack = fireworks::FireworksService<HyperClient>;
/// What the stack answers.
pub type Response = http::Response<fireworks::ResponseBody<hyper::body::Incoming>>;

/// Waits of `U(0, 5 ms * 2^n)`, from a fixed seed so every run makes the same draws.
pub fn seeded_backoff(seed: u64) -> JitteredBackoff {
    fast_backoff(Jitter::Full, 5).seed(seed)
}

/// A chat completion request with the key in the `Authorization` header and, as users do,
/// pasted into the prompt.
pub fn chat(url: &str, key: &str, stream: bool) -> http::Request<Full<Bytes>> {
    let prompt = format!("why does my key {key} not work?");
    chat_request(url, key, chat_json(&prompt, stream))
}

pub async fn send(svc: &mut Stack, request: http::Request<Full<Bytes>>) -> Result<Response, Error> {
    svc.ready().await?.call(request).await
}

/// Reads a body to the end, noting the error, if any, in the transcript.
pub async fn collect(t: &mut Transcript, response: Response) -> Result<String, Error> {
    match response.into_body().collect().await {
        Ok(body) => Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned()),
        Err(e) => {
            t.error_value("body", &e);
            Err(e)
        }
    }
}

/// Everything a caller of the stack could print: `Debug` and `Display` of errors (with their
/// source chains), responses, retry reports, the layer and the stack.
#[derive(Default)]
pub struct Transcript(String);

impl Transcript {
    pub fn text(&self) -> &str {
        &self.0
    }

    pub fn debug(&mut self, what: &str, value: &dyn Debug) {
        let _ = writeln!(self.0, "[{what}] {value:?}\n[{what}] {value:#?}");
    }

    /// Notes a response (or the error) and hands it back.
    #[track_caller]
    pub fn response(&mut self, what: &str, result: Result<Response, Error>) -> Response {
        match result {
            Ok(response) => {
                let _ = writeln!(self.0, "[{what}] status {}", response.status());
                self.debug(what, &response);
                if let Some(report) = response
                    .extensions()
                    .get::<tower_reliability::RetryReport>()
                {
                    self.debug(what, report);
                }
                response
            }
            Err(e) => {
                self.error_value(what, &e);
                panic!("{what}: {e:?}");
            }
        }
    }

    /// Notes an error (or the response) and hands it back.
    #[track_caller]
    pub fn error(&mut self, what: &str, result: Result<Response, Error>) -> Error {
        match result {
            Ok(response) => {
                self.debug(what, &response);
                panic!("{what}: expected an error, got {response:?}");
            }
            Err(e) => {
                self.error_value(what, &e);
                e
            }
        }
    }

    pub fn error_value(&mut self, what: &str, error: &Error) {
        let _ = writeln!(self.0, "[{what}] {error}");
        self.debug(what, error);
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            let _ = writeln!(self.0, "[{what}] caused by: {e} / {e:?}");
            source = e.source();
        }
    }
}

/// What a recorder saw since the last snapshot (snapshots drain it): counters by value and
/// histograms by sample count (`"<key> samples"`), zeros left out, keys rendered as
/// `name{label="value",...}` with the labels sorted. See [`metric_samples`] for the samples themselves.
pub fn metric_deltas(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    metric_samples(snapshotter).0
}

/// [`metric_deltas`] and the histogram samples by key.
pub fn metric_samples(
    snapshotter: &Snapshotter,
) -> (BTreeMap<String, u64>, BTreeMap<String, Vec<f64>>) {
    let mut counts = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for (key, _unit, _description, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        match value {
            DebugValue::Counter(0) => {}
            DebugValue::Counter(n) => {
                counts.insert(name, n);
            }
            DebugValue::Histogram(values) if values.is_empty() => {}
            DebugValue::Histogram(values) => {
                counts.insert(format!("{name} samples"), values.len() as u64);
                samples.insert(name, values.into_iter().map(|v| v.into_inner()).collect());
            }
            // A gauge's value can depend on timing (the adaptive rate is measured): record
            // that it was set, and keep its value with the samples.
            DebugValue::Gauge(value) => {
                counts.insert(format!("{name} gauge set"), 1);
                samples.insert(name, vec![value.into_inner()]);
            }
        }
    }
    (counts, samples)
}
