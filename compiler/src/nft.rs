//! The nftables backend: a [`PolicyImage`] as one `table inet wardgate`.
//!
//! For gateways that cannot run XDP. The ruleset is rendered from the lowered
//! image (never a rule per zone pair), so it decides exactly as
//! [`crate::decide`] does; a differential test in `tests/tests/nft` sends
//! crafted packets through it in a namespace gateway and compares. The mapping
//! is documented in `docs/nftables.md`; keep the two in step.
//!
//! In short, in the `forward` hook:
//! 0. an IPv6 packet with an IPv4-mapped source or destination
//!    (`::ffff:0:0/96`) drops as malformed (counter `drop_mapped`);
//! 1. packets of tracked connections (`ct state established,related`) and
//!    IPv6 neighbour discovery pass;
//! 2. the destination address is classified by an interval map
//!    (`dst_zone_v4` / `dst_zone_v6`) whose value goes into the packet's
//!    priority as `0:DST` (a tc classid, hex);
//! 3. the source address jumps through a verdict map (`src_zone_v4` /
//!    `src_zone_v6`) into a two-line chain per zone, `from_zN`, which accepts
//!    intra-zone traffic of a non-isolated zone without tables of its own and
//!    otherwise ORs `N:0` into the priority, so that it reads `SRC:DST`;
//! 4. chain `decide` looks up `SRC:DST . protocol . port-or-type` in one of
//!    three verdict maps (`policy_ports`, `policy_icmp`, `policy_other`)
//!    built from the image's interval tables; hits go to a counting chain per
//!    rule (`allow_N`, `deny_N`) or, for intra-zone ports no deny covers, to
//!    `intra_zone`; misses are intra-zone for a non-isolated zone's own pair,
//!    else default deny, or audit when a monitor zone is involved (an
//!    explicit deny drops in monitor mode too).
//!
//! nftables interval maps reject overlapping elements, so nested prefixes
//! are flattened into disjoint address ranges first ([`zone_ranges`]): each
//! range is classified by the image's own longest-prefix match.
//!
//! The table declares its maps empty; their elements ([`maps`]) follow it
//! in the same file as `add element` commands of at most
//! [`ELEMENTS_PER_COMMAND`] elements, which nft 1.0.6 loads exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use wardgate_common::{
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, PROTO_ANY, RULE_NONE,
    VERDICT_ALLOW, WORLD_ZONE, ZONE_INTRA_TABLE, ZONE_ISOLATED, ZONE_MONITOR,
};

use crate::image::{PolicyImage, RuleMeta};
use crate::model::{Action, ZoneId};
use crate::prefix::V4_MAPPED_BASE;

/// The table's name (family `inet`).
pub const TABLE: &str = "wardgate";

/// Protocols with destination ports in the language.
const PORT_PROTOS: [u8; 3] = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP];
/// Protocols looked up by ICMP type.
const ICMP_PROTOS: [u8; 2] = [IPPROTO_ICMP, IPPROTO_ICMPV6];

/// nftables keeps at most 128 bytes of a comment.
const COMMENT_MAX: usize = 127;

/// A run of addresses `lo..=hi` in the 16-byte key space and its zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneRange {
    pub lo: u128,
    pub hi: u128,
    pub zone: ZoneId,
}

/// The image's prefixes flattened into disjoint, sorted address ranges that
/// cover the whole 16-byte key space; each range carries the zone the
/// image's longest-prefix match gives every address in it (`world` included).
/// Adjacent ranges of the same zone are merged.
#[must_use]
pub fn zone_ranges(image: &PolicyImage) -> Vec<ZoneRange> {
    // Every address where the longest match can change: prefix starts and the
    // address after each prefix's end. Between two of these, LPM is constant.
    let mut bounds = BTreeSet::from([0u128, V4_MAPPED_BASE, V4_MAPPED_BASE + (1 << 32)]);
    for (key, _) in image.prefixes() {
        let span = u128::MAX.checked_shr(u32::from(key.len)).unwrap_or(0);
        bounds.insert(key.addr);
        if let Some(next) = (key.addr | span).checked_add(1) {
            bounds.insert(next);
        }
    }
    let bounds: Vec<u128> = bounds.into_iter().collect();
    let mut out: Vec<ZoneRange> = Vec::with_capacity(bounds.len());
    for (i, &lo) in bounds.iter().enumerate() {
        let hi = bounds.get(i + 1).map_or(u128::MAX, |next| next - 1);
        let zone = image.classify(lo);
        match out.last_mut() {
            Some(last) if last.zone == zone && last.hi.checked_add(1) == Some(lo) => last.hi = hi,
            _ => out.push(ZoneRange { lo, hi, zone }),
        }
    }
    out
}

