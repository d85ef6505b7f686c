//! The copy of a request head that retries are sent with.
//!
//! Every request through the retry layer keeps a copy of its head, and most never need it.
//! `request::Parts::clone` copies the `HeaderMap` whole: its hash index and its entries, two
//! allocations. The index is only for lookups, which a copy kept for replay never does, so the
//! copy here keeps the headers as a plain list (one allocation) and rebuilds a map only when a
//! retry is sent. Names and values are cheap handles (`Bytes`) in both.

use http::{
    request, Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version,
};

/// A request head, kept to be sent again.
#[derive(Debug)]
pub(super) struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Vec<(HeaderName, HeaderValue)>,
    extensions: Extensions,
}

impl Head {
    /// A copy of `parts`.
    pub(super) fn copy(parts: &request::Parts) -> Head {
        Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: list(&parts.headers),
            extensions: parts.extensions.clone(),
        }
    }

    /// The head again, for the next attempt. The map gets room for one more header: a client
    /// that adds one (hyper-util inserts `host`) then does not grow it.
    pub(super) fn parts(&self) -> request::Parts {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.version = self.version;
        parts.headers = headers;
        parts.extensions = self.extensions.clone();
        parts
    }

    /// The extensions the request was sent with (a [`Deadline`](crate::context::Deadline)
    /// among them, if the caller set one).
    pub(super) fn extensions(&self) -> &Extensions {
        &self.extensions
    }
}

/// The headers as a list, sized once (the map's iterator gives no exact size up front).
fn list(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut list = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        list.push((name.clone(), value.clone()));
    }
    list
}

#[cfg(test)]
mod tests {
    use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

    use super::*;

    #[test]
    fn the_copy_sends_the_same_head_every_time() {
        let request = Request::post("https://api.example.invalid/v1/chat?x=1")
            .version(Version::HTTP_2)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, HeaderValue::from_str("Bearer k").unwrap())
            .header("x-custom", "1")
            .extension(7u32)
            .body(())
            .unwrap();
        let (original, ()) = request.into_parts();
        let head = Head::copy(&original);
        for _ in 0..2 {
            let again = head.parts();
            assert_eq!(again.method, original.method);
            assert_eq!(again.uri, original.uri);
            assert_eq!(again.version, original.version);
            assert_eq!(again.headers, original.headers);
            // Repeated names keep their order.
            let accepts: Vec<_> = again.headers.get_all(ACCEPT).iter().collect();
            assert_eq!(accepts, ["text/event-stream", "application/json"]);
            assert_eq!(again.extensions.get::<u32>(), Some(&7));
        }
    }

    #[test]
    fn sensitive_values_stay_sensitive() {
        let mut value = HeaderValue::from_static("Bearer secret");
        value.set_sensitive(true);
        let request = Request::get("/")
            .header(AUTHORIZATION, value)
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let again = Head::copy(&parts).parts();
        assert!(again.headers[AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn an_empty_head_copies() {
        let (parts, ()) = Request::new(()).into_parts();
        let again = Head::copy(&parts).parts();
        assert!(again.headers.is_empty());
        assert_eq!(again.method, Method::GET);
    }
}
