//! The synchronisation primitives the lock-free and locked shared states use, swapped for
//! [loom](https://docs.rs/loom)'s model-checked ones under `--cfg loom` (see `tests/loom.rs`).
//! Without that cfg these are exactly `std::sync`'s types: the normal build is unchanged.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU32, Ordering},
    Arc, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU32, Ordering},
    Arc, Mutex, MutexGuard,
};
