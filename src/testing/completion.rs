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

/// One generated chat completion.
#[derive(Clone, Debug)]
pub(crate) struct Completion {
    id: String,
    created: u64,
    model: String,
    tokens: Vec<String>,
    prompt_tokens: usize,
    finish_reason: &'static str,
}

impl Completion {
    /// `tokens` content tokens; `truncated` says they were cut short by `max_tokens`.
    pub(crate) fn new(
        id: String,
        model: String,
        prompt_tokens: usize,
        tokens: usize,
        truncated: bool,
    ) -> Self {
        Self {
            id,
            created: unix_now(),
            model,
            tokens: (0..tokens).map(token).collect(),
            prompt_tokens,
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

    /// A `chat.completion.chunk` carrying token `index` (the first one also carries the role).
    pub(crate) fn token_chunk(&self, index: usize) -> Value {
        let content = self.tokens.get(index).map(String::as_str).unwrap_or("");
        let delta = if index == 0 {
            json!({ "role": "assistant", "content": content })
        } else {
            json!({ "content": content })
        };
        self.chunk(delta, Value::Null, None)
    }

    /// The last `chat.completion.chunk`: an empty delta, the finish reason and the usage.
    pub(crate) fn final_chunk(&self) -> Value {
        self.chunk(json!({}), json!(self.finish_reason), Some(self.usage()))
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

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.tokens.len(),
            "total_tokens": self.prompt_tokens + self.tokens.len(),
        })
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
