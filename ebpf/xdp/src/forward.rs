//! The fast path: forward a packet the policy passed without the kernel
//! stack: `bpf_fib_lookup` for the next hop, TTL / hop-limit decrement (with
//! the IPv4 checksum updated incrementally), MAC rewrite, `bpf_redirect`.
//!
//! Whatever the FIB lookup does not resolve to a plain forward (no neighbour
//! entry yet, local delivery, needs fragmentation, blackhole, unreachable)
//! goes to the kernel stack, which knows what to do: this path never drops.
//! VLAN-tagged frames, fragments and packets whose TTL would expire also go
//! to the stack.

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams, xdp_action},
    helpers::{bpf_fib_lookup, bpf_redirect},
    programs::XdpContext,
};
use wardgate_common::counter;

use crate::{maps::Tally, parse::Packet};

const ETH_HLEN: usize = 14;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const _: () = assert!(core::mem::size_of::<FibParams>() == 64);

/// Zeroes the lookup parameters with word stores (a struct assignment would
/// become a byte-loop `memset`).
#[inline(always)]
fn clear(fib: &mut FibParams) {
    let words = (fib as *mut FibParams).cast::<u64>();
    for i in 0..8 {
        // SAFETY: `FibParams` is 64 bytes and 8-aligned inside the scratch map value.
        unsafe { words.add(i).write_volatile(0) };
    }
}

#[inline(always)]
fn to_stack(tally: &Tally) -> u32 {
    tally.add(counter::FAST_TO_STACK);
    xdp_action::XDP_PASS
}

/// Forwards `p` (already allowed) or hands it to the stack, counting which
/// in `tally`. `fib` is scratch space.
#[inline(always)]
pub fn forward(ctx: &XdpContext, tally: &Tally, p: &Packet, fib: &mut FibParams) -> u32 {
    if p.vlan_tags != 0 || p.later_fragment != 0 || p.first_fragment != 0 {
        return to_stack(tally);
    }
    let data = ctx.data();
    let need = if p.family == 4 { 20 } else { 40 };
    if data + ETH_HLEN + need > ctx.data_end() {
        return to_stack(tally);
    }
    let ip = (data + ETH_HLEN) as *mut u8;
    clear(fib);
    // SAFETY: every read and write below is within the `need` bytes after the
    // Ethernet header, checked against `data_end` above; `ctx.ctx` is valid.
    unsafe {
        fib.ifindex = (*ctx.ctx).ingress_ifindex;
        fib.l4_protocol = p.proto;
        fib.sport = p.sport.to_be();
        fib.dport = p.dport.to_be();
        let word = |at: usize| {
            u32::from_ne_bytes([
                *ip.add(at),
                *ip.add(at + 1),
                *ip.add(at + 2),
                *ip.add(at + 3),
            ])
        };
        if p.family == 4 {
            if *ip.add(8) <= 1 {
                // The stack sends the ICMP time exceeded.
                return to_stack(tally);
            }
            fib.family = AF_INET;
            fib.__bindgen_anon_2.tos = *ip.add(1);
            fib.__bindgen_anon_1.tot_len = u16::from_be_bytes([*ip.add(2), *ip.add(3)]);
            fib.__bindgen_anon_3.ipv4_src = word(12);
            fib.__bindgen_anon_4.ipv4_dst = word(16);
        } else {
            if *ip.add(7) <= 1 {
                return to_stack(tally);
            }
            fib.family = AF_INET6;
            fib.__bindgen_anon_2.flowinfo = word(0) & 0x0fff_ffffu32.to_be();
            fib.__bindgen_anon_1.tot_len = 40 + u16::from_be_bytes([*ip.add(4), *ip.add(5)]);
            fib.__bindgen_anon_3.ipv6_src = [word(8), word(12), word(16), word(20)];
            fib.__bindgen_anon_4.ipv6_dst = [word(24), word(28), word(32), word(36)];
        }
        let rc = bpf_fib_lookup(
            ctx.ctx.cast(),
            fib,
            core::mem::size_of::<FibParams>() as i32,
            0,
        );
        if rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS) {
            return to_stack(tally);
        }
        if p.family == 4 {
            // RFC 1624 incremental update for TTL - 1, as the kernel's ip_decrease_ttl.
            let raw = u16::from_ne_bytes([*ip.add(10), *ip.add(11)]);
            let mut check = u32::from(raw) + u32::from(0x0100u16.to_be());
            check += u32::from(check >= 0xffff);
            let [c0, c1] = (check as u16).to_ne_bytes();
            *ip.add(10) = c0;
            *ip.add(11) = c1;
            *ip.add(8) -= 1;
        } else {
            *ip.add(7) -= 1;
        }
        let eth = data as *mut u8;
        for i in 0..6 {
            *eth.add(i) = fib.dmac[i];
            *eth.add(6 + i) = fib.smac[i];
        }
        tally.add(counter::FAST_FORWARDED);
        bpf_redirect(fib.ifindex, 0) as u32
    }
}
