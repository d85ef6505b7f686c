#!/usr/bin/env bash
# Model checks of the retry budget and the rate-limit store with loom (tests/loom.rs): every
# interleaving of a few concurrent operations, on the real code (src/sync.rs switches the
# crate's atomics and mutexes to loom's under the cfg). Own target directory, so the normal
# build cache is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg tower_reliability_loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_LOOM:-target/loom}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
cargo test --release --test loom -- --test-threads 1 "$@"
