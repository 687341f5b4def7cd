//! Connection tracking: a tracked connection passes in both directions
//! without a policy lookup, until it idles out or a new policy generation
//! forbids it.
//!
//! Two tables (`docs/conntrack.md`): a connection starts in the
//! *unconfirmed* LRU table and moves to the *established* table at its first
//! reply. A flood of connections that nobody answers fills and evicts the
//! unconfirmed table only. The established table is a plain hash that never
//! evicts: each entry is charged to a slot (its initiator's zone, the pool of
//! zones without a limit, or the reserve of life-critical zones) when it is
//! inserted and released when it is removed, and a zone at its
//! `conntrack-limit` can start no new connection. The check reads the count
//! and the insert adds to it without a lock, so concurrent inserts on other
//! CPUs can overshoot a limit by at most one entry per other CPU.

use wardgate_common::{
    CT_CLOSING, CT_ESTABLISHED, CT_KEY_REVERSED, CT_LIMIT_POOL, CT_LIMIT_RESERVED, CT_NEW,
    CT_SLOT_POOL, CT_TIMEOUT_CLOSING_NS, CT_TIMEOUT_ESTABLISHED_TCP_NS, CT_TIMEOUT_ICMP_NS,
    CT_TIMEOUT_NEW_NS, CT_TIMEOUT_UDP_NS, CtEntry, CtKey, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, counter, ct_slot, maps::CT_SLOTS,
};

use crate::{
    ctfilter,
    decide::Decision,
    maps::{CONNTRACK, CT_CHARGED, CT_LIMITS, CT_RELEASED, CT_UNCONFIRMED, count},
    parse::Packet,
};

/// `BPF_NOEXIST`: insert only if the key is not there yet.
const BPF_NOEXIST: u64 = 1;
/// `-EEXIST`, from an insert with [`BPF_NOEXIST`] of a key already there.
const EEXIST: i32 = -17;

/// Which table an entry lives in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Established,
    Unconfirmed,
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The packet goes the way the connection started.
    Original,
    Reply,
}

#[inline(always)]
fn is_icmp(proto: u8) -> bool {
    proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6
}

/// Writes the canonical key of this packet's connection into `key`; returns
/// whether the packet goes from the key's `dst` to its `src`.
#[inline(always)]
pub fn key_of(key: &mut CtKey, p: &Packet) -> bool {
    let (src, dst) = p.addr_words();
    key.set_words(src, dst, p.proto, p.sport, p.dport, p.icmp_type);
    key.canonicalize()
}

/// Finds the connection of `key` (canonical), established first;
/// `reversed` is what [`key_of`] returned for the packet, which gives its
/// direction. With `established_only` the unconfirmed table is not looked
/// at (see [`opens`]). With `filtered` (the filters are trusted), a
/// table is looked at only if its filter says it may hold the key at `now`
/// (`ctfilter`).
#[inline(always)]
pub fn lookup(
    key: &CtKey,
    reversed: bool,
    established_only: bool,
    filtered: bool,
    now: u64,
) -> Option<(*mut CtEntry, Direction, Table)> {
    // Hashed only when the filters are used, and once for both.
    let bucket = if filtered { key.filter_bucket() } else { 0 };
    let established = if !filtered || ctfilter::may_hold(bucket) {
        CONNTRACK.get_ptr_mut(key)
    } else {
        None
    };
    let (entry, table) = match established {
        Some(e) => (e, Table::Established),
        None if established_only => return None,
        None if filtered && !ctfilter::unconfirmed_may_hold(bucket, now) => return None,
        None => (CT_UNCONFIRMED.get_ptr_mut(key)?, Table::Unconfirmed),
    };
    // SAFETY: a pointer from a successful lookup; the entry stays valid for this run.
    let started_reversed = unsafe { (*entry).flags } & CT_KEY_REVERSED != 0;
    let dir = if started_reversed == reversed {
        Direction::Original
    } else {
        Direction::Reply
    };
    Some((entry, dir, table))
}

/// The first packet's source, destination and destination port of a tracked
/// connection (the key is canonical, the entry says which way it started).
#[inline(always)]
pub fn original<'a>(k: &'a CtKey, e: &CtEntry) -> (&'a [u8; 16], &'a [u8; 16], u16) {
    if e.flags & CT_KEY_REVERSED != 0 {
        (&k.dst, &k.src, k.sport)
    } else {
        (&k.src, &k.dst, k.dport)
    }
}

/// The policy port of a tracked connection: its destination port, or for
/// ICMP echo the request type that started it.
#[inline(always)]
pub fn decision_port(proto: u8, dport: u16) -> u16 {
    match proto {
        IPPROTO_ICMP => u16::from(ICMP_ECHO_REQUEST),
        IPPROTO_ICMPV6 => u16::from(ICMPV6_ECHO_REQUEST),
        _ => dport,
    }
}

