//! Asks Prometheus the dashboard's questions about this run and compares its answers with the
//! run's own counts.
//!
//! Every series starts at a scraped zero (`series::register`) and the window ends at a scrape
//! taken after the load, so `increase()` over the window is exact (Prometheus extrapolates
//! neither towards a start at zero nor past a sample at the window's end), and so are ratios
//! of rates over it. Stated tolerances cover floating-point rounding; the p99 must fall in the
//! histogram bucket that holds the run's own p99 (the estimate is only exact to the bucket).

use std::time::Duration;

use crate::{
    dashboard::{self, Variables},
    promql::Prometheus,
    BoxError,
};

/// What the run counted itself, apart from the metrics.
#[derive(Debug, Clone)]
pub struct Truth {
    /// Requests the caller sent (each is one call of the stack).
    pub requests: u64,
    /// Attempts: those that reached the HTTP client, and first attempts the gate refused.
    pub attempts: u64,
    /// Attempts the server answered (the server's count).
    pub acknowledged: u64,
    /// Of those, answered 429 (the server's count).
    pub status_429: u64,
    /// Attempts the server never saw: connect failures and gate refusals.
    pub never_sent: u64,
    /// Attempts that failed after sending (reset, cut by a timeout).
    pub after_sending: u64,
    /// Circuit-breaker trips.
    pub breaker_trips: u64,
    /// Every wait at the gate, in milliseconds (rounded down).
    pub gate_waits_ms: Vec<u64>,
}

/// Where and when to ask.
pub struct Scope<'a> {
    pub job: &'a str,
    pub instance: &'a str,
    /// The window: from before the first (zero) scrape to the last scrape, Unix seconds.
    pub start: f64,
    pub end: f64,
    /// The upper bounds of the `_seconds` histograms' buckets.
    pub buckets: &'a [f64],
}

/// How close an answer must be.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly this value.
    Exact(f64),
    /// Within `tolerance` of this value.
    Near(f64, f64),
    /// Within this fraction of this value.
    Relative(f64, f64),
    /// In the histogram bucket of this many milliseconds (rounded down), or no value at all
    /// when there was nothing to measure.
    Bucket(Option<u64>),
}

struct Row {
    what: String,
    answer: Option<f64>,
    expect: Expect,
}

