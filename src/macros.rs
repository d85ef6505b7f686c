//! The crate's one macro: the accessors every service of a layer has, written once (as
//! tower-http's `define_inner_service_accessors!`).

/// Expands, inside `impl<S, ..> XService<S, ..>` of a service whose wrapped service is the field
/// `inner: S`, to tower's `get_ref`, `get_mut` and `into_inner`.
macro_rules! service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably. Calling it directly bypasses this layer.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service, returning the inner one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub(crate) use service_accessors;