/// The most elements one `add element` command carries.
///
/// nft 1.0.6 (Debian 12) splits a command's elements into netlink messages of
/// at most 64 KiB and byte-swaps the host-order fields (`meta priority`) of
/// the element that starts each message after the first: a large map loaded
/// as one block reads back with invented zone pairs. An element of these maps
/// is at most 104 bytes on the wire (an IPv6 range, sent as a start and an end
/// element, with a `goto` to a 16-character chain), so 256 of them fill less
/// than half a message: no command is ever split. `docs/nftables.md` has the
/// details; the scale test in `tests/tests/nft_scale` reads every element back.
pub const ELEMENTS_PER_COMMAND: usize = 256;

/// How a key field is typed, and so written and byte-ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `ipv4_addr`, network order.
    Ipv4,
    /// `ipv6_addr`, network order.
    Ipv6,
    /// `classid` (`meta priority`), host order: `MAJOR:MINOR` in hex.
    Classid,
    /// `inet_proto` (one byte), `inet_service` (network order) or a raw
    /// header field (`@th,0,8`, one byte): a decimal number.
    Number,
}

/// One field of a map key: the values `lo..=hi` of one [`Kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Field {
    pub kind: Kind,
    pub lo: u128,
    pub hi: u128,
}

impl Field {
    #[must_use]
    pub fn one(kind: Kind, value: u128) -> Self {
        Self::range(kind, value, value)
    }

    #[must_use]
    pub fn range(kind: Kind, lo: u128, hi: u128) -> Self {
        Self { kind, lo, hi }
    }

    fn write_value(self, f: &mut std::fmt::Formatter<'_>, v: u128) -> std::fmt::Result {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "each kind's values fit its width, checked where they are made"
        )]
        match self.kind {
            Kind::Ipv4 => write!(f, "{}", Ipv4Addr::from(v as u32)),
            Kind::Ipv6 => write!(f, "{}", Ipv6Addr::from(v)),
            Kind::Classid => write!(f, "{:x}:{:x}", (v >> 16) as u32, v as u32 & 0xffff),
            Kind::Number => write!(f, "{v}"),
        }
    }
}

impl std::fmt::Display for Field {
    /// `lo`, or `lo-hi`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write_value(f, self.lo)?;
        if self.hi != self.lo {
            f.write_str("-")?;
            self.write_value(f, self.hi)?;
        }
        Ok(())
    }
}

/// What a map element maps its key to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Data {
    /// A `meta priority` value, `SRC:DST` packed as `SRC << 16 | DST`.
    Classid(u32),
    /// `goto CHAIN`.
    Goto(String),
}

/// One map element: a concatenation of fields and its data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    pub key: Vec<Field>,
    pub data: Data,
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, k) in self.key.iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{k}")?;
        }
        match &self.data {
            Data::Classid(c) => write!(f, " : {}", Field::one(Kind::Classid, u128::from(*c))),
            Data::Goto(chain) => write!(f, " : goto {chain}"),
        }
    }
}

/// One `flags interval` map of the table and the elements the ruleset
/// writes into it.
///
/// The table declares the maps empty; the elements follow the table as
/// `add element` commands of at most [`ELEMENTS_PER_COMMAND`] each, in the
/// same file and so in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    pub name: &'static str,
    /// The map's `typeof` line: key fields, then `:` and the data.
    pub typeof_: &'static str,
    pub elements: Vec<Element>,
}

/// Every map of the ruleset with its elements, as [`render`] writes them.
#[must_use]
pub fn maps(image: &PolicyImage) -> Vec<Map> {
    Renderer::new(image).maps()
}

/// Where an interval of a table sends a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// Intra-zone traffic of a zone that is not isolated, no deny covering it.
    Intra,
    Allow(u32),
    Deny(u32),
}

impl Target {
    fn chain(self) -> String {
        match self {
            Self::Intra => "intra_zone".to_owned(),
            Self::Allow(r) => format!("allow_{r}"),
            Self::Deny(r) => format!("deny_{r}"),
        }
    }
}

