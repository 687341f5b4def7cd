//! The resolved policy: zones, rules and requirements with every name looked up.
//!
//! This is what the rest of the compiler works on. It knows nothing of syntax:
//! [`crate::resolve`] builds it from the AST, and tests and benchmarks build it
//! directly. Zone `0` is always `world`.
//!
//! [`Policy::canonicalize`] puts a policy in its canonical order (zones by
//! name, rules by content), so that moving statements around in the source
//! never changes a zone id, a rule id, a decision or the image.

use std::collections::BTreeSet;
use std::fmt;

use ipnetwork::IpNetwork;
use serde::Serialize;
use wardgate_common::WORLD_ZONE;

/// Index of a zone in [`Policy::zones`]; `0` is `world`.
pub type ZoneId = u32;
/// The id of `world`.
pub const WORLD: ZoneId = WORLD_ZONE;
/// Index of a rule in [`Policy::rules`] (after canonicalization).
pub type RuleId = u32;

/// Where something was written: file, 1-based line and column, byte range.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Byte offset of the first character in the file.
    #[serde(skip)]
    pub offset: usize,
    /// Length in bytes.
    #[serde(skip)]
    pub len: usize,
    /// The file's id in the loaded policy's source map.
    #[serde(skip)]
    pub file_id: u32,
}

impl Origin {
    #[must_use]
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        Self {
            file: file.into(),
            line,
            column,
            offset: 0,
            len: 0,
            file_id: 0,
        }
    }

    /// The span for diagnostics.
    #[must_use]
    pub fn span(&self) -> wardgate_lang::Span {
        wardgate_lang::Span::new(
            wardgate_lang::FileId(self.file_id),
            self.offset,
            self.offset + self.len,
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One prefix of a zone, with where it was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixDecl {
    pub net: IpNetwork,
    pub origin: Origin,
}

/// A zone (or `world`, id 0, which has no prefixes and no origin, and is
/// always `isolated`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub prefixes: Vec<PrefixDecl>,
    pub tags: BTreeSet<String>,
    pub monitor: bool,
    pub isolated: bool,
    pub criticality: Option<Criticality>,
    pub description: Option<String>,
    /// `conntrack-limit N`: at most N established tracked connections
    /// started from this zone (`None`: the pool, or the reserve for a
    /// life-critical zone; `docs/language.md`).
    pub conntrack_limit: Option<u32>,
    /// The `zone` statement; `None` for `world`.
    pub origin: Option<Origin>,
    /// Inventory devices put addresses into this zone.
    pub has_inventory: bool,
    /// How many inventory devices are in this zone.
    pub devices: usize,
    /// Networks and hosts written for this zone, counting those refused
    /// with an error (a prefix another zone declares first): an empty
    /// `prefixes` is then that error's consequence, not an empty zone.
    pub declared_addresses: usize,
}

impl Zone {
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Life-critical by `criticality life-critical` or by the tag `life-critical`.
    #[must_use]
    pub fn is_life_critical(&self) -> bool {
        self.criticality == Some(Criticality::LifeCritical) || self.tags.contains("life-critical")
    }

    #[must_use]
    pub fn is_medical(&self) -> bool {
        self.tags.contains("medical")
    }

    /// Guest-like: untrusted devices (by name or by tag `guest` / `untrusted`).
    #[must_use]
    pub fn is_guest_like(&self) -> bool {
        self.name.contains("guest")
            || self.tags.contains("guest")
            || self.tags.contains("untrusted")
    }

    /// `ZoneInfo::flags` for the datapath.
    #[must_use]
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if self.monitor {
            f |= wardgate_common::ZONE_MONITOR;
        }
        if self.isolated {
            f |= wardgate_common::ZONE_ISOLATED;
        }
        f
    }
}

/// One protocol and a range of destination ports (TCP, UDP, SCTP) or ICMP
/// types (ICMP, ICMPv6). `proto: None` is `any`: every protocol, every port.
/// Protocols without ports are always `0..=65535` (the datapath looks up 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceAtom {
    pub proto: Option<u8>,
    pub lo: u16,
    pub hi: u16,
}

