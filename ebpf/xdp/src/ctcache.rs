//! The connection cache: each CPU remembers the tuples of connections it
//! passed recently, so their next packets pass without a lookup in the
//! connection tables. A hash-map lookup is four kernel calls
//! (the lookup, the hash, the bucket walk, `memcmp`), each paying this
//! machine kind's return-thunk mitigation; a per-CPU array slot is inlined
//! by the verifier to a few loads. The same idea as Open vSwitch's exact
//! match cache in front of its classifier.
//!
//! A slot (`CtCacheSlot`, one cache line, direct-mapped by the tuple's hash)
//! vouches for its tuple only while all of these hold, so the connection
//! table stays the one truth:
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

use aya_ebpf::{macros::map, maps::PerCpuArray};
use wardgate_common::{
    CT_CACHE_REFRESH_NS, CT_CACHE_SLOTS, CT_ESTABLISHED, CT_NEW, Config, CtCacheSlot, IPPROTO_TCP,
    IPPROTO_UDP, flow_hash,
};

use crate::{conntrack::Direction, parse::Packet};

#[map(name = "WG_CT_CACHE")]
static CT_CACHE: PerCpuArray<CtCacheSlot> = PerCpuArray::with_max_entries(CT_CACHE_SLOTS, 0);

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

#[inline(always)]
fn slot(key: &[u64; 5]) -> Option<*mut CtCacheSlot> {
    CT_CACHE.get_ptr_mut(flow_hash(*key) & (CT_CACHE_SLOTS - 1))
}

/// True if this CPU's cache vouches for `p` as a packet of a tracked
/// connection: it passes without a table lookup.
#[inline(always)]
pub fn hit(p: &Packet, config: &Config, now: u64) -> bool {
    let Some(key) = key_of(p) else {
        return false;
    };
    let Some(slot) = slot(&key) else {
        return false;
    };
    // SAFETY: this CPU's slot, from a successful lookup; only this CPU
    // writes it, and XDP runs with preemption off.
    let s = unsafe { &*slot };
    // Word by word: `==` on the arrays would call `memcmp`, a BPF
    // subprogram (a call).
    let differ = (s.key[0] ^ key[0])
        | (s.key[1] ^ key[1])
        | (s.key[2] ^ key[2])
        | (s.key[3] ^ key[3])
        | (s.key[4] ^ key[4]);
    differ == 0
        && s.generation == config.generation
        && s.epoch == config.ct_epoch
        && now.saturating_sub(s.refreshed_ns) < CT_CACHE_REFRESH_NS
}

/// True if a connection in `state` may be cached in direction `dir`: it is
/// established, or new (unanswered) and `dir` is the one it started in.
#[inline(always)]
pub fn vouches(state: u32, dir: Direction) -> bool {
    state == CT_ESTABLISHED || (state == CT_NEW && dir == Direction::Original)
}

/// Remembers `p`, which just passed through a connection table as a packet
/// of a connection that [`vouches`] allows.
#[inline(always)]
pub fn fill(p: &Packet, config: &Config, now: u64) {
    let Some(key) = key_of(p) else {
        return;
    };
    if let Some(slot) = slot(&key) {
        // SAFETY: as in `hit`.
        unsafe {
            *slot = CtCacheSlot {
                key,
                refreshed_ns: now,
                generation: config.generation,
                epoch: config.ct_epoch,
            };
        }
    }
}