/// A TCP SYN without ACK or RST opens a connection. An unconfirmed entry
/// of its tuple can only be from its own earlier SYN (a retransmission,
/// decided again the same way; [`create`] then keeps the entry), so such a
/// packet skips the unconfirmed table: one lookup instead of two on the
/// commonest new-connection packet. (TCP simultaneous open, where both
/// sides send a SYN, then decides the second SYN as a connection of its
/// own.)
#[inline(always)]
pub fn opens(p: &Packet) -> bool {
    p.proto == IPPROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN
}

/// Whether an allowed packet starts tracking: not a TCP reset, and for ICMP
/// only an echo request (other ICMP has no replies to let back).
#[inline(always)]
pub fn starts_tracking(p: &Packet) -> bool {
    match p.proto {
        IPPROTO_TCP => p.tcp_flags & TCP_RST == 0,
        IPPROTO_ICMP => p.icmp_type == ICMP_ECHO_REQUEST,
        IPPROTO_ICMPV6 => p.icmp_type == ICMPV6_ECHO_REQUEST,
        _ => true,
    }
}

#[inline(always)]
fn timeout_ns(e: &CtEntry, proto: u8) -> u64 {
    if e.state == CT_CLOSING {
        CT_TIMEOUT_CLOSING_NS
    } else if e.state == CT_NEW {
        CT_TIMEOUT_NEW_NS
    } else if proto == IPPROTO_TCP {
        CT_TIMEOUT_ESTABLISHED_TCP_NS
    } else if is_icmp(proto) {
        CT_TIMEOUT_ICMP_NS
    } else {
        CT_TIMEOUT_UDP_NS
    }
}

/// True if the entry idled out.
#[inline(always)]
pub fn expired(e: &CtEntry, proto: u8, now: u64) -> bool {
    now.saturating_sub(e.last_seen_ns) > timeout_ns(e, proto)
}

/// Records a packet of the connection: time, and the state it moves to.
#[inline(always)]
pub fn update(e: &mut CtEntry, p: &Packet, dir: Direction, now: u64) {
    e.last_seen_ns = now;
    if p.proto == IPPROTO_TCP && p.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        e.state = CT_CLOSING;
    } else if dir == Direction::Reply && e.state == CT_NEW {
        e.state = CT_ESTABLISHED;
    } else if e.state == CT_CLOSING && p.tcp_flags & TCP_SYN != 0 && dir == Direction::Original {
        // A new connection reusing the tuple of one that was closing.
        e.state = CT_NEW;
    }
}

/// Starts tracking a connection the policy allowed (or audited), in the
/// unconfirmed table; `reversed` is what [`key_of`] returned for its first
/// packet.
#[inline(always)]
pub fn create(key: &CtKey, reversed: bool, d: &Decision, generation: u32, now: u64) {
    let entry = CtEntry {
        last_seen_ns: now,
        generation,
        state: CT_NEW,
        src_zone: d.src_zone,
        dst_zone: d.dst_zone,
        rule: d.rule,
        flags: if reversed { CT_KEY_REVERSED } else { 0 },
        charge: 0,
        _reserved: 0,
    };
    // A full LRU map evicts its oldest entry; an error here only means the
    // next packet is decided again.
    ctfilter::note_unconfirmed(key, CT_NEW, now);
    match CT_UNCONFIRMED.insert(key, &entry, BPF_NOEXIST) {
        Ok(()) => count(counter::CT_UNCONFIRMED_CREATED),
        Err(EEXIST) => {
            // A SYN whose tuple is already unconfirmed (it skipped this
            // table, see `opens`). A retransmission: the connection is still
            // trying, so its entry's time moves. But an entry that idled out
            // (a SYN retried after the timeout; nothing swept it yet) or was
            // closing (the tuple reused) is replaced, as `update` would have
            // restarted it: kept, its reply would find it expired, or never
            // promote it.
            if let Some(old) = CT_UNCONFIRMED.get_ptr_mut(key) {
                // SAFETY: a pointer from a successful lookup; valid for this run.
                let old = unsafe { &mut *old };
                if expired(old, key.proto, now) || old.state == CT_CLOSING {
                    let _ = CT_UNCONFIRMED.remove(key);
                    if CT_UNCONFIRMED.insert(key, &entry, BPF_NOEXIST).is_ok() {
                        count(counter::CT_UNCONFIRMED_CREATED);
                    }
                } else {
                    ctfilter::note_unconfirmed(key, old.state, now);
                    old.last_seen_ns = now;
                }
            }
        }
        Err(_) => {}
    }
}

