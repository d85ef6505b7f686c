//! Server-sent-event framing of a streamed completion.

use bytes::Bytes;
use serde_json::Value;

use super::completion::Completion;

/// The event that ends every OpenAI-style stream.
pub(crate) const DONE: &str = "[DONE]";

/// One event: `data: <data>\n\n` (`data` must not contain a newline; compact JSON never does).
pub(crate) fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The events of a streamed completion: one `chat.completion.chunk` per token (the first
/// `tokens` events, one token each: what the generated-token meter counts on), a chunk with
/// the finish reason, then `data: [DONE]`.
///
/// The usage goes where Fireworks puts it, on the finish chunk; with `include_usage`
/// (OpenAI's `stream_options`), as OpenAI does instead: `"usage": null` on every chunk, then
/// one more chunk with no choices and the usage, before `[DONE]`.
pub(crate) fn completion_events(completion: &Completion, include_usage: bool) -> Vec<Bytes> {
    let tokens = completion.tokens().len();
    let mut events: Vec<Bytes> = (0..tokens)
        .map(|index| event(&completion.token_chunk(index, include_usage).to_string()))
        .collect();
    if include_usage {
        events.push(event(&completion.finish_chunk(Value::Null).to_string()));
        events.push(event(&completion.usage_chunk().to_string()));
    } else {
        events.push(event(
            &completion.finish_chunk(completion.usage()).to_string(),
        ));
    }
    events.push(event(DONE));
    events
}
