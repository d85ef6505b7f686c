//! Token pacing: when a response says the token allowance runs low (OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-tokens`, Fireworks' per-minute
//! `x-ratelimit-{limit,remaining}-tokens-prompt`), the gate mirrors the token bucket and charges
//! each request its estimated tokens (prompt bytes / 4 + `max_tokens`), so a client offering
//! twice a token-per-minute limit is paced by tokens instead of finding the limit with 429s.
mod common;
mod limits_support;

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tower_reliability::{
    rate_limit::{Admission, Demand, LocalStore, Quota, RateLimitStore, Scope, Signal, Ticket},
    testing::{FireworksHeaders, ModelLimits, DEFAULT_MODEL},
};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            )
        })
        .collect()
}

#[test]
fn a_low_token_allowance_is_read_from_either_header_form() {
    let openai = headers(&[
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "100"),
        ("x-ratelimit-reset-tokens", "54s"),
    ]);
    assert_eq!(
        Signal::from_response(StatusCode::OK, &openai),
        Signal::TokensLow(Quota::new(Some(1000), 100, Some(Duration::from_secs(54))))
    );
    let fireworks_legacy = headers(&[
        ("x-ratelimit-limit-tokens-prompt", "60000"),
        ("x-ratelimit-remaining-tokens-prompt", "9000"),
    ]);
    let Signal::TokensLow(prompt) = Signal::from_response(StatusCode::OK, &fireworks_legacy) else {
        panic!("a low prompt-token allowance");
    };
    assert_eq!(
        (
            prompt.limit,
            prompt.remaining,
            prompt.reset,
            prompt.prompt_only
        ),
        (Some(60000), 9000, None, true)
    );
    // Plenty left, or no limit to compare with: nothing to mirror.
    let plenty = headers(&[
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "900"),
    ]);
    assert_eq!(
        Signal::from_response(StatusCode::OK, &plenty),
        Signal::Healthy
    );
    let garbage = headers(&[("x-ratelimit-remaining-tokens", "lots")]);
    assert_eq!(
        Signal::from_response(StatusCode::OK, &garbage),
        Signal::Healthy
    );
}

#[test]
fn requests_are_charged_their_tokens_and_a_huge_one_waits_for_a_full_bucket() {
    let store = LocalStore::default();
    let model = Scope::named("m");
    let t0 = Instant::now();
    // 1000 a minute, 100 left, full again in 54 s: 900 back in 54 s, one token per 60 ms.
    let low = Signal::TokensLow(Quota::new(Some(1000), 100, Some(Duration::from_secs(54))));
    store.record_in(t0, &model, low, None, None);
    assert_eq!(
        store.admit_in(t0, &Demand::new(&model).tokens(50), Ticket::New),
        Admission::Go
    );
    assert_eq!(
        store.admit_in(t0, &Demand::new(&model).tokens(50), Ticket::New),
        Admission::Go
    );
    // Empty now: the next 50 tokens take 3 s to come back.
    match store.admit_in(t0, &Demand::new(&model).tokens(50), Ticket::New) {
        Admission::Wait(r) => assert_eq!(r.at() - t0, Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }
    // Another model's requests are not charged here.
    assert_eq!(
        store.admit_in(
            t0,
            &Demand::new(&Scope::named("other")).tokens(50),
            Ticket::New
        ),
        Admission::Go
    );
    // A request larger than the whole bucket waits for it to be full, then goes alone.
    let store = LocalStore::default();
    store.record_in(t0, &model, low, None, None);
    match store.admit_in(t0, &Demand::new(&model).tokens(5000), Ticket::New) {
        Admission::Wait(r) => assert_eq!(r.at() - t0, Duration::from_secs(54)),
        other => panic!("{other:?}"),
    }
}

/// The preset against the local server limiting a model to 6000 tokens a minute (OpenAI's
/// header set), offered about twice that for a minute: paced by tokens, few 429s.
#[tokio::test(start_paused = true)]
async fn twice_a_token_limit_is_paced_with_few_429s() {
    let limits = ModelLimits::new()
        .tokens_per_minute(6000)
        .openai_headers(true)
        .fireworks_headers(FireworksHeaders::None);
    let server = limits_support::server(limits, 5).await;
    // About 200 tokens each (a 800-byte message, 5 generated), one a second: 2 × 100 tokens/s.
    let body = json!({
        "model": DEFAULT_MODEL,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "abcd".repeat(200)}],
    })
    .to_string();
    let ok = limits_support::offer(&server, &body, 60, Duration::from_secs(1)).await;
    let model = server.stats().model(DEFAULT_MODEL);
    let (attempts, throttled) = (model.requests, model.rate_limited);
    assert!(
        throttled * 20 <= attempts,
        "{throttled} of {attempts} attempts answered 429"
    );
    // The limit allows about 6000 + 6000 × (the run's minutes) tokens: about 60 requests'
    // worth in 60 s plus the deadline; most callers are served.
    assert!(ok >= 40, "{ok} of 60 served");
}

