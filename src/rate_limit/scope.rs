//! What one rate-limit state covers: providers limit per account *and model*, so a 429 for one
//! model must not hold requests for another.
//!
//! A request's scope is, in order: a [`Scope`] in its extensions (set it yourself to scope by
//! anything else: a tenant, an endpoint); the `model` of its JSON body, as
//! [`RetryOnStatus`](crate::RetryOnStatus) above buffered it; else the client-wide
//! [`Scope::global`]. The circuit breaker is not scoped: an outage is the upstream's, not a
//! model's.

use std::{fmt, sync::Arc};

use bytes::Bytes;

use super::RequestShape;

/// The key of one rate-limit state: a model, or the client-wide scope.
///
/// ```
/// use tower_reliability::rate_limit::Scope;
///
/// let mut request = http::Request::new(());
/// // Scope this request by tenant rather than by model.
/// request.extensions_mut().insert(Scope::named("tenant-42"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Scope(Option<Arc<str>>);

impl Scope {
    /// The client-wide scope: requests that name no model, and every request of a store that
    /// does not scope.
    pub const fn global() -> Scope {
        Scope(None)
    }

    /// A scope of its own, named `name` (a model, a tenant).
    pub fn named(name: &str) -> Scope {
        Scope(Some(Arc::from(name)))
    }

    /// The name, or `None` for the client-wide scope.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether this is the client-wide scope.
    pub fn is_global(&self) -> bool {
        self.0.is_none()
    }

    /// The scope of a model name, or the client-wide scope for none.
    pub(crate) fn from_model(model: Option<Arc<str>>) -> Scope {
        Scope(model)
    }

    /// The scope a request body names: its JSON `model`, or the client-wide scope.
    pub fn of_body(body: &[u8]) -> Scope {
        Scope(RequestShape::read(body).model)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => write!(f, "Scope({name:?})"),
            None => f.write_str("Scope(global)"),
        }
    }
}

/// How to find a request's scope, kept from `call` until its outcome: read the body only if
/// someone needs the answer (the lock-free path never does unless the server pushes back).
#[derive(Debug, Clone, Default)]
pub(crate) enum ScopeSource {
    /// Known already.
    Known(Scope),
    /// In this body, not read yet.
    Body(Bytes),
    /// Nothing to read: the client-wide scope.
    #[default]
    Global,
}

impl ScopeSource {
    /// The scope, reading the body if it has not been read.
    pub(crate) fn resolve(&self) -> Scope {
        match self {
            ScopeSource::Known(scope) => scope.clone(),
            ScopeSource::Body(body) => Scope::of_body(body),
            ScopeSource::Global => Scope::global(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_names_its_model_scope_or_none() {
        let scope = Scope::of_body(br#"{"messages":[],"model":"m-fast"}"#);
        assert_eq!(scope, Scope::named("m-fast"));
        assert_eq!(format!("{scope:?}"), r#"Scope("m-fast")"#);
        assert!(Scope::of_body(b"not json").is_global());
        assert!(Scope::of_body(br#"{"model":7}"#).is_global());
        assert_eq!(Scope::default(), Scope::global());
        let lazy = ScopeSource::Body(Bytes::from_static(br#"{"model":"a"}"#));
        assert_eq!(lazy.resolve().name(), Some("a"));
    }
}
