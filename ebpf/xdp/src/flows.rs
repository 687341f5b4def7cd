//! Flow records: each new connection the program decides (allowed, dropped,
//! audited) adds one to its key in `WG_FLOWS`; the established path never
//! comes here. The key has the destination port (or ICMP type), never the
//! client's port. A full map refuses the key and counts it in
//! `WG_FLOW_FULL`: no eviction, no wait.

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::MaybeUninit,
};

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use wardgate_common::{
    FLOW_ALLOW, FLOW_AUDIT, FLOW_DROP, FLOW_FULL_SLOT, FlowKey, FlowValue, IPPROTO_ICMP,
    IPPROTO_ICMPV6, maps::MAX_FLOWS,
};

use crate::{decide::Decision, parse::Packet};

/// `BPF_NOEXIST`: insert only if the key is new.
const BPF_NOEXIST: u64 = 1;
/// `-EEXIST`: another CPU inserted the key first.
const EEXIST: i32 = -17;

#[map(name = "WG_FLOWS")]
static FLOWS: HashMap<FlowKey, FlowValue> = HashMap::with_max_entries(MAX_FLOWS, 0);

#[map(name = "WG_FLOW_FULL")]
static FLOW_FULL: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The verdict of a decision as recorded: `audit` when monitor mode passes it.
#[inline(always)]
pub fn verdict(d: &Decision, monitored: bool) -> u8 {
    if d.allow {
        FLOW_ALLOW
    } else if monitored {
        FLOW_AUDIT
    } else {
        FLOW_DROP
    }
}

/// Counts one new connection of `p`, decided by `d`.
#[inline(always)]
pub fn record(ctx: &XdpContext, p: &Packet, d: &Decision, verdict: u8, generation: u32, now: u64) {
    // SAFETY: `ctx.ctx` is the kernel's valid `xdp_md` for this invocation.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let port = if p.proto == IPPROTO_ICMP || p.proto == IPPROTO_ICMPV6 {
        u16::from(p.icmp_type)
    } else {
        p.dport
    };
    let (src, dst) = p.addr_words();
    let mut slot = MaybeUninit::<FlowKey>::uninit();
    let words = slot.as_mut_ptr().cast::<u64>();
    // SAFETY: `FlowKey` is `repr(C, align(8))`, 40 bytes: words 0-1 are
    // `src`, 2-3 `dst`, and word 4 is `ifindex`, `port`, `proto` and
    // `verdict` (little-endian, offsets asserted in `wardgate_common`).
    // Word stores: the kernel hashes the key with word loads, which stall
    // on a key written byte by byte.
    let key = unsafe {
        words.write(src[0]);
        words.add(1).write(src[1]);
        words.add(2).write(dst[0]);
        words.add(3).write(dst[1]);
        words.add(4).write(
            u64::from(ifindex)
                | u64::from(port) << 32
                | u64::from(p.proto) << 48
                | u64::from(verdict) << 56,
        );
        slot.assume_init_ref()
    };
    if add(key, d, generation, now) {
        return;
    }
    let value = FlowValue {
        first_ns: now,
        last_ns: now,
        connections: 1,
        src_zone: d.src_zone,
        dst_zone: d.dst_zone,
        rule: d.rule,
        generation,
    };
    match FLOWS.insert(key, &value, BPF_NOEXIST) {
        Ok(()) => {}
        // Another CPU inserted it between our lookup and insert.
        Err(e) if e == EEXIST => {
            let _ = add(key, d, generation, now);
        }
        Err(_) => {
            if let Some(full) = FLOW_FULL.get_ptr_mut(FLOW_FULL_SLOT) {
                // SAFETY: this CPU's slot, from a successful lookup.
                unsafe { *full += 1 };
            }
        }
    }
}

/// Adds a connection to an existing key; false if the key is not there.
#[inline(always)]
fn add(key: &FlowKey, d: &Decision, generation: u32, now: u64) -> bool {
    let Some(v) = FLOWS.get_ptr_mut(key) else {
        return false;
    };
    // SAFETY: a pointer from a successful hash lookup, valid for this run
    // (RCU). Other CPUs may update the same value: the count is an atomic
    // add; the other fields are plain stores of the latest decision, where
    // a race leaves one of two valid decisions.
    unsafe {
        // `AtomicU64::fetch_add` does not exist for BPF (no 64-bit atomics
        // in `target_has_atomic`), but the instruction does: `lock xadd`.
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*v).connections, 1);
        (*v).last_ns = now;
        (*v).src_zone = d.src_zone;
        (*v).dst_zone = d.dst_zone;
        (*v).rule = d.rule;
        (*v).generation = generation;
    }
    true
}
