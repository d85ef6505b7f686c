//! What a layer publishes to the layers inside it while its `call` or one `poll` runs: a
//! thread-local slot, set on entry and put back when the guard drops (also on unwind).
//!
//! Every such scope is synchronous (nothing awaits inside), so a thread-local sees exactly what
//! a task-local would, and the value built inside (a layer's whole future) is not moved out
//! through a closure's return. [`TimeoutByWorkload`](crate::TimeoutByWorkload) publishes its
//! deadline and workload this way (`context`), [`RetryOnStatus`](crate::RetryOnStatus) the
//! request body (`rate_limit::published`).

use std::{cell::Cell, thread::LocalKey};

/// A thread-local slot of what is published.
pub(crate) type Slot<T> = LocalKey<Cell<Option<T>>>;

/// Holds `value` in its slot until dropped, then puts back what was there before.
pub(crate) struct Published<T: 'static> {
    slot: &'static Slot<T>,
    previous: Option<T>,
}

impl<T: 'static> Published<T> {
    /// Publishes `value` (`None` hides an enclosing publication).
    #[inline]
    pub(crate) fn set(slot: &'static Slot<T>, value: Option<T>) -> Self {
        // Only a thread being torn down has no thread-locals: nothing is published then.
        let previous = slot.try_with(|cell| cell.replace(value)).ok().flatten();
        Published { slot, previous }
    }
}

impl<T: 'static> Drop for Published<T> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = self.slot.try_with(|cell| cell.set(previous));
    }
}

/// A copy of what `slot` holds now.
#[inline]
pub(crate) fn current<T: Clone>(slot: &'static Slot<T>) -> Option<T> {
    slot.try_with(|cell| {
        let value = cell.take();
        let copy = value.clone();
        cell.set(value);
        copy
    })
    .ok()
    .flatten()
}
