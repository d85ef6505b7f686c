//! What a request is (its model, its size, its output cap) and what it turned out to cost
//! (the `usage` the server reports), read from the JSON of an OpenAI-compatible chat or
//! completion request and response.
//!
//! Providers limit tokens, not requests: a 5000-token prompt spends fifty times what a
//! 100-token one does. The gate charges each request an *estimate* before it goes — its body
//! size over a learned bytes-per-token ratio for the prompt, `max_tokens` (or a learned
//! typical value) for the output — and settles the estimate when the response's `usage`
//! arrives, as OpenAI's and Fireworks' own accounting does.
//!
//! Reading is total (never panics, bounded work, `None` for anything that is not one JSON
//! object), is done by `serde_json` without building the document, and looks at top-level
//! members only: a decoy `"model"` inside a message is never read.

use std::sync::Arc;

use super::TokenCharge;
use crate::json;

/// What the gate needs to know of a request before it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestShape {
    /// The request's `model`, when its body is a JSON object that names one.
    pub model: Option<Arc<str>>,
    /// The body's size in bytes: the prompt estimate's base.
    pub body_bytes: usize,
    /// `max_completion_tokens`, else `max_tokens`, when the request caps its output.
    pub max_output: Option<u32>,
}

impl RequestShape {
    /// Reads a request body. Anything but a JSON object gives a shape with only its size.
    pub fn read(body: &[u8]) -> RequestShape {
        let mut shape = RequestShape {
            body_bytes: body.len(),
            ..RequestShape::default()
        };
        let mut max_tokens = None;
        let mut max_completion = None;
        let mut model = None;
        // The last occurrence of a member counts, as in serde_json; a value of another type
        // clears it.
        let read = json::members(
            body,
            &["model", "max_tokens", "max_completion_tokens"],
            |index, raw| match index {
                0 => model = json::string(raw).map(|m| Arc::from(m.as_ref())),
                1 => max_tokens = json::count(raw),
                _ => max_completion = json::count(raw),
            },
        );
        if read.is_none() {
            // Not one JSON object (or cut short): what was read of it is not trusted.
            return shape;
        }
        shape.model = model;
        shape.max_output = max_completion.or(max_tokens);
        shape
    }
}

impl RequestShape {
    /// Bytes of a JSON request body per prompt token, for the estimate: about 4 characters of
    /// English text per token, and the JSON around the messages makes the estimate err on the
    /// high side (a request is never under-charged for its prompt).
    pub const BYTES_PER_TOKEN: usize = 4;

    /// The tokens this request is charged before it goes, as OpenAI-compatible servers count
    /// it: its prompt (its body's bytes / [`BYTES_PER_TOKEN`](Self::BYTES_PER_TOKEN), rounded
    /// up) plus its output cap (`max_completion_tokens` / `max_tokens`; nothing when absent).
    pub fn estimated_tokens(&self) -> u64 {
        self.charge().capped_total()
    }
}

impl RequestShape {
    /// The output reservation of a request that sets no `max_tokens`: a typical completion
    /// until one is learned (its settlement with the answer's `usage` corrects it).
    pub const DEFAULT_OUTPUT_RESERVE: u64 = 256;

    /// Its charge per dimension, for a scope whose token buckets are modelled: its prompt
    /// estimate (as in [`estimated_tokens`](Self::estimated_tokens)) and its output cap, or
    /// [`DEFAULT_OUTPUT_RESERVE`](Self::DEFAULT_OUTPUT_RESERVE) without one.
    pub fn charge(&self) -> TokenCharge {
        let prompt = self.body_bytes.div_ceil(Self::BYTES_PER_TOKEN) as u64;
        match self.max_output {
            Some(cap) => TokenCharge::new(prompt, u64::from(cap)),
            None => TokenCharge::uncapped(prompt, Self::DEFAULT_OUTPUT_RESERVE),
        }
    }
}

/// What a response says the request cost: its `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`: input tokens, cached ones included.
    pub prompt_tokens: u32,
    /// `usage.completion_tokens`: generated tokens.
    pub completion_tokens: u32,
}

impl Usage {
    /// Reads the `usage` of a JSON response body, or of the last server-sent event that
    /// carries one (`data: {...}` lines; OpenAI-compatible streams send it in the final chunk
    /// when asked with `stream_options.include_usage`).
    pub fn read(body: &[u8]) -> Option<Usage> {
        let trimmed = trim_start(body);
        if trimmed.first() == Some(&b'{') {
            return Usage::from_object(trimmed);
        }
        // An event stream: the last `data:` line with a usage wins.
        body.split(|&b| b == b'\n')
            .rev()
            .filter_map(|line| line.strip_prefix(b"data:"))
            .map(trim_start)
            .filter(|data| data.first() == Some(&b'{'))
            .find_map(Usage::from_object)
    }

