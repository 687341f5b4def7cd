#![no_std]
// This library target exists so that `wardgate-bench-forward` can name this
// crate as a build-dependency: cargo then reruns its build.rs (which builds the
// real programs, `src/main.rs`, for bpfel-unknown-none) when this crate changes.
