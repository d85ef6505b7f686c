//! The completion the server "generates": deterministic tokens in OpenAI's JSON shapes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The words tokens are taken from, in turn.
const WORDS: [&str; 12] = [
    "Hello",
    "from",
    "the",
    "fault",
    "injecting",
    "Fireworks",
    "test",
    "server",
    "with",
    "one",
    "token",
    "each",
];

/// The prompt a completion answers, as its `usage` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prompt {
    /// Prompt tokens, cached ones included.
    pub(crate) tokens: u64,
    /// Cached prompt tokens, when the server reports them
    /// (`usage.prompt_tokens_details.cached_tokens`).
    pub(crate) cached: Option<u64>,
}

/// One generated chat completion.
#[derive(Clone, Debug)]
pub(crate) struct Completion {
    id: String,
    created: u64,
    model: String,
    tokens: Vec<String>,
    prompt: Prompt,
    finish_reason: &'static str,
}

impl Completion {
    /// `tokens` content tokens; `truncated` says they were cut short by `max_tokens`.
    pub(crate) fn new(
        id: String,
        model: String,
        prompt: Prompt,
        tokens: usize,
        truncated: bool,
    ) -> Self {
        Self {
            id,
            created: unix_now(),
            model,
            tokens: (0..tokens).map(token).collect(),
            prompt,
            finish_reason: if truncated { "length" } else { "stop" },
        }
    }

    /// The content tokens, in order.
    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The non-streaming `chat.completion` object.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.tokens.concat() },
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        })
    }

    /// A `chat.completion.chunk` carrying token `index` (the first one also carries the role),
    /// with `"usage": null` when asked (as OpenAI sends it when a usage chunk will follow).
    pub(crate) fn token_chunk(&self, index: usize, null_usage: bool) -> Value {
        let content = self.tokens.get(index).map(String::as_str).unwrap_or("");
        let delta = if index == 0 {
            json!({ "role": "assistant", "content": content })
        } else {
            json!({ "content": content })
        };
        self.chunk(delta, Value::Null, null_usage.then_some(Value::Null))
    }

    /// The `chat.completion.chunk` that ends the choice: an empty delta, the finish reason and
    /// `usage` (the usage itself, or `null` when a usage chunk follows).
    pub(crate) fn finish_chunk(&self, usage: Value) -> Value {
        self.chunk(json!({}), json!(self.finish_reason), Some(usage))
    }

    /// OpenAI's usage chunk (`stream_options.include_usage`): no choices, the usage.
    pub(crate) fn usage_chunk(&self) -> Value {
        let mut chunk = self.chunk(Value::Null, Value::Null, Some(self.usage()));
        if let Some(object) = chunk.as_object_mut() {
            object.insert("choices".to_owned(), json!([]));
        }
        chunk
    }

    fn chunk(&self, delta: Value, finish_reason: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        });
        if let (Some(usage), Some(object)) = (usage, chunk.as_object_mut()) {
            object.insert("usage".to_owned(), usage);
        }
        chunk
    }

    /// `usage`: prompt, completion and total tokens (and the cached ones, when reported).
    pub(crate) fn usage(&self) -> Value {
        let completion = u64::try_from(self.tokens.len()).unwrap_or(u64::MAX);
        let mut usage = json!({
            "prompt_tokens": self.prompt.tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt.tokens.saturating_add(completion),
        });
        if let (Some(cached), Some(object)) = (self.prompt.cached, usage.as_object_mut()) {
            object.insert(
                "prompt_tokens_details".to_owned(),
                json!({ "cached_tokens": cached }),
            );
        }
        usage
    }
}

/// Token `index`: a word, with a leading space after the first.
fn token(index: usize) -> String {
    let word = WORDS[index % WORDS.len()];
    if index == 0 {
        word.to_owned()
    } else {
        format!(" {word}")
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}
