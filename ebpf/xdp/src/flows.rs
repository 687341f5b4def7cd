//! Flow records: each new connection the program decides (allowed, dropped,
//! audited) adds one to its key in `WG_FLOWS`; the established path never
//! comes here. The key has the destination port (or ICMP type), never the
//! client's port.
//!
//! `WG_FLOWS` is an array this module indexes itself (layout in
//! `wardgate_common::flows`): the key's hash picks a slot in this CPU's
//! region of the half `WG_FLOW_HALF` names, and the key takes the first free
//! or matching slot of `FLOW_PROBES` from there. Array lookups are inlined
//! by the verifier, so a record costs no helper call; only this CPU writes
//! its region of the active half, so the updates need no atomics. A key
//! that finds no slot is counted in `WG_FLOW_FULL`: no eviction, no wait.

use aya_ebpf::{
    helpers::bpf_get_smp_processor_id,
    macros::map,
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use wardgate_common::{
    FLOW_ALLOW, FLOW_AUDIT, FLOW_DROP, FLOW_FULL_SLOT, FLOW_PROBES, FLOW_SLOTS, FlowKey, FlowSlot,
    FlowValue, IPPROTO_ICMP, IPPROTO_ICMPV6, flow_hash, flow_region, maps::flow_entries,
};

use crate::{decide::Decision, parse::Packet};

/// `BPF_F_MMAPABLE`: the agent maps the array to read and clear a half.
const BPF_F_MMAPABLE: u32 = 1 << 10;

#[map(name = "WG_FLOWS")]
static FLOWS: Array<FlowSlot> = Array::with_max_entries(flow_entries(1), BPF_F_MMAPABLE);

#[map(name = "WG_FLOW_HALF")]
static FLOW_HALF: Array<u32> = Array::with_max_entries(1, 0);

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
    // The key's words in `FlowKey` layout: word 4 is `ifindex`, `port`,
    // `proto` and `verdict` (little-endian; offsets asserted in
    // `wardgate_common`).
    let key = [
        src[0],
        src[1],
        dst[0],
        dst[1],
        u64::from(ifindex)
            | u64::from(port) << 32
            | u64::from(p.proto) << 48
            | u64::from(verdict) << 56,
    ];
    let hash = flow_hash(key);
    // SAFETY: a BPF helper with no arguments (inlined by the verifier).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let half = FLOW_HALF.get(0).copied().unwrap_or(0);
    let region = flow_region(cpu, half);
    for probe in 0..FLOW_PROBES {
        let index = region + (hash.wrapping_add(probe) & (FLOW_SLOTS - 1));
        // Beyond the map (a CPU the agent did not size it for): full.
        let Some(slot) = FLOWS.get_ptr_mut(index) else {
            break;
        };
        // SAFETY: a pointer into the array from a successful lookup, valid
        // for this run; only this CPU writes its region of the active half
        // (the agent reads a half only after the program stopped writing it).
        let slot = unsafe { &mut *slot };
        if slot.value.connections == 0 {
            claim(slot, &key, d, generation, now);
            return;
        }
        if matches(&slot.key, &key) {
            let v = &mut slot.value;
            v.connections += 1;
            v.last_ns = now;
            v.src_zone = d.src_zone;
            v.dst_zone = d.dst_zone;
            v.rule = d.rule;
            v.generation = generation;
            return;
        }
    }
    if let Some(full) = FLOW_FULL.get_ptr_mut(FLOW_FULL_SLOT) {
        // SAFETY: this CPU's slot, from a successful lookup.
        unsafe { *full += 1 };
    }
}

/// Whether the slot's key is `key` (word compares).
#[inline(always)]
fn matches(slot: &FlowKey, key: &[u64; 5]) -> bool {
    let words = (slot as *const FlowKey).cast::<u64>();
    // SAFETY: `FlowKey` is `repr(C, align(8))`, 40 bytes: five aligned words.
    unsafe {
        words.read() == key[0]
            && words.add(1).read() == key[1]
            && words.add(2).read() == key[2]
            && words.add(3).read() == key[3]
            && words.add(4).read() == key[4]
    }
}

/// Writes a free slot: the key as five word stores, then the value.
#[inline(always)]
fn claim(slot: &mut FlowSlot, key: &[u64; 5], d: &Decision, generation: u32, now: u64) {
    let words = (&raw mut slot.key).cast::<u64>();
    // SAFETY: as in `matches`.
    unsafe {
        words.write(key[0]);
        words.add(1).write(key[1]);
        words.add(2).write(key[2]);
        words.add(3).write(key[3]);
        words.add(4).write(key[4]);
    }
    slot.value = FlowValue {
        first_ns: now,
        last_ns: now,
        connections: 1,
        src_zone: d.src_zone,
        dst_zone: d.dst_zone,
        rule: d.rule,
        generation,
    };
}
