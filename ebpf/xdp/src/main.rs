//! The wardgate XDP program: one generic program, the policy is data in maps.
//!
//! This is the foundation skeleton: it parses Ethernet, up to two VLAN tags,
//! IPv4 (any IHL) and IPv6 (extension headers skipped to a fixed bound) and the
//! transport header, counts packets per protocol in a per-CPU array and passes
//! everything. Policy enforcement is built on top of [`parse`].
#![no_std]
#![no_main]

mod parse;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use wardgate_common::{counter, maps};

#[map(name = "WG_COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

const _: () = assert!(matches!(maps::COUNTERS.as_bytes(), b"WG_COUNTERS"));

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array slot is only touched by this CPU, and the
        // pointer comes from a successful lookup of an in-range index.
        unsafe { *slot += 1 };
    }
}

#[xdp]
pub fn wardgate(ctx: XdpContext) -> u32 {
    match try_wardgate(&ctx) {
        Ok(action) => action,
        // The one place an error becomes an action: unparseable IP is dropped.
        Err(()) => xdp_action::XDP_DROP,
    }
}

fn try_wardgate(ctx: &XdpContext) -> Result<u32, ()> {
    count(counter::PACKETS);
    let packet = match parse::parse(ctx) {
        Ok(parse::Parsed::NonIp) => {
            count(counter::NON_IP);
            return Ok(xdp_action::XDP_PASS);
        }
        Ok(parse::Parsed::Ip(packet)) => packet,
        Err(_) => return Ok(xdp_action::XDP_PASS),
    };
    if packet.vlan_tags > 0 {
        count(counter::VLAN);
    }
    count(if packet.family == 4 { counter::IPV4 } else { counter::IPV6 });
    count(match packet.proto {
        wardgate_common::IPPROTO_TCP => counter::TCP,
        wardgate_common::IPPROTO_UDP => counter::UDP,
        wardgate_common::IPPROTO_ICMP => counter::ICMP,
        wardgate_common::IPPROTO_ICMPV6 => counter::ICMPV6,
        wardgate_common::IPPROTO_SCTP => counter::SCTP,
        _ => counter::OTHER_PROTO,
    });
    Ok(xdp_action::XDP_PASS)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
