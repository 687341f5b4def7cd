//! The policy decision for a packet that starts a connection: classify both
//! addresses to zones, then look up the compiled rule tables. The cost grows
//! with the logarithm of the source zone's pairs and of the pair's
//! intervals, never with the number of rules: one or two binary searches of
//! the zone's pair list, then one of the pair's intervals (from the port's
//! run of its port directory, if it has one), all array lookups (which the
//! verifier inlines: no helper call).

use wardgate_common::{
    PROTO_ANY, RULE_NONE, VERDICT_ALLOW, ZONE_INTRA_TABLE, ZONE_ISOLATED, ZONE_MONITOR,
    maps::{INTERVAL_SEARCH_STEPS, PORT_DIR_MIN_INTERVALS},
};

use crate::maps;

/// What the policy says of a new connection.
#[derive(Clone, Copy)]
pub struct Decision {
    pub allow: bool,
    /// Source or destination zone is in monitor mode.
    pub monitor: bool,
    /// Allowed because source and destination share a non-isolated zone
    /// (and no deny covers the packet).
    pub intra_zone: bool,
    pub rule: u32,
    pub src_zone: u32,
    pub dst_zone: u32,
}

/// Only the zones (for events about packets the policy never saw).
#[inline(always)]
pub fn classify(set: u32, src: &[u8; 16], dst: &[u8; 16]) -> Decision {
    Decision {
        allow: false,
        monitor: false,
        intra_zone: false,
        rule: RULE_NONE,
        src_zone: maps::zone_of(set, src),
        dst_zone: maps::zone_of(set, dst),
    }
}

/// Decides `(src, dst, proto, port)` under table set `set`. `port` is the
/// destination port (TCP, UDP, SCTP), the ICMP type (ICMP, ICMPv6), or 0.
///
/// Intra-zone traffic of a zone that is not isolated passes without a pair
/// lookup unless the zone has tables of its own (`ZONE_INTRA_TABLE`: a deny
/// covers some of it); then those tables decide, and a port no deny covers
/// (or a protocol with no table) passes as intra-zone.
#[inline(always)]
pub fn decide(set: u32, src: &[u8; 16], dst: &[u8; 16], proto: u8, port: u16) -> Decision {
    let src_zone = maps::zone_of(set, src);
    let dst_zone = maps::zone_of(set, dst);
    let src_info = maps::zone_info(set, src_zone);
    let src_flags = src_info.flags;
    let flags = src_flags | maps::zone_info(set, dst_zone).flags;
    let intra = src_zone == dst_zone && src_flags & ZONE_ISOLATED == 0;
    let mut decision = Decision {
        allow: intra,
        monitor: flags & ZONE_MONITOR != 0,
        intra_zone: intra,
        rule: RULE_NONE,
        src_zone,
        dst_zone,
    };
    if intra && src_flags & ZONE_INTRA_TABLE == 0 {
        return decision;
    }
    let span = match maps::pair(set, &src_info, dst_zone, u32::from(proto)) {
        Some(span) => span,
        None => match maps::pair(set, &src_info, dst_zone, PROTO_ANY) {
            Some(span) => span,
            None => return decision,
        },
    };
    if let Some(found) = search(set, span.first, span.count, port) {
        decision.allow = found.verdict == VERDICT_ALLOW;
        decision.rule = found.rule;
        decision.intra_zone = decision.allow && found.rule == RULE_NONE;
    }
    decision
}

/// Finds the interval holding `port` among `count` sorted intervals starting
/// at `first`: the last one whose `lo <= port`. A span with a port
/// directory (named by its first interval) is searched from the run of
/// `port`'s 256-port block only.
#[inline(always)]
fn search(set: u32, first: u32, count: u32, port: u16) -> Option<wardgate_common::Interval> {
    // Only a span longer than this can have a directory: shorter ones are
    // searched without reading their first interval twice.
    let (first, count) = if count as usize > PORT_DIR_MIN_INTERVALS
        && let Some(head) = maps::interval(first)
        && head.dir != 0
    {
        let run = maps::port_run(set, head.dir, port)?;
        (run.first, run.end.saturating_sub(run.first))
    } else {
        (first, count)
    };
    let found = maps::last_at_or_below::<INTERVAL_SEARCH_STEPS>(first, count, |i| {
        maps::interval(i).map(|interval| interval.lo <= port)
    })?;
    let found = maps::interval(found)?;
    (found.lo <= port && port <= found.hi).then_some(found)
}
