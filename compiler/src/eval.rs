//! The reference evaluator: how a packet that starts a connection is decided.
//!
//! [`decide`] reads only the [`PolicyImage`] and follows the datapath step by
//! step: an IPv6 packet with an IPv4-mapped address drops as malformed;
//! classify both addresses by longest-prefix match; intra-zone traffic of a
//! non-isolated zone without tables of its own passes without a lookup; look
//! up `(src, dst, proto)`, then `(src, dst, PROTO_ANY)`; binary-search the
//! port; monitor mode turns a default-deny drop (never an explicit deny) into
//! an audit. The differential test holds the XDP program to it.
//!
//! [`decide_by_rules`] reads the rules directly, the way the language
//! reference (`docs/language.md`, Semantics) states them, with no tables.
//! Property tests hold the two equal.

use std::net::IpAddr;

use serde::Serialize;
use wardgate_common::{
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, PROTO_ANY, PairKey,
    RULE_NONE, VERDICT_ALLOW, WORLD_ZONE, ZONE_INTRA_TABLE, ZONE_ISOLATED, ZONE_MONITOR,
};

use crate::image::PolicyImage;
use crate::lower::find;
use crate::model::{Action, Date, Policy, RuleId, ZoneId};
use crate::prefix::{Key, V4_MAPPED_BASE, addr_key};

/// The first packet of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (TCP, UDP, SCTP), ICMP type (ICMP, ICMPv6), else 0.
    pub port: u16,
}

impl Packet {
    /// The number the tables are searched with: the port for protocols with
    /// ports, the type for ICMP, 0 for every other protocol (as the datapath).
    #[must_use]
    pub fn lookup_port(&self) -> u16 {
        match self.proto {
            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_ICMP | IPPROTO_ICMPV6 => self.port,
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    /// Would be denied, passed because a zone involved is in monitor mode.
    Audit,
}

impl Verdict {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }
}

/// A decision: the verdict, both zones and the deciding rule (`None` for
/// intra-zone and default-deny decisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    pub verdict: Verdict,
    pub src_zone: ZoneId,
    pub dst_zone: ZoneId,
    pub rule: Option<RuleId>,
    /// Dropped as malformed before the policy is consulted: an IPv6 packet
    /// whose source or destination is IPv4-mapped (`::ffff:0:0/96`). Both
    /// zones are then `world` and `rule` is `None`.
    pub malformed: bool,
}

impl Decision {
    fn malformed() -> Self {
        Self {
            verdict: Verdict::Deny,
            src_zone: WORLD_ZONE,
            dst_zone: WORLD_ZONE,
            rule: None,
            malformed: true,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): never on a real wire, and
/// never to be classified as the IPv4 address it embeds.
#[must_use]
pub fn is_v4_mapped(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(_) => false,
        IpAddr::V6(a) => u128::from(a) >> 32 == V4_MAPPED_BASE >> 32,
    }
}

impl Packet {
    /// An IPv6 packet with an IPv4-mapped source or destination: malformed.
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        is_v4_mapped(self.src) || is_v4_mapped(self.dst)
    }
}

/// The verdict of a packet no allow covers: an explicit deny (`rule` is
/// `Some`) always drops; a default deny passes as an audit when a zone
/// involved is in monitor mode.
fn denied(rule: Option<RuleId>, monitor: bool) -> Verdict {
    if rule.is_none() && monitor {
        Verdict::Audit
    } else {
        Verdict::Deny
    }
}

/// Decides a packet from the image's tables, exactly as the datapath does.
#[must_use]
pub fn decide(image: &PolicyImage, pkt: &Packet) -> Decision {
    if pkt.is_malformed() {
        return Decision::malformed();
    }
    let src_zone = image.classify(addr_key(pkt.src));
    let dst_zone = image.classify(addr_key(pkt.dst));
    let flags = |z: ZoneId| image.zones().get(z as usize).map_or(0, |z| z.flags);
    let (sf, df) = (flags(src_zone), flags(dst_zone));
    let intra = src_zone == dst_zone && sf & ZONE_ISOLATED == 0;
    let allow_intra = Decision {
        verdict: Verdict::Allow,
        src_zone,
        dst_zone,
        rule: None,
        malformed: false,
    };
    if intra && sf & ZONE_INTRA_TABLE == 0 {
        return allow_intra;
    }
    let key = |proto| PairKey {
        src_zone,
        dst_zone,
        proto,
    };
    let table = image
        .table(key(u32::from(pkt.proto)))
        .or_else(|| image.table(key(PROTO_ANY)));
    let (allowed, rule) = match table.and_then(|t| find(t, pkt.lookup_port())) {
        Some(iv) => (iv.verdict == VERDICT_ALLOW, iv.rule),
        None if intra => return allow_intra,
        None => (false, RULE_NONE),
    };
    let rule = (rule != RULE_NONE).then_some(rule);
    let verdict = if allowed {
        Verdict::Allow
    } else {
        denied(rule, (sf | df) & ZONE_MONITOR != 0)
    };
    Decision {
        verdict,
        src_zone,
        dst_zone,
        rule,
        malformed: false,
    }
}

/// Decides a packet by reading the policy's rules one by one, as docs/language.md
/// words it. Slow; for tests.
#[must_use]
pub fn decide_by_rules(policy: &Policy, today: Option<Date>, pkt: &Packet) -> Decision {
    let classify = |addr: IpAddr| -> ZoneId {
        let a = addr_key(addr);
        let mut best: Option<(u8, ZoneId)> = None;
        for (id, z) in policy.zones.iter().enumerate() {
            for p in &z.prefixes {
                if p.net.is_ipv4() != addr.is_ipv4() {
                    continue;
                }
                let k = Key::of(p.net);
                if k.contains(a) && best.is_none_or(|(len, _)| k.len > len) {
                    best = Some((k.len, u32::try_from(id).expect("zone count fits u32")));
                }
            }
        }
        best.map_or(WORLD_ZONE, |b| b.1)
    };
    if pkt.is_malformed() {
        return Decision::malformed();
    }
    let (s, d) = (classify(pkt.src), classify(pkt.dst));
    let (sz, dz) = (policy.zone(s), policy.zone(d));
    let port = pkt.lookup_port();
    let mut allow: Option<RuleId> = None;
    let mut deny: Option<RuleId> = None;
    for (id, r) in policy.rules.iter().enumerate() {
        if !r.in_force(today) || !r.covers(s, d, pkt.proto, port) {
            continue;
        }
        let id = u32::try_from(id).expect("rule count fits u32");
        let slot = match r.action {
            Action::Allow => &mut allow,
            Action::Deny => &mut deny,
        };
        slot.get_or_insert(id);
    }
    // A deny in force drops, inside a zone too and whatever any allow says;
    // then intra-zone traffic of a zone that is not isolated (never `world`)
    // passes; then an allow must cover it; else default deny.
    let (verdict, rule) = match (deny, allow) {
        (Some(r), _) => (Verdict::Deny, Some(r)),
        (None, _) if s == d && !sz.isolated => (Verdict::Allow, None),
        (None, Some(r)) => (Verdict::Allow, Some(r)),
        (None, None) => (denied(None, sz.monitor || dz.monitor), None),
    };
    Decision {
        verdict,
        src_zone: s,
        dst_zone: d,
        rule,
        malformed: false,
    }
}
