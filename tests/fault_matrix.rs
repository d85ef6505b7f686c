//! Placeholder: the fault matrix is being written.
