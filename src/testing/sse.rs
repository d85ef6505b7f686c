//! Server-sent-event framing of a streamed completion.

use bytes::Bytes;

use super::completion::Completion;

/// The event that ends every OpenAI-style stream.
pub(crate) const DONE: &str = "[DONE]";

/// One event: `data: <data>\n\n` (`data` must not contain a newline; compact JSON never does).
pub(crate) fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The events of a streamed completion: one `chat.completion.chunk` per token, a final chunk
/// with the finish reason and usage, then `data: [DONE]`.
pub(crate) fn completion_events(completion: &Completion) -> Vec<Bytes> {
    let tokens = completion.tokens().len();
    let mut events: Vec<Bytes> = (0..tokens)
        .map(|index| event(&completion.token_chunk(index).to_string()))
        .collect();
    events.push(event(&completion.final_chunk().to_string()));
    events.push(event(DONE));
    events
}
