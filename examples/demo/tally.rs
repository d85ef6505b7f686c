//! Counts what the layers did, from their `tracing` events (target `tower_reliability`).

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::{Arc, Mutex},
};

use tracing::{
    field::{Field, Visit},
    Event, Subscriber,
};
use tracing_subscriber::{layer::Context, Layer};

/// Counters filled from the layers' events.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Retries by cause (`429`, `503`, `connect`, `transport`, `attempt_timeout`, ...).
    pub retry_causes: BTreeMap<String, u64>,
    /// Backoff waits made, and how many followed a server hint.
    pub backoffs: u64,
    pub backoff_ms: u64,
    pub server_hints: u64,
    pub server_hint_ms: u64,
    /// Rate-limit gate closures (hinted or not) and requests released by the gate.
    pub gate_closures: u64,
    pub gate_closures_hinted: u64,
    pub gate_releases: u64,
    pub breaker_trips: u64,
    pub gate_fail_fast: u64,
    /// Timeouts by phase.
    pub timeouts: BTreeMap<String, u64>,
    /// Retries stopped early.
    pub retries_refused: u64,
}

/// A `tracing` layer that fills a shared [`Tally`].
#[derive(Clone, Default)]
pub struct TallyLayer(pub Arc<Mutex<Tally>>);

#[derive(Default)]
struct Fields {
    message: String,
    values: BTreeMap<&'static str, String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.values
                .insert(field.name(), text.trim_matches('"').to_string());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.insert(field.name(), value.to_string());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.values.insert(field.name(), value.to_string());
        }
    }
}

impl<S: Subscriber> Layer<S> for TallyLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "tower_reliability" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let number = |name: &str| fields.values.get(name).and_then(|v| v.parse::<u64>().ok());
        let Ok(mut t) = self.0.lock() else { return };
        match fields.message.as_str() {
            "retryable response" => {
                let status = fields.values.get("status").cloned().unwrap_or_default();
                *t.retry_causes.entry(status).or_default() += 1;
            }
            "retrying after error" => {
                let cause = fields.values.get("cause").cloned().unwrap_or_default();
                *t.retry_causes.entry(cause).or_default() += 1;
            }
            "backing off before retry" => {
                t.backoffs += 1;
                t.backoff_ms += number("wait_ms").unwrap_or(0);
                if let Some(hint) = number("server_hint_ms") {
                    t.server_hints += 1;
                    t.server_hint_ms += hint;
                }
            }
            "rate-limit gate closed" => {
                t.gate_closures += 1;
                if fields.values.get("hinted").is_some_and(|v| v == "true") {
                    t.gate_closures_hinted += 1;
                }
            }
            "released by the rate-limit gate" => t.gate_releases += 1,
            "circuit breaker holds new requests" => t.breaker_trips += 1,
            "gate closed past the deadline: failing fast" => t.gate_fail_fast += 1,
            "retry refused before sending" => t.retries_refused += 1,
            "request timed out" | "attempt timed out" | "response body idle timeout" => {
                let phase = fields.values.get("phase").cloned().unwrap_or_default();
                *t.timeouts.entry(phase).or_default() += 1;
            }
            _ => {}
        }
    }
}