/// Moves a connection that saw its reply (`e`, in the unconfirmed table)
/// to the established table, charged to its slot; true if it is there now.
/// A zone at its limit or a full table leaves it where it is: it keeps
/// passing, unprotected.
#[inline(always)]
pub fn promote(key: &CtKey, e: &CtEntry, set: u32) -> bool {
    let Some((slot, limit)) = slot_and_limit(set, e.src_zone) else {
        count(counter::CT_INSERT_FAILED);
        return false;
    };
    if limit != CT_LIMIT_RESERVED && live(slot) >= u64::from(limit) {
        count(counter::CT_INSERT_FAILED);
        return false;
    }
    let entry = CtEntry {
        last_seen_ns: e.last_seen_ns,
        generation: e.generation,
        state: e.state,
        src_zone: e.src_zone,
        dst_zone: e.dst_zone,
        rule: e.rule,
        flags: e.flags,
        charge: slot + 1,
        _reserved: 0,
    };
    // Charged and counted in the filter before the insert, so a remove on
    // another CPU never finds the slot's count below its entries, and no
    // packet finds the filter below the table.
    add(&CT_CHARGED, slot, 1);
    ctfilter::add(key);
    match CONNTRACK.insert(key, &entry, BPF_NOEXIST) {
        Ok(()) => {
            count(counter::CT_PROMOTED);
            let _ = CT_UNCONFIRMED.remove(key);
            true
        }
        Err(err) => {
            ctfilter::sub(key);
            add(&CT_CHARGED, slot, u64::MAX);
            if err == EEXIST {
                // Another CPU promoted it first.
                let _ = CT_UNCONFIRMED.remove(key);
                true
            } else {
                count(counter::CT_INSERT_FAILED);
                false
            }
        }
    }
}

/// Whether a new connection from `zone` may be tracked: its slot is below
/// its limit. Life-critical zones without a limit always may (the map
/// itself refuses when full).
#[inline(always)]
pub fn admit(set: u32, zone: u32) -> bool {
    match slot_and_limit(set, zone) {
        Some((_, CT_LIMIT_RESERVED)) => true,
        Some((slot, limit)) => live(slot) < u64::from(limit),
        None => false,
    }
}

/// After a new policy decided an established connection again: moves its
/// charge if its zone's slot changed (zone ids and limits may change with
/// the policy).
#[inline(always)]
pub fn recharge(e: &mut CtEntry, set: u32) {
    if e.charge == 0 {
        return;
    }
    let Some((slot, _)) = slot_and_limit(set, e.src_zone) else {
        return;
    };
    if slot + 1 != e.charge {
        add(&CT_CHARGED, slot, 1);
        add(&CT_CHARGED, e.charge - 1, u64::MAX);
        e.charge = slot + 1;
    }
}

/// Forgets a connection; `e` is its entry (read before the removal).
#[inline(always)]
pub fn remove(key: &CtKey, e: &CtEntry, table: Table) {
    match table {
        Table::Established => {
            let charge = e.charge;
            // Only the remove that succeeds releases the charge: exactly once.
            if CONNTRACK.remove(key).is_ok() {
                ctfilter::sub(key);
                count(counter::CT_ESTABLISHED_REMOVED);
                if charge != 0 {
                    add(&CT_CHARGED, charge - 1, u64::MAX);
                }
            }
        }
        Table::Unconfirmed => {
            if CT_UNCONFIRMED.remove(key).is_ok() {
                count(counter::CT_UNCONFIRMED_REMOVED);
            }
        }
    }
}

/// The charge slot of `zone` under table set `set`, and its limit.
#[inline(always)]
fn slot_and_limit(set: u32, zone: u32) -> Option<(u32, u32)> {
    let base = set * CT_SLOTS;
    let own = *CT_LIMITS.get(base + zone)?;
    let slot = ct_slot(zone, own);
    if own == CT_LIMIT_POOL {
        Some((slot, *CT_LIMITS.get(base + CT_SLOT_POOL)?))
    } else {
        Some((slot, own))
    }
}

/// Established entries charged to `slot` now.
#[inline(always)]
fn live(slot: u32) -> u64 {
    let charged = CT_CHARGED.get(slot).copied().unwrap_or(0);
    let released = CT_RELEASED.get(slot).copied().unwrap_or(0);
    charged.wrapping_sub(released)
}

/// Adds `delta` (`u64::MAX` for minus one) to `array[index]`, atomically.
#[inline(always)]
fn add(array: &aya_ebpf::maps::Array<u64>, index: u32, delta: u64) {
    if let Some(p) = array.get_ptr_mut(index) {
        // SAFETY: a pointer into an array map's value from a successful
        // lookup, 8-byte aligned; other CPUs touch it only with this same
        // atomic add (`core` has no `AtomicU64::fetch_add` for BPF, but the
        // instruction exists: `lock xadd`).
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p, delta,
            );
        }
    }
}