impl ServiceAtom {
    pub const ANY: Self = Self {
        proto: None,
        lo: 0,
        hi: u16::MAX,
    };

    #[must_use]
    pub fn proto(proto: u8) -> Self {
        Self {
            proto: Some(proto),
            lo: 0,
            hi: u16::MAX,
        }
    }

    #[must_use]
    pub fn ports(proto: u8, lo: u16, hi: u16) -> Self {
        Self {
            proto: Some(proto),
            lo,
            hi,
        }
    }

    /// Does this atom cover a packet of `proto` with port (or ICMP type) `port`?
    #[must_use]
    pub fn covers(&self, proto: u8, port: u16) -> bool {
        self.proto.is_none_or(|p| p == proto) && self.lo <= port && port <= self.hi
    }

    /// The whole protocol (or everything), not a port range.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.lo == 0 && self.hi == u16::MAX
    }
}

impl fmt::Display for ServiceAtom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(p) = self.proto else {
            return f.write_str("any");
        };
        let name = proto_name(p);
        match name {
            Some(n) if self.is_whole() => f.write_str(n),
            Some(n) if self.lo == self.hi => write!(f, "{n}/{}", self.lo),
            Some(n) => write!(f, "{n}/{}-{}", self.lo, self.hi),
            None => write!(f, "proto/{p}"),
        }
    }
}

/// The language's name of a protocol that has one.
#[must_use]
pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        1 => Some("icmp"),
        6 => Some("tcp"),
        17 => Some("udp"),
        58 => Some("icmpv6"),
        132 => Some("sctp"),
        _ => None,
    }
}

/// Zone criticality, rule action and requirement kind: the language's own
/// types, one of each for the whole project.
pub use wardgate_lang::ast::{Action, Criticality, RequireKind};

/// A calendar date (UTC), as in `until 2027-01-31`: the language's own
/// calendar, one for the whole project.
pub use wardgate_lang::date::Date;

/// An `allow` or `deny` statement with its selectors resolved to zone sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// Sorted, deduplicated.
    pub src: Vec<ZoneId>,
    /// Sorted, deduplicated.
    pub dst: Vec<ZoneId>,
    pub services: Vec<ServiceAtom>,
    /// The selectors as written (`tag:medical, lab`), for labels.
    pub src_label: String,
    pub dst_label: String,
    /// The services as written (`dicom`, `tcp/443`), for labels.
    pub service_labels: Vec<String>,
    pub until: Option<Date>,
    /// The quoted reason, if any.
    pub comment: Option<String>,
    /// The statement as written, on one line (rule metadata, logs, query).
    pub text: String,
    pub origin: Origin,
}

impl Rule {
    /// In force on `today` (`until` is inclusive); every rule is in force when
    /// no date is given.
    #[must_use]
    pub fn in_force(&self, today: Option<Date>) -> bool {
        match (self.until, today) {
            (Some(until), Some(today)) => today <= until,
            _ => true,
        }
    }

    /// Does this rule cover `(src, dst, proto, port)`?
    #[must_use]
    pub fn covers(&self, src: ZoneId, dst: ZoneId, proto: u8, port: u16) -> bool {
        self.src.binary_search(&src).is_ok()
            && self.dst.binary_search(&dst).is_ok()
            && self.services.iter().any(|a| a.covers(proto, port))
    }
}

/// `require no-flow A -> B` or `require no-path A -> B`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub kind: RequireKind,
    pub from: Vec<ZoneId>,
    pub to: Vec<ZoneId>,
    /// The statement as written.
    pub text: String,
    pub origin: Origin,
}

/// A `service NAME = ...` definition and how often it is referred to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDef {
    pub name: String,
    pub origin: Origin,
    pub uses: u32,
    /// What it expands to, sorted (empty when it cannot be expanded: the
    /// language crate reports why).
    pub atoms: Vec<ServiceAtom>,
}