    fn from_object(body: &[u8]) -> Option<Usage> {
        let mut usage = None;
        json::members(body, &["usage"], |_, raw| {
            // A `usage` that is not an object is skipped (an earlier one stands).
            if !json::is_object(raw) {
                return;
            }
            let mut read = Usage::default();
            let mut any = false;
            let fields = &["prompt_tokens", "completion_tokens"];
            let _ = json::members(raw.get().as_bytes(), fields, |index, raw| {
                if let Some(n) = json::count(raw) {
                    *[&mut read.prompt_tokens, &mut read.completion_tokens][index] = n;
                    any = true;
                }
            });
            usage = any.then_some(read);
        })?;
        usage
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_gives_its_model_size_and_output_cap() {
        let body = br#"{"messages":[{"role":"user","content":"say \"model\": x"}],
            "model":"accounts/fireworks/models/llama-v3p1-8b-instruct","max_tokens":50}"#;
        let shape = RequestShape::read(body);
        assert_eq!(
            shape.model.as_deref(),
            Some("accounts/fireworks/models/llama-v3p1-8b-instruct")
        );
        assert_eq!(shape.body_bytes, body.len());
        assert_eq!(shape.max_output, Some(50));
        let both = RequestShape::read(br#"{"max_completion_tokens":7,"max_tokens":9}"#);
        assert_eq!(both.max_output, Some(7), "the newer name wins");
    }

    #[test]
    fn the_estimate_is_the_prompt_bytes_over_four_plus_the_output_cap() {
        let shape = RequestShape::read(br#"{"model":"m","max_tokens":50}"#);
        assert_eq!(shape.estimated_tokens(), 30u64.div_ceil(4) + 50);
        assert_eq!(RequestShape::read(b"").estimated_tokens(), 0);
    }

    #[test]
    fn decoys_and_garbage_are_not_read() {
        let nested = RequestShape::read(br#"{"metadata":{"model":"m2","max_tokens":1}}"#);
        assert_eq!((nested.model, nested.max_output), (None, None));
        for body in [
            &b""[..],
            b"not json",
            b"[1,2]",
            br#"{"model":"m","max_tokens":"#,
            br#"{"model":5,"max_tokens":-1}"#,
        ] {
            let shape = RequestShape::read(body);
            assert_eq!(shape.model, None, "{body:?}");
            assert_eq!(shape.max_output, None, "{body:?}");
            assert_eq!(shape.body_bytes, body.len());
        }
        let huge = RequestShape::read(br#"{"max_tokens":1e12}"#);
        assert_eq!(huge.max_output, Some(u32::MAX), "saturates");
    }

    /// Regression: only one complete JSON object is read; the hand-written scanner took the
    /// members before a broken part or trailing bytes.
    #[test]
    fn a_body_that_is_not_one_json_object_gives_only_its_size() {
        for body in [
            &br#"{"model":"m","max_tokens":5,"x":tru}"#[..],
            br#"{"model":"m","max_tokens":5} trailing"#,
        ] {
            let shape = RequestShape::read(body);
            assert_eq!((shape.model, shape.max_output), (None, None), "{body:?}");
        }
        let big = RequestShape::read(br#"{"model":"m","max_tokens":1e999}"#);
        assert_eq!(
            (big.model.as_deref(), big.max_output),
            (Some("m"), None),
            "a number out of range says nothing, the rest is read"
        );
        let last =
            RequestShape::read(br#"{"model":"a","max_tokens":5,"model":"b","max_tokens":null}"#);
        assert_eq!((last.model.as_deref(), last.max_output), (Some("b"), None));
    }

    #[test]
    fn usage_from_a_json_body_and_from_the_last_event_of_a_stream() {
        let json = br#"{"id":"x","choices":[{"message":{"content":"{\"usage\":1}"}}],
            "usage":{"prompt_tokens":1200,"completion_tokens":34,"total_tokens":1234}}"#;
        assert_eq!(
            Usage::read(json),
            Some(Usage {
                prompt_tokens: 1200,
                completion_tokens: 34
            })
        );
        let sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n\
            data: [DONE]\n\n";
        assert_eq!(
            Usage::read(sse),
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 2
            })
        );
        assert_eq!(
            Usage::read(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"),
            None
        );
        assert_eq!(Usage::read(br#"{"usage":null}"#), None);
        assert_eq!(Usage::read(b"\xff\xfe garbage"), None);
    }
}
