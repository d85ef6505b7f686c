//! One poll: send the status request through the service and sort the outcome into an answer
//! to interpret, a failure another poll can fix, or a refusal it cannot.

use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{response::Parts, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_service::Service;

use super::error::{JobErrorKind, PollFailure};
use crate::{
    classify::{Policy, RetryDecision},
    context::Deadline,
    error::{BoxError, Error},
    headers,
};

/// How one poll ended.
pub(super) enum Polled<E> {
    /// A successful answer, read whole: for the interpreter.
    Answer(Parts, Bytes),
    /// Another poll can fix this; with the wait the server (or the rate-limit gate) asked for.
    Failed(PollFailure, Option<Duration>),
    /// Another poll cannot fix this.
    Refused(JobErrorKind<E>),
}

/// Sends `request` through `service` (readied first) and reads the answer.
///
/// The wait's `deadline` reaches the layers inside the way [`TimeoutByWorkload`] publishes its
/// own: ambiently, around the call, so each layer sees the earlier of the two. It is not put in
/// the request's extensions, because an extension takes precedence over the ambient deadline
/// and a distant wait deadline (hours) would then hide the stack's nearer one (seconds). A
/// `Deadline` the caller put there is tightened instead.
///
/// A status is transient when `policy` (the same [`Policy`] the retry layer and the gate read)
/// judges it retryable, or retryable but for the server's `x-should-retry: false` (a poll comes
/// much later than a retry would). Retryable statuses are not read: their body is dropped with the response, which costs at
/// most that connection, and a stalled error body cannot hold the poll up. Other bodies are read
/// up to `limit` bytes.
///
/// [`TimeoutByWorkload`]: crate::TimeoutByWorkload
pub(super) async fn once<S, B, ResB, E>(
    service: &mut S,
    mut request: Request<B>,
    deadline: Option<Deadline>,
    policy: &impl Policy,
    limit: usize,
) -> Polled<E>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
    ResB::Error: Into<BoxError>,
{
    if let Err(e) = std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        return failed(Error::from_inner(e));
    }
    let call = match deadline {
        Some(deadline) => {
            if let Some(own) = request.extensions_mut().get_mut::<Deadline>() {
                *own = (*own).min(deadline);
            }
            deadline.scope(|| service.call(request))
        }
        None => service.call(request),
    };
    let response = match call.await {
        Ok(response) => response,
        Err(e) => return failed(Error::from_inner(e)),
    };
    let (parts, body) = response.into_parts();
    let class = policy.classify_response(parts.status, &parts.headers);
    if matches!(
        class.retry,
        RetryDecision::Retry(_) | RetryDecision::ServerSaidNo
    ) {
        let hint = headers::retry_after(&parts.headers, SystemTime::now());
        return Polled::Failed(PollFailure::Status(parts.status), hint);
    }
    if !parts.status.is_success() {
        // The server's explanation: its first `limit` bytes, whatever follows.
        let body = prefix(body, limit).await;
        return Polled::Refused(JobErrorKind::Rejected {
            status: parts.status,
            body,
        });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Polled::Answer(parts, collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            Polled::Refused(JobErrorKind::BodyTooLarge { limit })
        }
        Err(e) => failed(Error::from_inner(e)),
    }
}

/// The first `limit` bytes of a body, or what could be read of them before it broke.
async fn prefix<B: http_body::Body>(body: B, limit: usize) -> Bytes {
    let mut body = std::pin::pin!(body);
    let mut read = BytesMut::new();
    while read.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    let take = data.remaining().min(limit - read.len());
                    read.put(data.copy_to_bytes(take));
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    read.freeze()
}

fn failed<E>(error: Error) -> Polled<E> {
    let hint = error.retry_after();
    Polled::Failed(PollFailure::Error(error), hint)
}
