//! Long-running jobs: placeholder, being written.
