//! What the floor publishes in thread-locals around the inner `call` and each inner `poll`
//! (`src/scoped.rs`, `src/context.rs`, `src/rate_limit/published.rs`).

use std::{cell::Cell, thread::LocalKey};

use bytes::Bytes;
use tokio::time::Instant;
use tower_reliability::Workload;

/// What the floor publishes around the inner `call` and each inner `poll`: the deadline and the
/// workload (`src/context.rs` `Ambient`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ambient {
    pub(super) deadline: Instant,
    pub(super) workload: Workload,
}

thread_local! {
    pub(super) static AMBIENT: Cell<Option<Ambient>> = const { Cell::new(None) };
    pub(super) static BODY: Cell<Option<Bytes>> = const { Cell::new(None) };
}

/// Holds a value in a thread-local slot until dropped, then restores the previous one
/// (`src/scoped.rs` `Published`).
pub(super) struct Published<T: 'static> {
    slot: &'static LocalKey<Cell<Option<T>>>,
    pub(super) previous: Option<T>,
}

impl<T: 'static> Published<T> {
    #[inline]
    pub(super) fn set(slot: &'static LocalKey<Cell<Option<T>>>, value: Option<T>) -> Self {
        let previous = slot.try_with(|cell| cell.replace(value)).ok().flatten();
        Published { slot, previous }
    }
}

impl<T: 'static> Drop for Published<T> {
    #[inline]
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = self.slot.try_with(|cell| cell.set(previous));
    }
}

/// What an enclosing floor published on this thread, if any.
fn published() -> Option<Ambient> {
    AMBIENT.try_with(Cell::get).ok().flatten()
}

/// The deadline published by an enclosing floor on this thread, if any.
pub fn published_deadline() -> Option<Instant> {
    published().map(|a| a.deadline)
}

/// The workload published by an enclosing floor on this thread, if any.
pub fn published_workload() -> Option<Workload> {
    published().map(|a| a.workload)
}

/// A copy of the request body published around the inner `call`, if any.
pub fn published_body() -> Option<Bytes> {
    BODY.try_with(|cell| {
        let body = cell.take();
        let copy = body.clone();
        cell.set(body);
        copy
    })
    .ok()
    .flatten()
}