/// The resolved policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `zones[0]` is `world`.
    pub zones: Vec<Zone>,
    pub rules: Vec<Rule>,
    pub requirements: Vec<Requirement>,
    pub services: Vec<ServiceDef>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy {
    /// An empty policy: only `world`.
    #[must_use]
    pub fn new() -> Self {
        Self {
            zones: vec![Zone {
                // `world` is isolated: traffic between two addresses that no
                // zone holds passes only if a rule allows `world -> world`.
                isolated: true,
                ..Zone::new("world")
            }],
            rules: Vec::new(),
            requirements: Vec::new(),
            services: Vec::new(),
        }
    }

    /// Adds a zone and returns its id (before canonicalization).
    pub fn add_zone(&mut self, zone: Zone) -> ZoneId {
        self.zones.push(zone);
        u32::try_from(self.zones.len() - 1).expect("zone count fits u32")
    }

    #[must_use]
    pub fn zone(&self, id: ZoneId) -> &Zone {
        &self.zones[id as usize]
    }

    #[must_use]
    pub fn zone_id(&self, name: &str) -> Option<ZoneId> {
        self.zones
            .iter()
            .position(|z| z.name == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    #[must_use]
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id as usize]
    }

    /// Canonical order: `world` first then zones by name; zone sets sorted;
    /// rules by content (then by origin); requirements and services by origin.
    /// Ids then depend on what the policy says, never on statement order.
    pub fn canonicalize(&mut self) {
        let n = self.zones.len();
        let mut order: Vec<usize> = (1..n).collect();
        order.sort_by(|&a, &b| self.zones[a].name.cmp(&self.zones[b].name));
        order.insert(0, WORLD_ZONE as usize);
        let mut remap = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            remap[old] = u32::try_from(new).expect("zone count fits u32");
        }
        let mut old: Vec<Option<Zone>> = std::mem::take(&mut self.zones)
            .into_iter()
            .map(Some)
            .collect();
        self.zones = order
            .iter()
            .map(|&o| old[o].take().expect("each zone once"))
            .collect();
        let fix = |set: &mut Vec<ZoneId>| {
            for z in set.iter_mut() {
                *z = remap[*z as usize];
            }
            set.sort_unstable();
            set.dedup();
        };
        for z in &mut self.zones {
            z.prefixes
                .sort_by(|a, b| (&a.origin, a.net).cmp(&(&b.origin, b.net)));
        }
        for r in &mut self.rules {
            fix(&mut r.src);
            fix(&mut r.dst);
        }
        for q in &mut self.requirements {
            fix(&mut q.from);
            fix(&mut q.to);
        }
        self.rules.sort_by(|a, b| {
            (
                &a.src,
                &a.dst,
                &a.services,
                a.action,
                a.until,
                &a.comment,
                &a.text,
                &a.origin,
            )
                .cmp(&(
                    &b.src,
                    &b.dst,
                    &b.services,
                    b.action,
                    b.until,
                    &b.comment,
                    &b.text,
                    &b.origin,
                ))
        });
        self.requirements
            .sort_by(|a, b| (&a.origin, &a.text).cmp(&(&b.origin, &b.text)));
        self.services
            .sort_by(|a, b| (&a.origin, &a.name).cmp(&(&b.origin, &b.name)));
    }

    /// Zone names of a set, comma-separated.
    #[must_use]
    pub fn names(&self, set: &[ZoneId]) -> String {
        set.iter()
            .map(|&z| self.zone(z).name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_display_like_the_language() {
        assert_eq!(ServiceAtom::ports(6, 443, 443).to_string(), "tcp/443");
        assert_eq!(
            ServiceAtom::ports(17, 1000, 2000).to_string(),
            "udp/1000-2000"
        );
        assert_eq!(ServiceAtom::proto(6).to_string(), "tcp");
        assert_eq!(ServiceAtom::proto(50).to_string(), "proto/50");
        assert_eq!(ServiceAtom::ANY.to_string(), "any");
    }
}
