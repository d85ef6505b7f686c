//! The synchronisation primitives the lock-free and locked shared states use, swapped for
//! [loom](https://docs.rs/loom)'s model-checked ones under `--cfg tower_reliability_loom` (`scripts/loom.sh`, `tests/loom.rs`).
//! Without that cfg these are exactly `std::sync`'s types: the normal build is unchanged.

#[cfg(tower_reliability_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    Arc, Mutex, MutexGuard,
};
#[cfg(not(tower_reliability_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    Arc, Mutex, MutexGuard,
};
