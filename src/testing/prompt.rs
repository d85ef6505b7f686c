//! How many prompt tokens a chat request has, by one deterministic rule: for each message, the
//! UTF-8 bytes of its text (a string `content`, or the `text` of each part of an array
//! `content`), divided by four and rounded up; then the sum over the messages. Anything else
//! in a message (its role, tool calls, images) counts nothing.
//!
//! Four bytes a token is about what real tokenizers give for English text, and the rule is
//! easy for a test to invert: a message of `4 * n` ASCII bytes is `n` tokens.

use serde_json::{Map, Value};

/// The prompt tokens of these messages.
pub(crate) fn prompt_tokens(messages: &[Map<String, Value>]) -> u64 {
    messages
        .iter()
        .map(|message| text_bytes(message.get("content")).div_ceil(4))
        .sum()
}

/// The cached share of `prompt` tokens: `floor(prompt * share)`, `share` in `0.0..=1.0`.
pub(crate) fn cached_tokens(prompt: u64, share: f64) -> u64 {
    // `as` saturates, and `share` is clamped when configured: never above `prompt`.
    ((prompt as f64 * share).floor() as u64).min(prompt)
}

fn text_bytes(content: Option<&Value>) -> u64 {
    let bytes = match content {
        Some(Value::String(text)) => text.len(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(str::len)
            .sum(),
        _ => 0,
    };
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(value: Value) -> Vec<Map<String, Value>> {
        serde_json::from_value(value).expect("messages")
    }

    #[test]
    fn bytes_over_four_rounded_up_per_message() {
        let list = messages(json!([
            { "role": "system", "content": "12345678" },
            { "role": "user", "content": "Say hello to the test" },
            { "role": "user", "content": [
                { "type": "text", "text": "abcd" },
                { "type": "image_url", "image_url": { "url": "http://x" } },
                { "type": "text", "text": "e" },
            ]},
            { "role": "assistant", "tool_calls": [] },
            { "role": "user", "content": "é" },
        ]));
        // 2 + ceil(21 / 4) + ceil(5 / 4) + 0 + ceil(2 / 4)
        assert_eq!(prompt_tokens(&list), 2 + 6 + 2 + 1);
    }

    #[test]
    fn cached_share() {
        assert_eq!(cached_tokens(10, 0.0), 0);
        assert_eq!(cached_tokens(10, 0.25), 2);
        assert_eq!(cached_tokens(10, 1.0), 10);
        assert_eq!(cached_tokens(u64::MAX, 1.0), u64::MAX);
    }
}