/// Renders the ruleset: one file that `nft -f` loads atomically, replacing
/// any earlier `table inet wardgate`.
#[must_use]
pub fn render(image: &PolicyImage) -> String {
    Renderer::new(image).render()
}

struct Renderer<'a> {
    image: &'a PolicyImage,
    /// `policy_ports`: (pair, proto, lo, hi) -> target.
    ports: Vec<(u32, u8, u16, u16, Target)>,
    /// `policy_icmp`: (pair, proto, lo, hi) -> target; types 0..=255.
    icmp: Vec<(u32, u8, u16, u16, Target)>,
    /// `policy_other`: (pair, proto lo, proto hi) -> target.
    other: Vec<(u32, u8, u8, Target)>,
    targets: BTreeSet<Target>,
}

fn flags(image: &PolicyImage, zone: ZoneId) -> u32 {
    image.zones().get(zone as usize).map_or(0, |z| z.flags)
}

/// The priority value `SRC:DST` (tc classid notation, hex).
fn classid(src: ZoneId, dst: ZoneId) -> String {
    format!("{src:x}:{dst:x}")
}

fn pair_value(src: ZoneId, dst: ZoneId) -> u32 {
    (src << 16) | dst
}

/// A comment nftables accepts: no double quotes, at most 127 bytes.
fn comment(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
        .collect();
    if s.len() > COMMENT_MAX {
        let mut cut = COMMENT_MAX - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn rule_comment(rule: &RuleMeta) -> String {
    comment(&format!("{}:{}: {}", rule.file, rule.line, rule.text))
}

impl<'a> Renderer<'a> {
    fn new(image: &'a PolicyImage) -> Self {
        let mut r = Self {
            image,
            ports: Vec::new(),
            icmp: Vec::new(),
            other: Vec::new(),
            targets: BTreeSet::new(),
        };
        r.lower();
        r
    }

    /// The image's tables as map elements.
    fn lower(&mut self) {
        let image = self.image;
        // Protocols with their own table, per zone pair: the `any` table
        // (PROTO_ANY) applies to every other protocol.
        let mut specific: BTreeMap<(u32, u32), BTreeSet<u32>> = BTreeMap::new();
        for (key, _) in image.pairs() {
            if key.proto != PROTO_ANY {
                specific
                    .entry((key.src_zone, key.dst_zone))
                    .or_default()
                    .insert(key.proto);
            }
        }
        for (key, _) in image.pairs() {
            let (s, d) = (key.src_zone, key.dst_zone);
            let pair = pair_value(s, d);
            let table = image.table(*key).expect("pairs come from the image");
            let intervals: Vec<(u16, u16, Target)> = table
                .iter()
                .filter_map(|iv| {
                    let target = match (iv.verdict == VERDICT_ALLOW, iv.rule == RULE_NONE) {
                        (true, true) => Target::Intra,
                        (true, false) => Target::Allow(iv.rule),
                        // Default deny: left out, the chain's tail decides.
                        (false, true) => return None,
                        // An explicit deny drops, in monitor mode too.
                        (false, false) => Target::Deny(iv.rule),
                    };
                    Some((iv.lo, iv.hi, target))
                })
                .collect();
            let protos: Vec<u8> = if key.proto == PROTO_ANY {
                let own = specific.get(&(s, d));
                (0..=255u8)
                    .filter(|p| !own.is_some_and(|o| o.contains(&u32::from(*p))))
                    .collect()
            } else {
                vec![u8::try_from(key.proto).expect("protocol numbers fit u8")]
            };
            let mut others: Vec<u8> = Vec::new();
            for p in protos {
                if PORT_PROTOS.contains(&p) {
                    for &(lo, hi, t) in &intervals {
                        self.ports.push((pair, p, lo, hi, t));
                        self.targets.insert(t);
                    }
                } else if ICMP_PROTOS.contains(&p) {
                    for &(lo, hi, t) in intervals.iter().filter(|iv| iv.0 <= 255) {
                        self.icmp.push((pair, p, lo, hi.min(255), t));
                        self.targets.insert(t);
                    }
                } else {
                    others.push(p);
                }
            }
            // Every other protocol is looked up with port 0.
            if let Some(&(_, _, t)) = intervals.iter().find(|iv| iv.0 == 0) {
                for (lo, hi) in runs(&others) {
                    self.other.push((pair, lo, hi, t));
                    self.targets.insert(t);
                }
            }
        }
    }

    /// The ruleset text. Zones' `conntrack-limit`s are not enforced by this
    /// backend; a comment at the top names them.
    fn render(&self) -> String {
        let image = self.image;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "#!/usr/sbin/nft -f\n\
             # wardgate nftables ruleset, compiled from policy image sha256:{}\n\
             # {} zones, {} prefixes, {} rules, {} zone-pair tables.\n\
             # Load (atomically, replacing an earlier wardgate table): nft -f FILE\n\
             # How it decides: docs/nftables.md\n",
            image.hash(),
            image.zones().len(),
            image.prefixes().len(),
            image.rules().len(),
            image.pairs().len(),
        );
        let limited: Vec<String> = image
            .zones()
            .iter()
            .filter_map(|z| z.conntrack_limit.map(|n| format!("{} ({n})", z.name)))
            .collect();
        if !limited.is_empty() {
            let _ = writeln!(
                out,
                "# NOT ENFORCED HERE: conntrack-limit of {}; only the XDP datapath limits
                 # tracked connections per zone (docs/nftables.md).
",
                limited.join(", ")
            );
        }
        // Create-then-delete makes the delete succeed when the table is new;
        // the whole file is one transaction.
        let _ = writeln!(out, "table inet {TABLE} {{}}\ndelete table inet {TABLE}\n");
        let _ = writeln!(out, "table inet {TABLE} {{");
        self.counters(&mut out);
        let maps = self.maps();
        for m in &maps {
            if m.name == "dst_zone_v4" {
                out.push_str(
                    "\t# Address to zone: the image's prefixes flattened into disjoint ranges\n\
                     \t# (longest prefix wins); addresses in no range are in `world` (0).\n",
                );
            } else if m.name == "policy_ports" {
                out.push_str(
                    "\t# The image's interval tables: SRC:DST . protocol . port (or ICMP type) to\n\
                     \t# the deciding rule's chain. Missing keys are default deny.\n",
                );
            }
            let _ = write!(
                out,
                "\tmap {} {{\n\t\ttypeof {}\n\t\tflags interval\n\t}}\n\n",
                m.name, m.typeof_
            );
        }
        self.chains(&mut out);
        out.push_str("}\n");
        elements(&mut out, &maps);
        out
    }

    fn counters(&self, out: &mut String) {
        out.push_str("\t# One counter per rule in force, named after its id in the image.\n");
        for rule in self.image.rules().iter().filter(|r| r.active) {
            let _ = writeln!(
                out,
                "\tcounter rule_{} {{\n\t\tcomment \"{}\"\n\t}}",
                rule.id,
                rule_comment(rule)
            );
        }
        for (name, what) in [
            (
                "intra_zone",
                "intra-zone traffic of a zone that is not isolated",
            ),
            ("default_deny", "no allow rule covers the packet"),
            (
                "drop_mapped",
                "an IPv6 packet with an IPv4-mapped address, malformed",
            ),
            (
                "default_audit",
                "no allow rule covers the packet, a zone is in monitor mode",
            ),
        ] {
            let _ = writeln!(out, "\tcounter {name} {{\n\t\tcomment \"{what}\"\n\t}}");
        }
        out.push('\n');
    }

    /// The zone maps: address ranges to zones, for each family and direction.
    fn zone_maps(&self) -> Vec<Map> {
        let ranges = zone_ranges(self.image);
        let v4_lo = V4_MAPPED_BASE;
        let v4_hi = V4_MAPPED_BASE + u128::from(u32::MAX);
        let v4: Vec<(Field, ZoneId)> = ranges
            .iter()
            .filter(|r| r.zone != WORLD_ZONE && r.lo >= v4_lo && r.hi <= v4_hi)
            .map(|r| (Field::range(Kind::Ipv4, r.lo - v4_lo, r.hi - v4_lo), r.zone))
            .collect();
        let v6: Vec<(Field, ZoneId)> = ranges
            .iter()
            .filter(|r| r.zone != WORLD_ZONE)
            .map(|r| (Field::range(Kind::Ipv6, r.lo, r.hi), r.zone))
            .collect();
        let dst = |elements: &[(Field, ZoneId)]| {
            elements
                .iter()
                .map(|&(k, z)| Element {
                    key: vec![k],
                    data: Data::Classid(pair_value(0, z)),
                })
                .collect()
        };
        let src = |elements: &[(Field, ZoneId)]| {
            elements
                .iter()
                .map(|&(k, z)| Element {
                    key: vec![k],
                    data: Data::Goto(format!("from_z{z}")),
                })
                .collect()
        };
        vec![
            Map {
                name: "dst_zone_v4",
                typeof_: "ip daddr : meta priority",
                elements: dst(&v4),
            },
            Map {
                name: "dst_zone_v6",
                typeof_: "ip6 daddr : meta priority",
                elements: dst(&v6),
            },
            Map {
                name: "src_zone_v4",
                typeof_: "ip saddr : verdict",
                elements: src(&v4),
            },
            Map {
                name: "src_zone_v6",
                typeof_: "ip6 saddr : verdict",
                elements: src(&v6),
            },
        ]
    }

    /// The policy maps: the image's interval tables.
    fn policy_maps(&self) -> Vec<Map> {
        let key = |pair: u32, p: u8, lo: u16, hi: u16| {
            vec![
                Field::one(Kind::Classid, u128::from(pair)),
                Field::one(Kind::Number, u128::from(p)),
                Field::range(Kind::Number, u128::from(lo), u128::from(hi)),
            ]
        };
        let ports = self
            .ports
            .iter()
            .map(|&(pair, p, lo, hi, t)| Element {
                key: key(pair, p, lo, hi),
                data: Data::Goto(t.chain()),
            })
            .collect();
        let icmp = self
            .icmp
            .iter()
            .map(|&(pair, p, lo, hi, t)| Element {
                key: key(pair, p, lo, hi),
                data: Data::Goto(t.chain()),
            })
            .collect();
        let other = self
            .other
            .iter()
            .map(|&(pair, lo, hi, t)| Element {
                key: vec![
                    Field::one(Kind::Classid, u128::from(pair)),
                    Field::range(Kind::Number, u128::from(lo), u128::from(hi)),
                ],
                data: Data::Goto(t.chain()),
            })
            .collect();
        vec![
            Map {
                name: "policy_ports",
                typeof_: "meta priority . meta l4proto . th dport : verdict",
                elements: ports,
            },
            Map {
                name: "policy_icmp",
                typeof_: "meta priority . meta l4proto . @th,0,8 : verdict",
                elements: icmp,
            },
            Map {
                name: "policy_other",
                typeof_: "meta priority . meta l4proto : verdict",
                elements: other,
            },
        ]
    }

    fn maps(&self) -> Vec<Map> {
        let mut maps = self.zone_maps();
        maps.extend(self.policy_maps());
        maps
    }

    fn chains(&self, out: &mut String) {
        let image = self.image;
        let isolated = |z: ZoneId| flags(image, z) & ZONE_ISOLATED != 0;
        let own_tables = |z: ZoneId| flags(image, z) & ZONE_INTRA_TABLE != 0;
        let monitor: Vec<ZoneId> = image
            .zones()
            .iter()
            .filter(|z| z.flags & ZONE_MONITOR != 0)
            .map(|z| z.id)
            .collect();

        out.push_str(
            "\tchain forward {\n\
             \t\ttype filter hook forward priority filter; policy drop;\n\
             \t\t# IPv4-mapped IPv6 addresses never appear on a real wire: malformed.\n\
             \t\tip6 saddr ::ffff:0:0/96 counter name \"drop_mapped\" drop\n\
             \t\tip6 daddr ::ffff:0:0/96 counter name \"drop_mapped\" drop\n\
             \t\t# Replies and related ICMP errors of allowed connections.\n\
             \t\tct state established,related accept\n\
             \t\t# Neighbour discovery and MLD are not the policy's business.\n\
             \t\ticmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect, mld2-listener-report } accept\n\
             \t\t# The priority holds SRC:DST while deciding; reset on accept.\n\
             \t\tmeta priority set none\n\
             \t\tmeta priority set ip daddr map @dst_zone_v4\n\
             \t\tmeta priority set ip6 daddr map @dst_zone_v6\n\
             \t\tip saddr vmap @src_zone_v4\n\
             \t\tip6 saddr vmap @src_zone_v6\n",
        );
        // The source is `world` (always isolated today).
        if !isolated(WORLD_ZONE) && !own_tables(WORLD_ZONE) {
            out.push_str("\t\tmeta priority none goto intra_zone\n");
        }
        out.push_str("\t\tgoto decide\n\t}\n\n");

        let sources: BTreeSet<ZoneId> = zone_ranges(image)
            .iter()
            .map(|r| r.zone)
            .filter(|&z| z != WORLD_ZONE)
            .collect();
        for z in sources {
            let _ = writeln!(
                out,
                "\tchain from_z{z} {{\n\t\t# {}",
                comment(image.zone_name(z))
            );
            if !isolated(z) && !own_tables(z) {
                let _ = writeln!(out, "\t\tmeta priority {} goto intra_zone", classid(0, z));
            }
            let _ = writeln!(
                out,
                "\t\tmeta priority set meta priority | {}\n\t\tgoto decide\n\t}}\n",
                classid(z, 0)
            );
        }

        out.push_str(
            "\tchain decide {\n\
             \t\tmeta l4proto { tcp, udp, sctp } meta priority . meta l4proto . th dport vmap @policy_ports\n\
             \t\tmeta l4proto { icmp, ipv6-icmp } meta priority . meta l4proto . @th,0,8 vmap @policy_icmp\n\
             \t\tmeta priority . meta l4proto vmap @policy_other\n",
        );
        // Zones whose own pair has tables: what no table holds is intra-zone.
        let open_own: Vec<String> = image
            .zones()
            .iter()
            .filter(|z| !isolated(z.id) && own_tables(z.id))
            .map(|z| classid(z.id, z.id))
            .collect();
        if !open_own.is_empty() {
            let _ = writeln!(
                out,
                "\t\t# Intra-zone traffic that no deny covers.\n\t\tmeta priority {{ {} }} goto intra_zone",
                open_own.join(", ")
            );
        }
        if !monitor.is_empty() {
            let set = |f: &dyn Fn(ZoneId) -> String| {
                monitor.iter().map(|&z| f(z)).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(
                out,
                "\t\t# Monitor zones pass would-be drops as audits.\n\
                 \t\tmeta priority & ffff:0 {{ {} }} goto default_audit\n\
                 \t\tmeta priority & 0:ffff {{ {} }} goto default_audit",
                set(&|z| classid(z, 0)),
                set(&|z| classid(0, z)),
            );
        }
        out.push_str("\t\tcounter name \"default_deny\" drop\n\t}\n\n");

        out.push_str(
            "\tchain intra_zone {\n\
             \t\tcounter name \"intra_zone\" meta priority set none accept\n\
             \t}\n\n\
             \tchain default_audit {\n\
             \t\tcounter name \"default_audit\" log prefix \"wardgate audit default: \" meta priority set none accept\n\
             \t}\n",
        );
        for t in &self.targets {
            let (r, body) = match *t {
                Target::Intra => continue,
                Target::Allow(r) => (r, "meta priority set none accept"),
                Target::Deny(r) => (r, "drop"),
            };
            let text = image.rule(r).map(rule_comment).unwrap_or_default();
            let _ = writeln!(
                out,
                "\n\tchain {} {{\n\t\tcounter name \"rule_{r}\" {body} comment \"{text}\"\n\t}}",
                t.chain()
            );
        }
        debug_assert!(
            self.targets.iter().all(|t| {
                let r = match *t {
                    Target::Intra => return true,
                    Target::Allow(r) | Target::Deny(r) => r,
                };
                image.rule(r).is_some_and(|m| {
                    m.active && (m.action == Action::Allow) == matches!(t, Target::Allow(_))
                })
            }),
            "every target names a rule in force of the right action"
        );
    }
}

/// Sorted protocol numbers as inclusive runs.
fn runs(protos: &[u8]) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for &p in protos {
        match out.last_mut() {
            Some(last) if u16::from(last.1) + 1 == u16::from(p) => last.1 = p,
            _ => out.push((p, p)),
        }
    }
    out
}

/// The elements, as `add element` commands of at most
/// [`ELEMENTS_PER_COMMAND`] elements each, after the table (see [`Map`]).
fn elements(out: &mut String, maps: &[Map]) {
    if maps.iter().all(|m| m.elements.is_empty()) {
        return;
    }
    let _ = writeln!(
        out,
        "\n# Map elements, at most {ELEMENTS_PER_COMMAND} per command (docs/nftables.md, `Loading`)."
    );
    for m in maps {
        for chunk in m.elements.chunks(ELEMENTS_PER_COMMAND) {
            let _ = writeln!(out, "add element inet {TABLE} {} {{", m.name);
            for (i, e) in chunk.iter().enumerate() {
                let sep = if i + 1 == chunk.len() { "" } else { "," };
                let _ = writeln!(out, "\t{e}{sep}");
            }
            out.push_str("}\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(source: &str) -> PolicyImage {
        let loaded = wardgate_lang::parse_str("test.ward", source);
        let (image, diags) = crate::compile(&loaded, &crate::Options::default());
        image.unwrap_or_else(|| panic!("{diags:#?}"))
    }

    #[test]
    fn nested_prefixes_flatten_into_disjoint_ranges() {
        let image = image(
            "zone a { networks 10.0.0.0/8 }\nzone b { networks 10.1.0.0/16 }\nzone c { networks ::/0 }\n",
        );
        let ranges = zone_ranges(&image);
        for w in ranges.windows(2) {
            assert_eq!(w[0].hi + 1, w[1].lo, "ranges are contiguous: {w:?}");
            assert_ne!(w[0].zone, w[1].zone, "adjacent ranges are merged: {w:?}");
        }
        assert_eq!(ranges.first().map(|r| r.lo), Some(0));
        assert_eq!(ranges.last().map(|r| r.hi), Some(u128::MAX));
        for r in &ranges {
            for a in [r.lo, r.hi, r.lo / 2 + r.hi / 2] {
                assert_eq!(image.classify(a), r.zone, "{a:#x} in {r:?}");
            }
        }
    }

    #[test]
    fn elements_follow_the_table_in_bounded_commands() {
        // More zones than one command holds, so every map needs several.
        let mut source = String::new();
        for i in 0..600 {
            let _ = writeln!(
                source,
                "zone z{i} {{ networks 10.{}.{}.0/24, 2001:db8:{i:x}::/48 isolated }}",
                i / 256,
                i % 256
            );
        }
        for i in 0..600 {
            let _ = writeln!(
                source,
                "allow z{i} -> z{} : tcp/{}",
                (i + 1) % 600,
                1000 + i
            );
        }
        let image = image(&source);
        let out = render(&image);
        let maps = maps(&image);
        let table = out
            .split_once("\ntable inet wardgate {\n")
            .and_then(|(_, rest)| rest.split_once("\n}\n"))
            .expect("one table block")
            .0;
        assert!(!table.contains("elements"), "maps are declared empty");
        for m in &maps {
            let commands: Vec<&str> = out
                .split(&format!("add element inet wardgate {} {{\n", m.name))
                .skip(1)
                .map(|c| c.split_once("\n}\n").expect("closed").0)
                .collect();
            assert!(
                commands
                    .iter()
                    .all(|c| c.lines().count() <= ELEMENTS_PER_COMMAND)
            );
            let written: Vec<String> = commands
                .iter()
                .flat_map(|c| c.lines())
                .map(|l| l.trim().trim_end_matches(',').to_owned())
                .collect();
            let want: Vec<String> = m.elements.iter().map(ToString::to_string).collect();
            assert_eq!(written, want, "map {}", m.name);
        }
        let ports = maps.iter().find(|m| m.name == "policy_ports").unwrap();
        assert!(ports.elements.len() > 2 * ELEMENTS_PER_COMMAND);
        assert_eq!(
            ports.elements[0].to_string(),
            "1:2 . 6 . 1000 : goto allow_0"
        );
    }

    #[test]
    fn fields_are_written_in_their_types_notation() {
        let f = |k, lo, hi| Field::range(k, lo, hi).to_string();
        assert_eq!(
            f(Kind::Ipv4, 0x0a00_0000, 0x0a00_00ff),
            "10.0.0.0-10.0.0.255"
        );
        assert_eq!(f(Kind::Ipv6, 1, 1), "::1");
        assert_eq!(f(Kind::Classid, 0x1234_0fff, 0x1234_0fff), "1234:fff");
        assert_eq!(f(Kind::Number, 80, 443), "80-443");
        let e = Element {
            key: vec![Field::one(Kind::Ipv4, 1)],
            data: Data::Classid(0x2710),
        };
        assert_eq!(e.to_string(), "0.0.0.1 : 0:2710");
    }

    #[test]
    fn protocol_runs() {
        assert_eq!(
            runs(&[0, 2, 3, 4, 7, 255]),
            vec![(0, 0), (2, 4), (7, 7), (255, 255)]
        );
        assert_eq!(runs(&[]), vec![]);
    }

    #[test]
    fn comments_fit_nftables() {
        let c = comment(&format!("a \"quoted\" {}", "x".repeat(300)));
        assert!(c.len() <= COMMENT_MAX && !c.contains('"'));
    }
}
