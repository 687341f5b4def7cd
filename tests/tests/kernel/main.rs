//! Kernel tests: the real XDP program in the real kernel.
//!
//! Each test starts with `privilege::kernel_tests_can_run`, which prints
//! `skipping: <reason>` without CAP_BPF/CAP_NET_ADMIN, and fails under `CI=true`.

mod clock;
mod conntrack;
mod ctcache;
mod ctfilter;
mod differential;
mod directories;
mod fastpath;
mod flood;
mod flows;
mod fuzz;
mod harness;
mod maps;
mod pair;
mod skeleton;
mod traffic;
mod verdicts;
