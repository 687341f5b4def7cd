//! nftables tests: the ruleset of `wardgate compile --target nftables`,
//! loaded into a real gateway namespace and fed real packets.
//!
//! Each test starts with `privilege::kernel_tests_can_run` and
//! `privilege::tool_available("nft")`: without them it prints `skipping:`,
//! and under `CI=true` it fails.

mod differential;
mod elements;
mod gateway;
mod probe;
mod readback;
