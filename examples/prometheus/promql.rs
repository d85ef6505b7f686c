//! A small client of Prometheus' HTTP API: instant queries and the rules' health.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;

use crate::BoxError;

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A Prometheus server's HTTP API.
pub struct Prometheus {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// Seconds since the Unix epoch, as Prometheus writes times.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Prometheus {
    pub fn new(base: &str) -> Self {
        Prometheus {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// GETs `path` and returns the `data` of a `"status": "success"` answer.
    async fn get(&self, path: &str) -> Result<Value, BoxError> {
        let uri = format!("{}{path}", self.base);
        let response = self.client.get(uri.parse()?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{uri}: {status}, not JSON ({e})"))?;
        if answer["status"] != "success" {
            return Err(format!("{uri}: {status}: {}", answer["error"]).into());
        }
        Ok(answer["data"].clone())
    }

    /// An instant query, evaluated at `time` (Unix seconds) or now.
    pub async fn query(&self, expr: &str, time: Option<f64>) -> Result<Vec<Sample>, BoxError> {
        let mut path = format!("/api/v1/query?query={}", percent_encode(expr));
        if let Some(time) = time {
            path.push_str(&format!("&time={time:.3}"));
        }
        let data = self.get(&path).await?;
        if data["resultType"] != "vector" {
            return Err(format!("{expr}: a {} answer, not a vector", data["resultType"]).into());
        }
        let mut samples = Vec::new();
        for item in data["result"].as_array().into_iter().flatten() {
            let labels = item["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            // Values come as strings ("1.5", "NaN", "+Inf").
            let value = item["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("{expr}: unreadable sample {item}"))?;
            samples.push(Sample { labels, value });
        }
        Ok(samples)
    }

    /// The value of a query that answers with at most one sample (`None` when empty).
    pub async fn value(&self, expr: &str, time: Option<f64>) -> Result<Option<f64>, BoxError> {
        let samples = self.query(expr, time).await?;
        match samples.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.value)),
            more => Err(format!("{expr}: {} samples, expected one", more.len()).into()),
        }
    }

    /// Polls `expr` every 100 ms until it answers with one sample that `done` accepts; returns
    /// that sample. Fails after `patience`.
    pub async fn wait_for(
        &self,
        expr: &str,
        patience: Duration,
        done: impl Fn(&Sample) -> bool,
    ) -> Result<Sample, BoxError> {
        let until = Instant::now() + patience;
        loop {
            // A Prometheus still starting may refuse a query: keep polling.
            let answer = self.query(expr, None).await;
            if let Ok([sample]) = answer.as_deref() {
                if done(sample) {
                    return Ok(sample.clone());
                }
            }
            if Instant::now() >= until {
                return Err(format!(
                    "{} did not answer {expr} as expected within {patience:?} (last: {answer:?})",
                    self.base
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every loaded rule as (group, name, health, last error).
    pub async fn rules(&self) -> Result<Vec<[String; 4]>, BoxError> {
        let data = self.get("/api/v1/rules").await?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut rules = Vec::new();
        for group in data["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                rules.push([
                    text(&group["name"]),
                    text(&rule["name"]),
                    text(&rule["health"]),
                    text(&rule["lastError"]),
                ]);
            }
        }
        Ok(rules)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
