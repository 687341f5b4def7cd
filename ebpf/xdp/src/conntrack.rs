//! Connection tracking: a tracked connection passes in both directions
//! without a policy lookup, until it idles out or a new policy generation
//! forbids it.

use wardgate_common::{
    CT_CLOSING, CT_ESTABLISHED, CT_KEY_REVERSED, CT_NEW, CT_TIMEOUT_CLOSING_NS,
    CT_TIMEOUT_ESTABLISHED_TCP_NS, CT_TIMEOUT_ICMP_NS, CT_TIMEOUT_NEW_NS, CT_TIMEOUT_UDP_NS,
    CtEntry, CtKey, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
};

use crate::{decide::Decision, maps::CONNTRACK, parse::Packet};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

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
    key.set(&p.src, &p.dst, p.proto, p.sport, p.dport, p.icmp_type);
    key.canonicalize()
}

/// Finds the connection of `key` (canonical); `reversed` is what
/// [`key_of`] returned for the packet, which gives its direction.
#[inline(always)]
pub fn lookup(key: &CtKey, reversed: bool) -> Option<(*mut CtEntry, Direction)> {
    let entry = CONNTRACK.get_ptr_mut(key)?;
    // SAFETY: a pointer from a successful lookup; the entry stays valid for this run.
    let started_reversed = unsafe { (*entry).flags } & CT_KEY_REVERSED != 0;
    let dir = if started_reversed == reversed {
        Direction::Original
    } else {
        Direction::Reply
    };
    Some((entry, dir))
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

/// Starts tracking a connection the policy allowed (or audited); `reversed`
/// is what [`key_of`] returned for its first packet.
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
    };
    // A full LRU map evicts its oldest entry; an error here only means the
    // next packet is decided again.
    let _ = CONNTRACK.insert(key, &entry, 0);
}

#[inline(always)]
pub fn remove(key: &CtKey) {
    let _ = CONNTRACK.remove(key);
}
