//! The connection cache: each CPU remembers the tuples of connections it
//! passed recently, so their next packets pass without a lookup in the
//! connection tables. A hash-map lookup is four kernel calls
//! (the lookup, the hash, the bucket walk, `memcmp`), each paying this
//! machine kind's return-thunk mitigation; a per-CPU array slot is inlined
//! by the verifier to a few loads. The same idea as Open vSwitch's exact
//! match cache in front of its classifier.
//!
//! The cache is two-way set-associative: a tuple's hash picks a set of two
//! adjacent slots, so two tuples that hash alike are both cached; a slot
//! that still vouches for a tuple is never evicted for another one (it goes
//! stale within a second). A slot (`CtCacheSlot`, one cache line) vouches
//! for its tuple only while all of these hold, so the connection table
//! stays the one truth:
//! - the policy generation it was filled under is still current (a new
//!   policy decides every connection again, in the table);
//! - the agent's forget epoch (`Config::ct_epoch`) is unchanged;
//! - it was filled or refreshed less than `CT_CACHE_REFRESH_NS` ago: the
//!   next packet after that goes through the table, which moves the entry's
//!   `last_seen_ns` and refills the slot only if the entry is still
//!   established.
//!
//! Only packets that cannot change a connection's state use it: TCP without
//! SYN, FIN or RST, and UDP, of
//! - an established connection (either direction), or
//! - a connection not answered yet, in the direction it started (a UDP
//!   stream nobody answers: telemetry, syslog; such a packet only moves the
//!   entry's time). Its first reply goes through the table, which
//!   establishes the connection.
//!
//! An unanswered connection lives in the unconfirmed table, an LRU map
//! that a flood may evict it from. A slot then passes its direction for at
//! most a second more, under the policy generation that allowed it; the
//! table would have allowed it again as a new connection (quarantine is
//! checked before the cache). Forgetting a connection in either table bumps
//! the epoch. Everything else (SYN, FIN, RST, ICMP, closing connections)
//! always goes through the tables.

use aya_ebpf::{helpers::bpf_get_smp_processor_id, macros::map, maps::Array};
use wardgate_common::{
    CT_CACHE_REFRESH_NS, CT_CACHE_SLOTS, CT_ESTABLISHED, CT_NEW, Config, CtCacheSlot, IPPROTO_TCP,
    IPPROTO_UDP, ct_cache_set,
};

use crate::{conntrack::Direction, parse::Packet};

/// `BPF_F_MMAPABLE`: the kernel then page-aligns the values, so each
/// 64-byte slot is one cache line (the agent never maps it).
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Sized by the agent (`maps::ct_cache_entries`); one CPU's worth here.
#[map(name = "WG_CT_CACHES")]
static CT_CACHE: Array<CtCacheSlot> = Array::with_max_entries(CT_CACHE_SLOTS, BPF_F_MMAPABLE);

/// TCP flags that change a connection's state (`conntrack::update`).
const TCP_STATE_FLAGS: u8 = 0x01 | 0x02 | 0x04;

/// The cache key of `p`, or `None` if the packet may change its
/// connection's state and must go through the table.
#[inline(always)]
fn key_of(p: &Packet) -> Option<[u64; 5]> {
    let stateless = match p.proto {
        IPPROTO_TCP => p.tcp_flags & TCP_STATE_FLAGS == 0,
        IPPROTO_UDP => true,
        _ => false,
    };
    if !stateless {
        return None;
    }
    let (src, dst) = p.addr_words();
    Some([
        src[0],
        src[1],
        dst[0],
        dst[1],
        u64::from(p.sport) | u64::from(p.dport) << 16 | u64::from(p.proto) << 32 | 1 << 40,
    ])
}

/// Slot `index` of this CPU's cache. The verifier inlines the CPU number
/// to one load (x86-64, Linux 6.10 and later).
#[inline(always)]
fn slot(index: u32) -> Option<&'static mut CtCacheSlot> {
    // SAFETY: a BPF helper with no arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    // SAFETY: this CPU's region of the array, from a successful lookup;
    // only this CPU writes it, and XDP runs with preemption off.
    CT_CACHE
        .get_ptr_mut(cpu * CT_CACHE_SLOTS + index)
        .map(|s| unsafe { &mut *s })
}

/// True if `s` holds `key`. Word by word: `==` on the arrays would call
/// `memcmp`, a BPF subprogram (a call).
#[inline(always)]
fn holds(s: &CtCacheSlot, key: &[u64; 5]) -> bool {
    let differ = (s.key[0] ^ key[0])
        | (s.key[1] ^ key[1])
        | (s.key[2] ^ key[2])
        | (s.key[3] ^ key[3])
        | (s.key[4] ^ key[4]);
    differ == 0
}

/// True if `s` still vouches for whatever it holds.
#[inline(always)]
fn live(s: &CtCacheSlot, config: &Config, now: u64) -> bool {
    s.generation == config.generation
        && s.epoch == config.ct_epoch
        && now.saturating_sub(s.refreshed_ns) < CT_CACHE_REFRESH_NS
}

/// True if this CPU's cache vouches for `p` as a packet of a tracked
/// connection: it passes without a table lookup.
#[inline(always)]
pub fn hit(p: &Packet, config: &Config, now: u64) -> bool {
    let Some(key) = key_of(p) else {
        return false;
    };
    // The first of the two adjacent slots (ways) of the key's set.
    let set = ct_cache_set(&key);
    for way in 0..2 {
        if let Some(s) = slot(set + way)
            && holds(s, &key)
        {
            return live(s, config, now);
        }
    }
    false
}

/// True if a connection in `state` may be cached in direction `dir`: it is
/// established, or new (unanswered) and `dir` is the one it started in.
#[inline(always)]
pub fn vouches(state: u32, dir: Direction) -> bool {
    state == CT_ESTABLISHED || (state == CT_NEW && dir == Direction::Original)
}

/// Remembers `p`, which just passed through a connection table as a packet
/// of a connection that [`vouches`] allows: in the way of its set that holds
/// its tuple already, else in one that no longer vouches for anything. Two
/// live slots are left alone: flows that keep colliding would otherwise
/// evict each other at every packet, and a slot goes stale within a second.
#[inline(always)]
pub fn fill(p: &Packet, config: &Config, now: u64) {
    let Some(key) = key_of(p) else {
        return;
    };
    // The first of the two adjacent slots (ways) of the key's set.
    let set = ct_cache_set(&key);
    let (Some(a), Some(b)) = (slot(set), slot(set + 1)) else {
        return;
    };
    let s = if holds(a, &key) || (!holds(b, &key) && !live(a, config, now)) {
        a
    } else if holds(b, &key) || !live(b, config, now) {
        b
    } else {
        return;
    };
    *s = CtCacheSlot {
        key,
        refreshed_ns: now,
        generation: config.generation,
        epoch: config.ct_epoch,
        _pad: 0,
    };
}
