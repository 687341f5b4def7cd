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
//! - `fib_forward`: the forwarding ceiling: no policy, no connection
//!   tracking, no counters; an IPv4 frame gets a `bpf_fib_lookup`, its TTL
//!   decremented (checksum updated), its MACs rewritten and a `bpf_redirect`,
//!   the same steps as wardgate's fast path; anything else goes to the stack.
#![no_std]
#![no_main]
#![allow(
    unsafe_code,
    reason = "an XDP program reads packets and maps through raw pointers; each block has a SAFETY comment"
)]

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams, xdp_action},
    helpers::{bpf_fib_lookup, bpf_redirect},
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

const _: () = assert!(core::mem::size_of::<FibParams>() == 64);
const ETH_HLEN: usize = 14;
const AF_INET: u8 = 2;

#[xdp]
pub fn fib_forward(ctx: XdpContext) -> u32 {
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + ETH_HLEN + 20 > end {
        return xdp_action::XDP_PASS;
    }
    let eth = data as *mut u8;
    let ip = (data + ETH_HLEN) as *mut u8;
    // SAFETY: every access is within the Ethernet header and the 20 bytes
    // after it, checked against `data_end` above; `ctx.ctx` is valid.
    unsafe {
        // IPv4 with a TTL left to decrement; anything else to the stack.
        if *eth.add(12) != 0x08 || *eth.add(13) != 0x00 || *ip.add(8) <= 1 {
            return xdp_action::XDP_PASS;
        }
        // Zeroed word by word: `mem::zeroed` here compiled to a call of a
        // byte-loop `memset` subprogram, 64 iterations per packet, which
        // is no part of a ceiling (wardgate's fast path clears the same way).
        let mut fib = core::mem::MaybeUninit::<FibParams>::uninit();
        let words = fib.as_mut_ptr().cast::<u64>();
        for i in 0..8 {
            words.add(i).write_volatile(0);
        }
        let fib = &mut *fib.as_mut_ptr();
        fib.family = AF_INET;
        fib.ifindex = (*ctx.ctx).ingress_ifindex;
        fib.l4_protocol = *ip.add(9);
        fib.__bindgen_anon_2.tos = *ip.add(1);
        fib.__bindgen_anon_1.tot_len = u16::from_be_bytes([*ip.add(2), *ip.add(3)]);
        let word = |at: usize| {
            u32::from_ne_bytes([
                *ip.add(at),
                *ip.add(at + 1),
                *ip.add(at + 2),
                *ip.add(at + 3),
            ])
        };
        fib.__bindgen_anon_3.ipv4_src = word(12);
        fib.__bindgen_anon_4.ipv4_dst = word(16);
        let rc = bpf_fib_lookup(
            ctx.ctx.cast(),
            fib,
            core::mem::size_of::<FibParams>() as i32,
            0,
        );
        if rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS) {
            return xdp_action::XDP_PASS;
        }
        // RFC 1624 incremental checksum update for TTL - 1.
        let raw = u16::from_ne_bytes([*ip.add(10), *ip.add(11)]);
        let mut check = u32::from(raw) + u32::from(0x0100u16.to_be());
        check += u32::from(check >= 0xffff);
        let [c0, c1] = (check as u16).to_ne_bytes();
        *ip.add(10) = c0;
        *ip.add(11) = c1;
        *ip.add(8) -= 1;
        for i in 0..6 {
            *eth.add(i) = fib.dmac[i];
            *eth.add(6 + i) = fib.smac[i];
        }
        bpf_redirect(fib.ifindex, 0) as u32
    }
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
