//! Every map of the program. Names and capacities come from
//! `wardgate_common::maps`; `#[map(name = ...)]` takes only a literal, so a
//! kernel test checks the built object against `maps::ALL`.
//!
//! Policy maps come in two table sets (0 and 1); [`zone_of`], [`zone_info`],
//! [`pair`] and [`interval`] pick the set the config names.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use wardgate_common::{
    Config, Counters, CtEntry, CtKey, FailsafeKey, FragKey, Interval, PORT_DIR_RUNS, PairEntry,
    RateLimit, Run, Span, V4_BLOCKS, V4_DIR_RUNS, V4_INDEX_ENTRIES, V4Range, WORLD_ZONE, ZoneInfo,
    maps::{
        CT_SLOTS, EVENTS_BYTES, MAX_CONNECTIONS, MAX_FAILSAFE, MAX_FRAGMENTS, MAX_INTERVALS,
        MAX_PAIRS, MAX_PORT_DIRS, MAX_PREFIXES, MAX_QUARANTINE, MAX_RULES, MAX_UNCONFIRMED,
        MAX_V4_DIRS, MAX_V4_RANGES, MAX_ZONES, PAIR_SEARCH_STEPS, V4_SEARCH_STEPS,
    },
    pair_entry_key,
};

use crate::{load, parse::Packet};

/// Hash maps that the agent fills allocate entries on demand.
const BPF_F_NO_PREALLOC: u32 = 1;

#[map(name = "WG_CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "WG_ZONES_0")]
static ZONES_0: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map(name = "WG_ZONES_1")]
static ZONES_1: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

/// Not read by this program (it reads `V4_BLOCK_RUNS`): declared so that the
/// agent can keep writing it for an older program during an upgrade.
#[map(name = "WG_V4_INDEX")]
static V4_INDEX: Array<u32> = Array::with_max_entries(2 * V4_INDEX_ENTRIES, 0);

#[map(name = "WG_V4_RANGES")]
static V4_RANGES: Array<V4Range> = Array::with_max_entries(2 * MAX_V4_RANGES, 0);

#[map(name = "WG_V4_BLOCK_RUNS")]
static V4_BLOCK_RUNS: Array<Run> = Array::with_max_entries(2 * V4_BLOCKS, 0);

#[map(name = "WG_V4_DIR")]
static V4_DIR: Array<Run> = Array::with_max_entries(2 * MAX_V4_DIRS * V4_DIR_RUNS, 0);

#[map(name = "WG_PORT_DIR")]
static PORT_DIR: Array<Run> = Array::with_max_entries(2 * MAX_PORT_DIRS * PORT_DIR_RUNS, 0);

#[map(name = "WG_ZONE_INFO")]
static ZONE_INFO: Array<ZoneInfo> = Array::with_max_entries(2 * MAX_ZONES, 0);

#[map(name = "WG_PAIRS")]
static PAIRS: Array<PairEntry> = Array::with_max_entries(2 * MAX_PAIRS, 0);

#[map(name = "WG_INTERVALS")]
static INTERVALS: Array<Interval> = Array::with_max_entries(2 * MAX_INTERVALS, 0);

#[map(name = "WG_CONNTRACK")]
pub static CONNTRACK: HashMap<CtKey, CtEntry> = HashMap::with_max_entries(MAX_CONNECTIONS, 0);

#[map(name = "WG_CT_UNCONFIRMED")]
pub static CT_UNCONFIRMED: LruHashMap<CtKey, CtEntry> =
    LruHashMap::with_max_entries(MAX_UNCONFIRMED, 0);

#[map(name = "WG_CT_LIMITS")]
pub static CT_LIMITS: Array<u32> = Array::with_max_entries(2 * CT_SLOTS, 0);

#[map(name = "WG_CT_CHARGED")]
pub static CT_CHARGED: Array<u64> = Array::with_max_entries(CT_SLOTS, 0);

#[map(name = "WG_CT_RELEASED")]
pub static CT_RELEASED: Array<u64> = Array::with_max_entries(CT_SLOTS, 0);

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
    /// This packet's connection key.
    pub key: CtKey,
    /// The key of the connection an ICMP error quotes.
    pub quoted: CtKey,
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

/// This CPU's counter block, looked up once per packet: the counters a
/// packet always touches (packets, family, protocol, verdict) are then a
/// load, an add and a store each instead of a map lookup each.
pub struct Tally(*mut Counters);

impl Tally {
    /// Adds one to a `counter::*`.
    #[inline(always)]
    pub fn add(&self, index: u32) {
        // SAFETY: this CPU's counter block, from a successful lookup; only
        // this CPU writes it, and XDP runs with preemption off.
        unsafe {
            if let Some(slot) = (*self.0).get_mut(index as usize) {
                *slot += 1;
            }
        }
    }
}

