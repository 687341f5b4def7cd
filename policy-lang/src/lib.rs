//! The wardgate policy language (`.ward`): text to a typed AST and diagnostics.
//!
//! This crate knows nothing of graphs, eBPF or the kernel.
