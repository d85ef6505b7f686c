//! [`get_request`]: the usual `make_request` of a [`JobPoller`](super::JobPoller).

use http::{HeaderMap, Request, Uri};

/// A `make_request` that builds `GET uri` with `headers` (such as `Authorization`) and an empty
/// body, for every poll.
///
/// It cannot fail: the URI and the headers are checked once, by you, when you build them (a job
/// name read off the network may not make a valid URI: check it with `Uri::try_from` and handle
/// the error, rather than unwrapping a request builder inside the poll loop).
///
/// ```
/// use http::{header::AUTHORIZATION, HeaderMap, HeaderValue, Uri};
/// use http_body_util::Full;
/// use tower_reliability::jobs::get_request;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let name = "accounts/me/batchInferenceJobs/b1"; // from the create call's answer
/// let uri = Uri::try_from(format!("https://api.fireworks.ai/v1/{name}"))?;
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_str("Bearer my-key")?);
/// let make_request = get_request::<Full<bytes::Bytes>>(uri, headers);
/// let request = make_request();
/// assert_eq!(request.method(), http::Method::GET);
/// assert_eq!(request.uri().path(), "/v1/accounts/me/batchInferenceJobs/b1");
/// # Ok(())
/// # }
/// ```
pub fn get_request<B: Default>(
    uri: Uri,
    headers: HeaderMap,
) -> impl Fn() -> Request<B> + Clone + Send + Sync {
    move || {
        let mut request = Request::new(B::default());
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        request
    }
}