/// Offers 120 requests, 3 a second, each capping its output at `max_tokens`, to a model that
/// generates 10 tokens an answer and allows 600 generated tokens a minute, stated in Fireworks'
/// current headers (no over-limit flag); returns how many were served, and the attempts the
/// server received and answered 429.
async fn offer_thrice_a_current_generated_limit(max_tokens: u64) -> (usize, u64, u64) {
    let limits = ModelLimits::new()
        .generated_tokens_per_minute(600)
        .over_limit_below(0.0)
        .fireworks_headers(FireworksHeaders::Current);
    let server = limits_support::server(limits, 10).await;
    let body = json!({
        "model": DEFAULT_MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hi"}],
    })
    .to_string();
    let ok = limits_support::offer(&server, &body, 120, Duration::from_millis(333)).await;
    let model = server.stats().model(DEFAULT_MODEL);
    (ok, model.requests, model.rate_limited)
}

/// Fireworks' current headers say only the limits, per second, with no `remaining`: once the
/// scope is throttled, the gate models the generated-tokens bucket from them (a minute's worth,
/// refilled at the stated rate), charges each request its `max_tokens` and settles it with the
/// `usage` of its answer. Offered three times a generated-tokens limit (and no over-limit flag
/// to warn), the client is paced by tokens instead of finding the limit with 429s.
#[tokio::test(start_paused = true)]
async fn three_times_a_generated_limit_in_current_headers_is_paced_with_few_429s() {
    // 10 generated tokens each, 3 a second: 30 tokens/s against a limit of 10/s, for 40 s.
    // The limit allows 600 + 10/s: the last caller is served about 20 s after it came.
    let (ok, attempts, throttled) = offer_thrice_a_current_generated_limit(10).await;
    assert!(
        throttled * 20 <= attempts,
        "{throttled} of {attempts} attempts answered 429 ({ok} served)"
    );
    assert!(ok >= 100, "{ok} of 120 served");
}

/// The per-dimension model is made only for a throttled scope, charges `max_tokens` to the
/// generated bucket and is settled with the answer's `usage`.
#[test]
fn a_throttled_scope_models_its_stated_limits_and_settles_usage() {
    use tower_reliability::rate_limit::{TokenCharge, TokenLimits, Usage, Wake};
    let store = LocalStore::default();
    let model = Scope::named("m");
    let t0 = Instant::now();
    let mut stated = HeaderMap::new();
    stated.insert(
        "x-ratelimit-limit-tokens-generated",
        HeaderValue::from_static("10"),
    );
    let limits = TokenLimits::from_headers(&stated).expect("stated");
    // Healthy: nothing is modelled, nothing metered.
    store.learn_limits_in(t0, &model, limits);
    assert!(!store.meters_in(&model));
    // Throttled: a minute of 10 tokens a second, empty.
    store.record_in(
        t0,
        &model,
        Signal::Throttled {
            hint: Some(Duration::from_millis(1)),
        },
        None,
        Some(t0),
    );
    store.learn_limits_in(t0, &model, limits);
    assert!(store.meters_in(&model));
    assert!(!store.meters_in(&Scope::named("other")));
    let t1 = t0 + Duration::from_secs(10);
    let demand = |out| Demand::new(&model).per_dimension(TokenCharge::new(3, out));
    // 100 tokens came back in 10 s: one request reserving 100 goes, the next waits 10 s.
    assert_eq!(store.admit_in(t1, &demand(100), Ticket::New), Admission::Go);
    let Admission::Wait(slot) = store.admit_in(t1, &demand(100), Ticket::New) else {
        panic!("the generated bucket is empty")
    };
    assert_eq!(slot.at() - t1, Duration::from_secs(10));
    // The first produced 20 tokens: 80 come back, and the waiter is woken to go at once.
    let usage = Usage {
        prompt_tokens: 3,
        completion_tokens: 20,
    };
    let sent = t1;
    let t2 = t1 + Duration::from_secs(2);
    assert_eq!(
        store.settle_in(t2, &model, sent, TokenCharge::new(3, 100), usage),
        Wake::All
    );
    assert_eq!(
        store.admit_in(t2, &demand(100), Ticket::Reserved(slot)),
        Admission::Go
    );
}

