//! The wardgate compiler: policy in, `(PolicyImage, Vec<Diagnostic>)` out.
//!
//! Pure: no syscalls, no aya. Same input, byte-identical image.
