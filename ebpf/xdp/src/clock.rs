//! The program's clock, in nanoseconds of `CLOCK_MONOTONIC_COARSE`.
//!
//! Coarse (jiffy) time is plenty for idle timeouts of seconds and a rate
//! limit per second. `bpf_jiffies64` costs one load (the verifier inlines
//! it), where `bpf_ktime_get_coarse_ns` is a helper call, and a call is
//! expensive on CPUs whose return-stack mitigation routes every `ret`
//! through a thunk. The agent calibrates `Config::clock_tick_ns` and
//! `clock_offset_ns` so that jiffies scale to the monotonic clock; with no
//! calibration (`clock_tick_ns` 0) the helper answers.

use aya_ebpf::{
    helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    programs::XdpContext,
};
use wardgate_common::Config;

/// Now, in nanoseconds of `CLOCK_MONOTONIC_COARSE` (to within a tick).
#[inline(always)]
pub fn now(config: &Config) -> u64 {
    if config.clock_tick_ns == 0 {
        // SAFETY: a BPF helper with no arguments.
        return unsafe { bpf_ktime_get_coarse_ns() };
    }
    // SAFETY: a BPF helper with no arguments.
    let jiffies = unsafe { bpf_jiffies64() };
    jiffies
        .wrapping_mul(u64::from(config.clock_tick_ns))
        .wrapping_sub(config.clock_offset_ns)
}

/// Writes the jiffies counter and the coarse clock, read back to back,
/// over the first 16 bytes of the frame (nothing if it is shorter).
#[inline(always)]
pub fn sample(ctx: &XdpContext) {
    let start = ctx.data();
    if start + 16 > ctx.data_end() {
        return;
    }
    // SAFETY: BPF helpers with no arguments.
    let (jiffies, coarse) = unsafe { (bpf_jiffies64(), bpf_ktime_get_coarse_ns()) };
    let out = start as *mut u64;
    // SAFETY: the 16 bytes were checked to lie within the frame; packet
    // memory may be written unaligned.
    unsafe {
        out.write_unaligned(jiffies);
        out.add(1).write_unaligned(coarse);
    }
}
