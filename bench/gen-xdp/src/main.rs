//! XDP programs for the forwarding benchmark (`cargo xtask bench forward`).
//!
//! - `generate`: run by `BPF_PROG_TEST_RUN` in live-frames mode on the sender's
//!   veth; writes a UDP frame from the template in `GEN_TEMPLATE` over each
//!   frame (the kernel recycles pages that the stack has modified), varies
//!   the source port over `GEN_FLOWS` flows, and returns `XDP_TX`, which the
//!   kernel turns into a transmit on that veth: the gateway receives it.
//! - `sink`: on the receiver's veth; counts every frame (per CPU) and drops it.
//! - `pass`: `XDP_PASS`; attached to the gateway's ingress veth when no
//!   wardgate program is, so that the veth runs NAPI (XDP frames redirected
//!   into a veth are delivered only then) in every configuration.
#![no_std]
#![no_main]
#![allow(
    unsafe_code,
    reason = "an XDP program reads packets and maps through raw pointers; each block has a SAFETY comment"
)]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};

/// Bytes of the template written over every frame: Ethernet, IPv4, UDP.
const HEADERS: usize = 42;
/// Offset of the UDP source port.
const SPORT: usize = 34;

/// Index 0: the frame template (first `HEADERS` bytes used).
#[map(name = "GEN_TEMPLATE")]
static TEMPLATE: Array<[u8; 64]> = Array::with_max_entries(1, 0);

/// Index 0: number of flows (source ports counted up from the template's).
#[map(name = "GEN_FLOWS")]
static FLOWS: Array<u32> = Array::with_max_entries(1, 0);

/// Index 0: the frame counter that picks the flow; per CPU.
#[map(name = "GEN_SEQ")]
static SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Index 0: frames the sink saw; per CPU.
#[map(name = "SINK_COUNT")]
static SINK: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn generate(ctx: XdpContext) -> u32 {
    try_generate(&ctx).unwrap_or(xdp_action::XDP_ABORTED)
}

fn try_generate(ctx: &XdpContext) -> Result<u32, ()> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + HEADERS > end {
        return Err(());
    }
    let template = TEMPLATE.get(0).ok_or(())?;
    let flows = FLOWS.get(0).copied().unwrap_or(1).max(1);
    let seq = SEQ.get_ptr_mut(0).ok_or(())?;
    // SAFETY: `start + HEADERS <= end` was checked above, the template
    // holds 64 bytes, and `seq` points at this CPU's map slot.
    unsafe {
        let n = *seq;
        *seq = n.wrapping_add(1);
        let dst = start as *mut u8;
        #[allow(
            clippy::needless_range_loop,
            reason = "one index for the raw destination pointer and the template"
        )]
        for i in 0..HEADERS {
            *dst.add(i) = template[i];
        }
        let sport = u16::from_be_bytes([template[SPORT], template[SPORT + 1]])
            .wrapping_add((n % flows) as u16);
        let be = sport.to_be_bytes();
        *dst.add(SPORT) = be[0];
        *dst.add(SPORT + 1) = be[1];
    }
    Ok(xdp_action::XDP_TX)
}

#[xdp]
pub fn sink(_ctx: XdpContext) -> u32 {
    if let Some(count) = SINK.get_ptr_mut(0) {
        // SAFETY: a valid per-CPU slot.
        unsafe { *count += 1 };
    }
    xdp_action::XDP_DROP
}

#[xdp]
pub fn pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// `bpf_redirect`-family behaviour and test runs need a GPL-compatible program.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
