//! A global allocator that counts heap allocations, so a benchmark can report allocations per
//! request, and can optionally record where each allocation came from.
//!
//! Install it in a bench binary with
//! `#[global_allocator] static ALLOCATOR: CountingAllocator = CountingAllocator;`.
//! Every `alloc`, `alloc_zeroed` and `realloc` call counts as one allocation (a `realloc` that
//! grows a `Vec` is a trip to the allocator like any other); `dealloc` is not counted.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    backtrace::Backtrace,
    cell::Cell,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
};

/// Counts allocator calls, then forwards them to [`System`].
pub struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TRACING: AtomicBool = AtomicBool::new(false);
static TRACES: Mutex<Vec<Backtrace>> = Mutex::new(Vec::new());

thread_local! {
    /// Set while this thread records a backtrace, whose own allocations must not recurse.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

impl CountingAllocator {
    fn on_allocation() {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if TRACING.load(Ordering::Relaxed) && !IN_TRACE.with(Cell::get) {
            IN_TRACE.with(|t| t.set(true));
            let trace = Backtrace::force_capture();
            if let Ok(mut traces) = TRACES.lock() {
                traces.push(trace);
            }
            IN_TRACE.with(|t| t.set(false));
        }
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping around it never touches the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::on_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::on_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::on_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocator calls so far, on every thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Runs `f` and returns a backtrace for every allocation made meanwhile (by any thread).
pub fn trace_allocations<R>(f: impl FnOnce() -> R) -> (R, Vec<Backtrace>) {
    if let Ok(mut traces) = TRACES.lock() {
        traces.clear();
    }
    TRACING.store(true, Ordering::SeqCst);
    let result = f();
    TRACING.store(false, Ordering::SeqCst);
    let traces = TRACES
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    (result, traces)
}