/// Runs every comparison, prints them, and returns how many disagree.
pub async fn run(
    prometheus: &Prometheus,
    scope: &Scope<'_>,
    truth: &Truth,
) -> Result<usize, BoxError> {
    let window_ms = ((scope.end - scope.start) * 1000.0).ceil() as u64;
    let mut failures = 0;

    println!(
        "\nPrometheus' answers at the last scrape (after the load), instance {}, job {}:",
        scope.instance, scope.job
    );
    println!("  counters at the end of the run (raw totals):");
    let mut rows = Vec::new();
    for (what, name, labels, expected) in end_counters(truth) {
        let mut matchers = format!(r#"instance="{}""#, scope.instance);
        if !labels.is_empty() {
            matchers = format!("{matchers},{labels}");
        }
        rows.push(Row {
            what: what.to_owned(),
            answer: prometheus
                .value(&format!("sum({name}{{{matchers}}})"), Some(scope.end))
                .await?,
            expect: Expect::Exact(expected as f64),
        });
    }
    failures += print(&rows, scope.buckets);

    println!(
        "  the dashboard's queries (docs/grafana-dashboard.json), $__range and $__rate_interval \
         = the whole run ({:.1} s):",
        window_ms as f64 / 1000.0
    );
    let vars = Variables {
        job: scope.job,
        instance: scope.instance,
        window_ms,
    };
    let mut rows = Vec::new();
    let queries = dashboard::queries()?;
    for (panel, ref_id) in CHECKED {
        if !queries
            .iter()
            .any(|q| q.panel == panel && q.ref_id == ref_id)
        {
            println!("    MISSING from the dashboard: {panel} ({ref_id})");
            failures += 1;
        }
    }
    for query in queries {
        let what = format!("{} / {}", query.panel, query.legend);
        let Some(expect) = dashboard_expectation(&query.panel, &query.ref_id, truth) else {
            println!(
                "    NOT CHECKED: {what} ({}): the check has no count for it",
                query.ref_id
            );
            failures += 1;
            continue;
        };
        let answer = prometheus
            .value(&vars.expand(&query.expr), Some(scope.end))
            .await?;
        rows.push(Row {
            what,
            answer,
            expect,
        });
    }
    failures += print(&rows, scope.buckets);

    failures += check_rules(prometheus, scope, truth).await?;
    Ok(failures)
}

/// The raw totals compared exactly: (what, metric, label matchers, the run's count).
fn end_counters(t: &Truth) -> [(&'static str, &'static str, &'static str, u64); 8] {
    let attempts = "tower_reliability_attempts_total";
    [
        ("attempts", attempts, "", t.attempts),
        (
            "  answered by the server",
            attempts,
            r#"outcome="response""#,
            t.acknowledged,
        ),
        (
            "  never sent",
            attempts,
            r#"outcome="not_sent""#,
            t.never_sent,
        ),
        (
            "  failed after sending",
            attempts,
            r#"outcome="error""#,
            t.after_sending,
        ),
        (
            "  answered 429",
            attempts,
            r#"outcome="response",status="429""#,
            t.status_429,
        ),
        (
            "retries (attempts - requests)",
            "tower_reliability_retries_total",
            "",
            t.attempts.saturating_sub(t.requests),
        ),
        (
            "breaker trips",
            "tower_reliability_breaker_trips_total",
            "",
            t.breaker_trips,
        ),
        (
            "gate waits recorded",
            "tower_reliability_gate_wait_seconds_count",
            "",
            t.gate_waits_ms.len() as u64,
        ),
    ]
}

/// The dashboard's queries the check knows, by panel title and query ref id.
const CHECKED: [(&str, &str); 7] = [
    ("Attempts per request", "A"),
    ("429 share of answers", "A"),
    ("Gate wait p99", "A"),
    ("Breaker trips", "A"),
    ("Attempts the server never saw vs acknowledged", "A"),
    ("Attempts the server never saw vs acknowledged", "B"),
    ("Attempts the server never saw vs acknowledged", "C"),
];

/// What each dashboard query must answer, by panel title and query ref id.
fn dashboard_expectation(panel: &str, ref_id: &str, t: &Truth) -> Option<Expect> {
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    Some(match (panel, ref_id) {
        ("Attempts per request", "A") => Expect::Relative(ratio(t.attempts, t.requests), 0.001),
        ("429 share of answers", "A") => {
            Expect::Relative(ratio(t.status_429, t.acknowledged), 0.001)
        }
        ("Gate wait p99", "A") => Expect::Bucket(p99(&t.gate_waits_ms)),
        ("Breaker trips", "A") => Expect::Near(t.breaker_trips as f64, 0.001),
        ("Attempts the server never saw vs acknowledged", "A") => {
            Expect::Near(t.acknowledged as f64, 0.001)
        }
        ("Attempts the server never saw vs acknowledged", "B") => {
            Expect::Near(t.never_sent as f64, 0.001)
        }
        ("Attempts the server never saw vs acknowledged", "C") => {
            Expect::Near(t.after_sending as f64, 0.001)
        }
        _ => return None,
    })
}

/// The 99th percentile by nearest rank: the smallest wait with at least 99% of the waits at
/// or below it.
fn p99(waits_ms: &[u64]) -> Option<u64> {
    let mut sorted = waits_ms.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() as f64 * 0.99).ceil() as usize;
    sorted.get(rank.checked_sub(1)?).copied()
}

/// The bounds `(lower, upper]` of the bucket that holds `seconds` (the last finite bound twice
/// past it: `histogram_quantile` answers that bound for the `+Inf` bucket).
fn bucket(buckets: &[f64], seconds: f64) -> (f64, f64) {
    let mut lower = 0.0;
    for &upper in buckets {
        if seconds <= upper {
            return (lower, upper);
        }
        lower = upper;
    }
    (lower, lower)
}

fn agrees(answer: Option<f64>, expect: Expect, buckets: &[f64]) -> bool {
    match (answer, expect) {
        (None, Expect::Bucket(None)) => true,
        (Some(a), Expect::Bucket(None)) => a.is_nan(),
        (None, _) => false,
        (Some(a), Expect::Exact(e)) => a == e,
        (Some(a), Expect::Near(e, tolerance)) => (a - e).abs() <= tolerance,
        (Some(a), Expect::Relative(e, fraction)) => (a - e).abs() <= e.abs() * fraction,
        (Some(a), Expect::Bucket(Some(ms))) => {
            // The run's wait lies in [ms, ms + 1): either bucket it can fall in.
            let (lower, _) = bucket(buckets, ms as f64 / 1000.0);
            let (_, upper) = bucket(buckets, (ms + 1) as f64 / 1000.0);
            lower <= a && a <= upper
        }
    }
}

/// Prints the rows; returns how many disagree.
fn print(rows: &[Row], buckets: &[f64]) -> usize {
    let mut failures = 0;
    for row in rows {
        let ok = agrees(row.answer, row.expect, buckets);
        failures += usize::from(!ok);
        let answer = row
            .answer
            .map_or("(none)".to_owned(), |a| format!("{a:.6}"));
        let expected = match row.expect {
            Expect::Exact(e) => format!("{e} exactly"),
            Expect::Near(e, tolerance) => format!("{e:.6} ± {tolerance}"),
            Expect::Relative(e, fraction) => format!("{e:.6} ± {}%", fraction * 100.0),
            Expect::Bucket(None) => "no waits: NaN or nothing".to_owned(),
            Expect::Bucket(Some(ms)) => {
                let (lower, upper) = bucket(buckets, ms as f64 / 1000.0);
                format!("{ms} ms: in ({lower}, {upper}] s")
            }
        };
        println!(
            "    {:<66} {:>12}   run: {:<28} {}",
            row.what,
            answer,
            expected,
            if ok { "ok" } else { "DISAGREE" }
        );
    }
    failures
}

/// Every alert rule evaluates without error, and the breaker alert fires when the breaker
/// tripped during the run.
async fn check_rules(
    prometheus: &Prometheus,
    scope: &Scope<'_>,
    truth: &Truth,
) -> Result<usize, BoxError> {
    let mut failures = 0;
    println!("  the alert rules (docs/prometheus-alerts.yml), as Prometheus evaluates them:");
    let rules = prometheus.rules().await?;
    if rules.is_empty() {
        println!("    no rules loaded: DISAGREE");
        failures += 1;
    }
    for [group, name, health, error] in &rules {
        let ok = health == "ok";
        failures += usize::from(!ok);
        println!(
            "    {:<66} {:>12}   {}",
            format!("{group} / {name}"),
            health,
            if ok {
                "ok".to_owned()
            } else {
                format!("DISAGREE {error}")
            }
        );
    }
    let firing = format!(
        r#"count(ALERTS{{alertname="TowerReliabilityBreakerTripped",alertstate="firing",instance="{}"}})"#,
        scope.instance
    );
    let state = if truth.breaker_trips > 0 {
        // Rules run every second: the alert follows the scrape that saw the trip.
        prometheus
            .wait_for(&firing, Duration::from_secs(10), |s| s.value >= 1.0)
            .await
            .map(|_| "firing")
    } else {
        match prometheus.value(&firing, None).await? {
            None => Ok("not firing"),
            Some(_) => Err("firing with no trip".into()),
        }
    };
    let ok = state.is_ok();
    failures += usize::from(!ok);
    println!(
        "    {:<66} {:>12}   run: {} breaker trip(s)                 {}",
        "TowerReliabilityBreakerTripped",
        state.as_ref().map_or("no", |s| *s),
        truth.breaker_trips,
        if ok {
            "ok".to_owned()
        } else {
            format!("DISAGREE {:?}", state.err())
        }
    );
    Ok(failures)
}
