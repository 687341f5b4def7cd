//! Every map of the program. Names and capacities come from
//! `wardgate_common::maps`; `#[map(name = ...)]` takes only a literal, so a
//! kernel test checks the built object against `maps::ALL`.
//!
//! Policy maps come in two table sets (0 and 1); [`zone_of`], [`zone_flags`],
//! [`pair`] and [`interval`] pick the set the config names.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use wardgate_common::{
    Config, Counters, CtEntry, CtKey, FailsafeKey, FragKey, Interval, PairKey, RateLimit, Span,
    WORLD_ZONE, ZoneInfo,
    maps::{
        EVENTS_BYTES, MAX_CONNECTIONS, MAX_FAILSAFE, MAX_FRAGMENTS, MAX_INTERVALS, MAX_PAIRS,
        MAX_PREFIXES, MAX_QUARANTINE, MAX_RULES, MAX_ZONES,
    },
};

use crate::parse::Packet;

/// Hash maps that the agent fills allocate entries on demand.
const BPF_F_NO_PREALLOC: u32 = 1;

#[map(name = "WG_CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "WG_ZONES_0")]
static ZONES_0: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map(name = "WG_ZONES_1")]
static ZONES_1: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

#[map(name = "WG_ZONE_INFO_0")]
static ZONE_INFO_0: Array<ZoneInfo> = Array::with_max_entries(MAX_ZONES, 0);
#[map(name = "WG_ZONE_INFO_1")]
static ZONE_INFO_1: Array<ZoneInfo> = Array::with_max_entries(MAX_ZONES, 0);

#[map(name = "WG_PAIRS_0")]
static PAIRS_0: HashMap<PairKey, Span> = HashMap::with_max_entries(MAX_PAIRS, BPF_F_NO_PREALLOC);
#[map(name = "WG_PAIRS_1")]
static PAIRS_1: HashMap<PairKey, Span> = HashMap::with_max_entries(MAX_PAIRS, BPF_F_NO_PREALLOC);

#[map(name = "WG_INTERVALS_0")]
static INTERVALS_0: Array<Interval> = Array::with_max_entries(MAX_INTERVALS, 0);
#[map(name = "WG_INTERVALS_1")]
static INTERVALS_1: Array<Interval> = Array::with_max_entries(MAX_INTERVALS, 0);

#[map(name = "WG_CONNTRACK")]
pub static CONNTRACK: LruHashMap<CtKey, CtEntry> = LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

#[map(name = "WG_FRAGMENTS")]
pub static FRAGMENTS: LruHashMap<FragKey, u32> = LruHashMap::with_max_entries(MAX_FRAGMENTS, 0);

#[map(name = "WG_QUARANTINE")]
pub static QUARANTINE: HashMap<[u8; 16], u32> =
    HashMap::with_max_entries(MAX_QUARANTINE, BPF_F_NO_PREALLOC);

#[map(name = "WG_FAILSAFE")]
pub static FAILSAFE: HashMap<FailsafeKey, u32> =
    HashMap::with_max_entries(MAX_FAILSAFE, BPF_F_NO_PREALLOC);

#[map(name = "WG_RULE_HITS")]
static RULE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES, 0);

#[map(name = "WG_COUNTERS")]
static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "WG_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-CPU scratch space: the parsed packet and connection keys live here,
/// not on the 512-byte BPF stack.
#[repr(C)]
pub struct Scratch {
    pub packet: Packet,
    pub key: CtKey,
    pub other: CtKey,
    /// Parameters of the fast path's FIB lookup.
    pub fib: aya_ebpf::bindings::bpf_fib_lookup,
}

#[map(name = "WG_SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch space.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: a per-CPU slot; XDP runs with preemption off, so nothing else
    // on this CPU uses it until this program run ends.
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

#[map(name = "WG_EVENT_RATE")]
pub static EVENT_RATE: PerCpuArray<RateLimit> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn bump(array: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = array.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot is only touched by this CPU, and the pointer
        // comes from a successful lookup of an in-range index.
        unsafe { *slot += 1 };
    }
}

/// Adds one to a `counter::*`.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(block) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: this CPU's counter block, from a successful lookup; only this
        // CPU writes it. `index` is a `counter::*` constant below `COUNT`.
        unsafe {
            if let Some(slot) = (*block).get_mut(index as usize) {
                *slot += 1;
            }
        }
    }
}

/// Adds one to the hits of `rule` (no-op for `RULE_NONE`).
#[inline(always)]
pub fn count_rule(rule: u32) {
    bump(&RULE_HITS, rule);
}

/// The zone holding `addr` (longest prefix), or `world`.
#[inline(always)]
pub fn zone_of(set: u32, addr: &[u8; 16]) -> u32 {
    let key = Key::new(128, *addr);
    let found = if set == 0 {
        ZONES_0.get(&key)
    } else {
        ZONES_1.get(&key)
    };
    found.copied().unwrap_or(WORLD_ZONE)
}

/// `ZONE_*` flags of a zone.
#[inline(always)]
pub fn zone_flags(set: u32, zone: u32) -> u32 {
    let info = if set == 0 {
        ZONE_INFO_0.get(zone)
    } else {
        ZONE_INFO_1.get(zone)
    };
    info.map_or(0, |i| i.flags)
}

#[inline(always)]
pub fn pair(set: u32, key: &PairKey) -> Option<Span> {
    // SAFETY: the value is copied out at once; the agent never resizes values.
    let span = unsafe {
        if set == 0 {
            PAIRS_0.get(key)
        } else {
            PAIRS_1.get(key)
        }
    };
    span.copied()
}

#[inline(always)]
pub fn interval(set: u32, index: u32) -> Option<Interval> {
    let found = if set == 0 {
        INTERVALS_0.get(index)
    } else {
        INTERVALS_1.get(index)
    };
    found.copied()
}
