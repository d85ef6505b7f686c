//! What can go wrong with one request: scripted [`Fault`]s and the random [`FaultMix`].

use std::collections::VecDeque;
use std::time::Duration;

/// One fault, applied to one request of the chat, `/echo-hash` or batch-job endpoints.
///
/// Faults are drawn when a request's body has been read, before authentication, rate limiting
/// and validation, so a scripted fault is used up by exactly one request whatever it contains.
/// The variants that shape the body ([`DelayHeaders`](Fault::DelayHeaders),
/// [`StallAfterEvents`](Fault::StallAfterEvents), [`ResetMidBody`](Fault::ResetMidBody),
/// [`SlowStream`](Fault::SlowStream)) apply to whatever answer the request then gets. A
/// non-streaming answer shaped by them is sent with chunked encoding, in chunks of 32 bytes
/// that count as "events". A count of events at least as large as the answer sends all of it
/// but never ends the body.
///
/// The connection faults are meant for HTTP/1.1, where a connection carries one request at a
/// time; over HTTP/2 they close the whole connection, with every stream on it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Serve normally; it also keeps the random mix away from this request.
    None,
    /// Answer this status at once with a Fireworks-shaped JSON error body (`503` says
    /// `"Service Overloaded"`). Codes outside `200..=599` are answered as `500`.
    Status(u16),
    /// Like [`Fault::Status`], with these extra headers; each replaces a default header of that
    /// name, and a name given twice is sent twice. Names or values that are not valid HTTP are
    /// skipped.
    StatusWithHeaders(u16, Vec<(String, String)>),
    /// Sleep this long before sending the headers, then answer normally.
    DelayHeaders(Duration),
    /// Send this many events (SSE events when streaming, else 32-byte chunks), then go silent
    /// with the connection open until the client gives up or the server shuts down.
    StallAfterEvents(usize),
    /// Close the connection abruptly (a TCP reset) without sending any response.
    ResetBeforeResponse,
    /// Send the headers and this many events, then close the connection before the body ends,
    /// so the client sees a truncated body. The close is a plain FIN rather than a reset, so
    /// that the events sent are sure to reach the client first.
    ResetMidBody(usize),
    /// Stream with this interval between events instead of the configured one; a non-streaming
    /// answer is held back as long as streaming all its tokens would take.
    SlowStream(Duration),
}

/// Probabilities of random faults for requests that find the script empty.
///
/// Each probability is clamped to `0.0..=1.0`; they are tried in the order 500, 502, 503, 504,
/// reset and should add up to at most 1. With a [`seed`](FaultMix::seed) the draws repeat from
/// one run to the next (for requests arriving in the same order).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultMix {
    status_500: f64,
    status_502: f64,
    status_503: f64,
    status_504: f64,
    reset: f64,
    seed: Option<u64>,
}

impl FaultMix {
    /// The probability of a `500 Internal Server Error`.
    pub fn status_500(mut self, probability: f64) -> Self {
        self.status_500 = clamp(probability);
        self
    }

    /// The probability of a `502 Bad Gateway`.
    pub fn status_502(mut self, probability: f64) -> Self {
        self.status_502 = clamp(probability);
        self
    }

    /// The probability of a `503 Service Unavailable` ("Service Overloaded").
    pub fn status_503(mut self, probability: f64) -> Self {
        self.status_503 = clamp(probability);
        self
    }

    /// The probability of a `504 Gateway Timeout`.
    pub fn status_504(mut self, probability: f64) -> Self {
        self.status_504 = clamp(probability);
        self
    }

    /// The probability of [`Fault::ResetBeforeResponse`].
    pub fn reset(mut self, probability: f64) -> Self {
        self.reset = clamp(probability);
        self
    }

    /// Seeds the random draws (`None`: a fresh random seed).
    pub fn seed(mut self, seed: impl Into<Option<u64>>) -> Self {
        self.seed = seed.into();
        self
    }

    fn is_quiet(&self) -> bool {
        self.status_500 + self.status_502 + self.status_503 + self.status_504 + self.reset <= 0.0
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> Fault {
        if self.is_quiet() {
            return Fault::None;
        }
        let roll = rng.f64();
        let outcomes = [
            (self.status_500, Fault::Status(500)),
            (self.status_502, Fault::Status(502)),
            (self.status_503, Fault::Status(503)),
            (self.status_504, Fault::Status(504)),
            (self.reset, Fault::ResetBeforeResponse),
        ];
        let mut threshold = 0.0;
        for (probability, fault) in outcomes {
            threshold += probability;
            if roll < threshold {
                return fault;
            }
        }
        Fault::None
    }
}

fn clamp(probability: f64) -> f64 {
    if probability.is_nan() {
        0.0
    } else {
        probability.clamp(0.0, 1.0)
    }
}

/// The script queue and the random mix, behind the server's lock.
#[derive(Debug)]
pub(crate) struct FaultSource {
    script: VecDeque<Fault>,
    mix: FaultMix,
    rng: fastrand::Rng,
}

impl FaultSource {
    pub(crate) fn new(mix: FaultMix, script: impl IntoIterator<Item = Fault>) -> Self {
        Self {
            script: script.into_iter().collect(),
            rng: rng_for(&mix),
            mix,
        }
    }

    pub(crate) fn push(&mut self, faults: impl IntoIterator<Item = Fault>) {
        self.script.extend(faults);
    }

    pub(crate) fn clear(&mut self) {
        self.script.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.script.len()
    }

    pub(crate) fn set_mix(&mut self, mix: FaultMix) {
        self.rng = rng_for(&mix);
        self.mix = mix;
    }

    /// The fault for the next request: the head of the script, else a draw from the mix.
    pub(crate) fn next_fault(&mut self) -> Fault {
        match self.script.pop_front() {
            Some(fault) => fault,
            None => self.mix.draw(&mut self.rng),
        }
    }
}

fn rng_for(mix: &FaultMix) -> fastrand::Rng {
    match mix.seed {
        Some(seed) => fastrand::Rng::with_seed(seed),
        None => fastrand::Rng::new(),
    }
}
