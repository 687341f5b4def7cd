#![no_std]
// This library target exists so that `wardgate-agent` can name this crate as a
// build-dependency: cargo then rebuilds the agent (whose build.rs builds the
// real program, `src/main.rs`, for bpfel-unknown-none) when this crate or
// `wardgate-common` changes.