/// This CPU's [`Tally`].
#[inline(always)]
pub fn tally() -> Option<Tally> {
    COUNTERS.get_ptr_mut(0).map(Tally)
}

/// Adds one to a `counter::*` (for counters off the per-packet path; see [`Tally`]).
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

/// The zone holding an IPv4 address (host byte order): the run of ranges
/// that can hold it, its /16 block's (or, if the block has a directory,
/// its /24's); then a binary search for the last range that starts at or
/// before `addr`. Blocks always start a range, so one is found.
#[inline(always)]
pub fn zone_of_v4(set: u32, addr: u32) -> u32 {
    let Some(&block) = V4_BLOCK_RUNS.get(set * V4_BLOCKS + (addr >> 16)) else {
        return WORLD_ZONE;
    };
    let run = if block.end == 0 {
        match V4_DIR.get(block.first + ((addr >> 8) & 0xff)) {
            Some(&run) => run,
            None => return WORLD_ZONE,
        }
    } else {
        block
    };
    let (first, end) = (run.first, run.end);
    let found = last_at_or_below::<V4_SEARCH_STEPS>(first, end.saturating_sub(first), |i| {
        V4_RANGES.get(i).map(|r| r.start <= addr)
    });
    found
        .and_then(|i| V4_RANGES.get(i))
        .map_or(WORLD_ZONE, |r| r.zone)
}

/// The binary search every sorted table of the program uses: the last of
/// the `len` entries from index `first` whose key is at or below the one
/// searched for, where `at_or_below(i)` says it of entry `i` (`None`: no
/// such entry, which ends the search). At most `STEPS` halvings, a bound the
/// verifier can see (`2^STEPS` must exceed `len`). `None` for no entries.
#[inline(always)]
pub fn last_at_or_below<const STEPS: u32>(
    first: u32,
    len: u32,
    at_or_below: impl Fn(u32) -> Option<bool>,
) -> Option<u32> {
    let mut base = first;
    let mut len = len;
    for _ in 0..STEPS {
        if len <= 1 {
            break;
        }
        let half = len / 2;
        if at_or_below(base + half)? {
            base += half;
        }
        len -= half;
    }
    (len == 1).then_some(base)
}

/// The zone holding `addr` (longest prefix), or `world`. IPv4-mapped
/// addresses go through the IPv4 ranges, IPv6 through the LPM trie.
#[inline(always)]
pub fn zone_of(set: u32, addr: &[u8; 16]) -> u32 {
    // Word loads: indexing the bytes would load them one by one.
    let at = addr.as_ptr();
    // SAFETY: `addr` is 16 readable bytes.
    let (head, mid, v4) = unsafe {
        (
            load::u64_at(at, 0),
            load::u32_at(at, 8),
            load::u32_at(at, 12),
        )
    };
    if head == 0 && mid == u32::from_ne_bytes([0, 0, 0xff, 0xff]) {
        return zone_of_v4(set, u32::from_be(v4));
    }
    let key = Key::new(128, *addr);
    let found = if set == 0 {
        ZONES_0.get(&key)
    } else {
        ZONES_1.get(&key)
    };
    found.copied().unwrap_or(WORLD_ZONE)
}

/// A zone's flags and run of the pair list (all zero for an unknown id).
#[inline(always)]
pub fn zone_info(set: u32, zone: u32) -> ZoneInfo {
    ZONE_INFO
        .get(set * MAX_ZONES + zone)
        .copied()
        .unwrap_or_default()
}

/// The span of intervals for traffic from the zone of `src` to `dst_zone`
/// with protocol `proto` (or `PROTO_ANY`): a binary search of the source
/// zone's run of the pair list, array lookups only.
#[inline(always)]
pub fn pair(set: u32, src: &ZoneInfo, dst_zone: u32, proto: u32) -> Option<Span> {
    let key = pair_entry_key(dst_zone, proto);
    let found = last_at_or_below::<PAIR_SEARCH_STEPS>(
        set * MAX_PAIRS + src.pairs_first,
        src.pairs_count,
        |i| PAIRS.get(i).map(|e| e.key <= key),
    )?;
    let found = PAIRS.get(found)?;
    (found.key == key).then_some(Span {
        first: found.first,
        count: found.count,
    })
}

/// The run of port directory `dir` (from 1) of table set `set` for `port`'s
/// 256-port block.
#[inline(always)]
pub fn port_run(set: u32, dir: u16, port: u16) -> Option<Run> {
    let index = (set * MAX_PORT_DIRS + u32::from(dir) - 1) * PORT_DIR_RUNS + u32::from(port >> 8);
    PORT_DIR.get(index).copied()
}

/// Interval `index` (spans point into their own set's half).
#[inline(always)]
pub fn interval(index: u32) -> Option<Interval> {
    INTERVALS.get(index).copied()
}
