//! The queries of `docs/grafana-dashboard.json`, read from the file itself (so the check runs
//! exactly what the dashboard shows), with Grafana's variables filled in.

use serde_json::Value;

use crate::BoxError;

const DASHBOARD: &str = include_str!("../../docs/grafana-dashboard.json");

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct Query {
    pub panel: String,
    pub ref_id: String,
    pub legend: String,
    pub expr: String,
}

/// Every panel's queries, in the file's order.
pub fn queries() -> Result<Vec<Query>, BoxError> {
    let dashboard: Value = serde_json::from_str(DASHBOARD)
        .map_err(|e| format!("docs/grafana-dashboard.json is not JSON: {e}"))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                panel: text(&panel["title"]),
                ref_id: text(&target["refId"]),
                legend: text(&target["legendFormat"]),
                expr: text(&target["expr"]),
            });
        }
    }
    if queries.is_empty() {
        return Err("docs/grafana-dashboard.json has no queries".into());
    }
    Ok(queries)
}

/// What Grafana would put in place of the dashboard's variables.
pub struct Variables<'a> {
    /// `$job` and `$instance`: the one target to look at (plain values, escaped here).
    pub job: &'a str,
    pub instance: &'a str,
    /// `$__rate_interval` and `$__range`, in milliseconds.
    pub window_ms: u64,
}

impl Variables<'_> {
    /// `expr` with the variables replaced.
    pub fn expand(&self, expr: &str) -> String {
        let window = format!("{}ms", self.window_ms);
        expr.replace("$__rate_interval", &window)
            .replace("$__range", &window)
            .replace("$job", &regex_escape(self.job))
            .replace("$instance", &regex_escape(self.instance))
    }
}

/// Escapes a label value for a `=~` matcher (as Grafana does for a selected value), then for
/// the double-quoted string that holds it.
fn regex_escape(value: &str) -> String {
    let mut regex = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            regex.push('\\');
        }
        regex.push(c);
    }
    regex.replace('\\', r"\\").replace('"', r#"\""#)
}