/// The generated reservation is settled with the answer's `usage`: requests capping their
/// output at 100 tokens but producing 10 are paced by what they produce (the JSON body's
/// `usage`, read from the response body's tail), not by their cap.
#[tokio::test(start_paused = true)]
async fn the_output_reservation_is_settled_with_the_usage_of_the_answer() {
    // 3 a second producing 10 tokens each (3 × the limit), each reserving 100 (30 ×).
    let (ok, attempts, throttled) = offer_thrice_a_current_generated_limit(100).await;
    assert!(
        throttled * 20 <= attempts,
        "{throttled} of {attempts} attempts answered 429 ({ok} served)"
    );
    // Paced by its caps (one request per 10 s once throttled) most would miss their deadline.
    assert!(ok >= 100, "{ok} of 120 served");
}

/// A large prompt behind a queue of small ones is quoted what the ones ahead cost, not its own
/// cost for every place ahead (which refused it as too late for its deadline).
#[test]
fn a_large_request_behind_small_ones_is_quoted_what_they_cost() {
    let store = LocalStore::default();
    let model = Scope::named("m");
    let t0 = Instant::now();
    // 6000 a minute, none left: 100 tokens a second come back.
    let low = Signal::TokensLow(Quota::new(Some(6000), 0, Some(Duration::from_secs(60))));
    store.record_in(t0, &model, low, None, None);
    for _ in 0..10 {
        let small = Demand::new(&model).tokens(100);
        assert!(matches!(
            store.admit_in(t0, &small, Ticket::New),
            Admission::Wait(_)
        ));
    }
    // Ten small ones ahead (1000 tokens) and its own 2000: about 30 s, within a 60 s deadline.
    let large = Demand::new(&model)
        .tokens(2000)
        .deadline(Some(t0 + Duration::from_secs(60)));
    match store.admit_in(t0, &large, Ticket::New) {
        Admission::Wait(r) => {
            let wait = r.at() - t0;
            assert!(wait <= Duration::from_secs(40), "quoted {wait:?}");
        }
        other => panic!("the large request is refused: {other:?}"),
    }
}

/// Fireworks' older headers count prompt tokens only: the mirror charges a request its prompt
/// estimate, not its output cap too (which held requests back for tokens the server never
/// counted against that allowance).
#[test]
fn a_prompt_token_allowance_charges_the_prompt_only() {
    use tower_reliability::rate_limit::TokenCharge;
    let store = LocalStore::default();
    let model = Scope::named("m");
    let t0 = Instant::now();
    let prompt_low = headers(&[
        ("x-ratelimit-limit-tokens-prompt", "60000"),
        ("x-ratelimit-remaining-tokens-prompt", "1000"),
    ]);
    let signal = Signal::from_response(StatusCode::OK, &prompt_low);
    store.record_in(t0, &model, signal, None, None);
    // 400 prompt tokens and a 2000-token output cap: twice the prompt fits in the 1000 left.
    let demand = Demand::new(&model)
        .tokens(2400)
        .per_dimension(TokenCharge::new(400, 2000));
    assert_eq!(store.admit_in(t0, &demand, Ticket::New), Admission::Go);
    assert_eq!(store.admit_in(t0, &demand, Ticket::New), Admission::Go);
    assert!(matches!(
        store.admit_in(t0, &demand, Ticket::New),
        Admission::Wait(_)
    ));
}

/// Answers' `usage` teaches a scope its costs: the prompt estimate is raised when prompts
/// cost more than bytes / 4 (never lowered below it), and a request without `max_tokens`
/// reserves a typical completion instead of the default 256; a request's own cap is kept.
#[test]
fn a_scope_learns_its_costs_from_usage() {
    use tower_reliability::rate_limit::{TokenCharge, Usage};
    let store = LocalStore::default();
    let model = Scope::named("m");
    let t0 = Instant::now();
    let low = Signal::TokensLow(Quota::new(
        Some(100_000),
        1000,
        Some(Duration::from_secs(60)),
    ));
    store.record_in(t0, &model, low, None, None);
    assert!(
        store.meters_in(&model),
        "a mirrored scope reads its answers' usage"
    );
    let uncapped = TokenCharge::uncapped(400, 256);
    assert_eq!(
        store.estimate_in(&model, uncapped),
        uncapped,
        "nothing learned yet"
    );
    for i in 0..30 {
        let charged = store.estimate_in(&model, uncapped);
        let usage = Usage {
            prompt_tokens: 800,
            completion_tokens: 10,
        };
        store.settle_in(t0 + Duration::from_millis(i), &model, t0, charged, usage);
    }
    let learned = store.estimate_in(&model, uncapped);
    assert!((760..=810).contains(&learned.prompt), "{learned:?}");
    assert!(learned.output <= 20, "{learned:?}");
    let capped = store.estimate_in(&model, TokenCharge::new(400, 500));
    assert_eq!(capped.output, 500, "its own cap is kept");
    // Another scope learned nothing.
    let other = Scope::named("other");
    assert_eq!(store.estimate_in(&other, uncapped), uncapped);
}
