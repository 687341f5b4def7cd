//! Observations to `allow` rules: one per (source zone, destination zone)
//! pair with traffic the policy does not allow (or allows only through
//! monitor mode), with merged, named services and the evidence.
//!
//! Never proposed: ephemeral client ports, broadcast and multicast
//! destinations, flows already allowed, intra-zone flows of zones that are
//! not isolated, flows an explicit `deny` drops (an allow would not change
//! that). Flagged instead of proposed: flows between `world` and a zone
//! tagged `medical`, private-range addresses that fall in `world` (unknown
//! devices: declare a zone), and rules that would break a `require` (the
//! caller proves them with [`crate::mud::check::withhold`], the same proofs
//! as `check`). Services are named from the policy's own definitions, then
//! from the [`catalog`](super::catalog), else written as `tcp/N`; a name is
//! never used where it would allow more than was seen, except the policy's
//! own service definitions, which are the site's vocabulary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::catalog::{self, Entry};
use super::{FlowKey, Observations, Seconds, proto_text};
use crate::eval::{Packet, Verdict, decide};
use crate::image::PolicyImage;
use crate::model::{Policy, WORLD, ZoneId};

/// Ports at or above this are ephemeral (Linux's default range starts at
/// 32768, IANA's at 49152) unless a service names them.
pub const EPHEMERAL: u16 = 32768;

/// Options of a suggestion run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A service seen in fewer connections for a pair is not proposed.
    pub min_connections: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { min_connections: 1 }
    }
}

/// What was seen of one suggestion or flag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub connections: u64,
    pub sources: usize,
    pub destinations: usize,
    /// RFC 3339.
    pub first_seen: String,
    pub last_seen: String,
    pub days_seen: usize,
}

impl Evidence {
    /// `120 connections, 3 sources, 1 destination, 2026-01-05 to 2026-01-07 (3 days)`.
    #[must_use]
    pub fn text(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let days = plural(self.days_seen, "day");
        let (a, b) = (
            &self.first_seen[..10.min(self.first_seen.len())],
            &self.last_seen[..10.min(self.last_seen.len())],
        );
        let span = if a == b {
            a.to_owned()
        } else {
            format!("{a} to {b}")
        };
        format!(
            "{} connection{}, {}, {}, {span} ({days})",
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            plural(self.sources, "source"),
            plural(self.destinations, "destination"),
        )
    }
}

/// Evidence being gathered.
#[derive(Clone, Debug, Default)]
struct Tally {
    connections: u64,
    sources: BTreeSet<IpAddr>,
    destinations: BTreeSet<IpAddr>,
    first: Option<Seconds>,
    last: Option<Seconds>,
    days: BTreeSet<i32>,
    audited: bool,
}

impl Tally {
    fn add(&mut self, key: &FlowKey, s: &super::FlowStats) {
        self.connections = self.connections.saturating_add(s.connections);
        self.sources.insert(key.src);
        self.destinations.insert(key.dst);
        self.first = Some(self.first.map_or(s.first, |f| f.min(s.first)));
        self.last = Some(self.last.map_or(s.last, |l| l.max(s.last)));
        self.days.extend(s.days.iter().copied());
    }

    fn merge(&mut self, o: &Tally) {
        self.connections = self.connections.saturating_add(o.connections);
        self.sources.extend(o.sources.iter().copied());
        self.destinations.extend(o.destinations.iter().copied());
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = self.last.max(o.last);
        self.days.extend(o.days.iter().copied());
        self.audited |= o.audited;
    }

    fn evidence(&self) -> Evidence {
        Evidence {
            connections: self.connections,
            sources: self.sources.len(),
            destinations: self.destinations.len(),
            first_seen: self.first.map(super::rfc3339).unwrap_or_default(),
            last_seen: self.last.map(super::rfc3339).unwrap_or_default(),
            days_seen: self.days.len(),
        }
    }
}

/// A service in a suggested rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceUse {
    /// As written in the rule: a service name or an atom (`tcp/8000`).
    pub text: String,
    /// Where the name comes from: `policy`, `catalog` or `none`.
    pub source: &'static str,
    /// The observed `proto/port` atoms it stands for.
    pub observed: Vec<String>,
    pub evidence: Evidence,
}

/// One suggested rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub src_zone: String,
    pub dst_zone: String,
    /// `allow SRC -> DST : SERVICES`.
    pub rule: String,
    pub services: Vec<ServiceUse>,
    pub evidence: Evidence,
    /// The traffic passes today only because a zone is in monitor mode.
    pub audited: bool,
    /// The rule with every service written as atoms (what is proved).
    #[serde(skip)]
    pub plain_rule: String,
}

/// A catalog service the suggestions define.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewService {
    pub name: String,
    pub atoms: Vec<String>,
    pub description: String,
}

/// A flow not proposed and worth a reviewer's attention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flagged {
    pub src_zone: String,
    pub dst_zone: String,
    /// The services seen, as atoms.
    pub services: Vec<String>,
    pub reason: String,
    pub evidence: Evidence,
}

/// Addresses in private ranges that no zone holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnknownDevices {
    /// The /24 (IPv4) or /64 (IPv6) they fall in.
    pub network: String,
    pub addresses: usize,
    pub connections: u64,
    /// A `zone` statement to start from.
    pub declare: String,
}

/// Flows not proposed, by reason (number of flow keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub already_allowed: u64,
    pub intra_zone: u64,
    pub ephemeral_port: u64,
    pub broadcast_or_multicast: u64,
    pub denied_by_rule: u64,
    pub below_min_connections: u64,
    pub malformed: u64,
}

/// Everything `suggest` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: u64,
    pub flow_keys: usize,
    pub first_seen: String,
    pub last_seen: String,
    pub new_services: Vec<NewService>,
    pub suggestions: Vec<Suggestion>,
    pub flagged: Vec<Flagged>,
    pub unknown_devices: Vec<UnknownDevices>,
    pub skipped: Skipped,
}

/// Private, shared, link-local and unique-local ranges: devices of the site.
#[must_use]
pub fn is_private(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

fn is_broadcast_or_multicast(policy: &Policy, a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            if v4.is_multicast() || v4.is_broadcast() {
                return true;
            }
            // The directed broadcast of a declared network.
            let x = u32::from(v4);
            policy
                .zones
                .iter()
                .flat_map(|z| &z.prefixes)
                .any(|p| match p.net {
                    ipnetwork::IpNetwork::V4(n) if n.prefix() <= 30 => {
                        u32::from(n.broadcast()) == x
                    }
                    _ => false,
                })
        }
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// The /24 or /64 of an address.
fn network_of(a: IpAddr) -> (String, String) {
    match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                format!("{}.{}.{}.0/24", o[0], o[1], o[2]),
                format!("unknown-{}-{}-{}", o[0], o[1], o[2]),
            )
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            (
                format!("{net}/64"),
                format!("unknown-{:x}-{:x}-{:x}-{:x}", s[0], s[1], s[2], s[3]),
            )
        }
    }
}

/// An atom as the language writes it.
#[must_use]
pub fn atom_text(proto: u8, port: u16) -> String {
    match (proto, port) {
        (1 | 58, 8 | 128) if (proto == 1) == (port == 8) => {
            format!("{}/echo-request", proto_text(proto))
        }
        (p, port) if super::has_port(p) => format!("{}/{port}", proto_text(p)),
        (p, _) => crate::model::ServiceAtom::proto(p).to_string(),
    }
}

/// `(protocol, port or ICMP type)`.
type Atom = (u8, u16);
/// Flows flagged for one reason per zone pair: the atoms seen and the evidence.
type Flags = BTreeMap<(ZoneId, ZoneId, String), (BTreeSet<Atom>, Tally)>;
/// Catalog entries in use and the atoms of each that were seen.
type CatalogSeen = BTreeMap<&'static str, (&'static Entry, BTreeSet<Atom>)>;
/// A pair's services by the name they get: name source, atoms, evidence.
type Groups = BTreeMap<(u8, String), (&'static str, Vec<Atom>, Tally)>;

/// How one observed atom is named.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Name {
    Policy(String),
    Catalog(&'static Entry),
    Plain,
}

/// Builds the report; `withhold` proves the candidate rules (full `allow`
/// statements with plain atoms) against the site's requirements and returns
/// per rule `None` or why it is withheld.
///
/// # Errors
/// Whatever `withhold` returns.
pub fn suggest(
    policy: &Policy,
    image: &PolicyImage,
    obs: &Observations,
    settings: Settings,
    withhold: impl FnOnce(&[String]) -> Result<Vec<Option<String>>, String>,
) -> Result<Report, String> {
    let mut report = Report {
        records: obs.records,
        flow_keys: obs.flows.len(),
        ..Report::default()
    };
    let zname = |z: ZoneId| policy.zone(z).name.clone();
    // (src zone, dst zone) -> (proto, port) -> tally
    let mut pairs: BTreeMap<(ZoneId, ZoneId), BTreeMap<(u8, u16), Tally>> = BTreeMap::new();
    // (src zone, dst zone, reason) -> (proto, port) set + tally
    let mut flags: Flags = BTreeMap::new();
    let mut unknown: BTreeMap<(String, String), (BTreeSet<IpAddr>, u64)> = BTreeMap::new();
    let (mut first, mut last): (Option<Seconds>, Option<Seconds>) = (None, None);

    let mut keys: Vec<(&FlowKey, &super::FlowStats)> = obs.flows.iter().collect();
    keys.sort_unstable_by_key(|(k, _)| **k);
    for (key, stats) in keys {
        first = Some(first.map_or(stats.first, |f| f.min(stats.first)));
        last = Some(last.map_or(stats.last, |l| l.max(stats.last)));
        let sk = &mut report.skipped;
        if is_broadcast_or_multicast(policy, key.dst) {
            sk.broadcast_or_multicast += 1;
            continue;
        }
        let d = decide(
            image,
            &Packet {
                src: key.src,
                dst: key.dst,
                proto: key.proto,
                port: key.port,
            },
        );
        if d.malformed {
            sk.malformed += 1;
            continue;
        }
        let (s, t) = (d.src_zone, d.dst_zone);
        if d.verdict == Verdict::Allow {
            if s == t && !policy.zone(s).isolated {
                sk.intra_zone += 1;
            } else {
                sk.already_allowed += 1;
            }
            continue;
        }
        if d.verdict == Verdict::Deny
            && let Some(r) = d.rule
        {
            sk.denied_by_rule += 1;
            let rule = policy.rule(r);
            let reason = format!(
                "dropped by `{}` ({}): an allow would not change that",
                rule.text, rule.origin
            );
            let f = flags.entry((s, t, reason)).or_default();
            f.0.insert((key.proto, key.port));
            f.1.add(key, stats);
            continue;
        }
        if matches!(key.proto, 6 | 17 | 132)
            && key.port >= EPHEMERAL
            && !catalog::is_well_known(key.proto, key.port)
            && !policy_names(policy, key.proto, key.port)
        {
            sk.ephemeral_port += 1;
            continue;
        }
        let mut unknown_side = false;
        for (zone, addr) in [(s, key.src), (t, key.dst)] {
            if zone == WORLD && is_private(addr) {
                let u = unknown.entry(network_of(addr)).or_default();
                u.0.insert(addr);
                u.1 = u.1.saturating_add(stats.connections);
                unknown_side = true;
            }
        }
        if unknown_side {
            continue;
        }
        let medical = |z: ZoneId| policy.zone(z).is_medical();
        if (s == WORLD && medical(t)) || (t == WORLD && medical(s)) {
            let m = if s == WORLD { t } else { s };
            let reason = format!(
                "between `world` and `{}`, a zone tagged medical: medical devices and the internet are a review of their own",
                zname(m)
            );
            let f = flags.entry((s, t, reason)).or_default();
            f.0.insert((key.proto, key.port));
            f.1.add(key, stats);
            continue;
        }
        let tally = pairs
            .entry((s, t))
            .or_default()
            .entry((key.proto, key.port))
            .or_default();
        tally.add(key, stats);
        tally.audited |= d.verdict == Verdict::Audit;
    }
    report.first_seen = first.map(super::rfc3339).unwrap_or_default();
    report.last_seen = last.map(super::rfc3339).unwrap_or_default();

    // Below the threshold.
    for services in pairs.values_mut() {
        let before = services.len();
        services.retain(|_, t| t.connections >= settings.min_connections);
        report.skipped.below_min_connections += (before - services.len()) as u64;
    }
    pairs.retain(|_, s| !s.is_empty());

    // Names: the policy's, then the catalog's (one definition for the whole
    // fragment, of the atoms seen; a pair uses it only if it saw them all).
    let taken: BTreeSet<&str> = policy.services.iter().map(|s| s.name.as_str()).collect();
    let mut catalog_seen: CatalogSeen = BTreeMap::new();
    let mut named: BTreeMap<(u8, u16), Name> = BTreeMap::new();
    for services in pairs.values() {
        for &(proto, port) in services.keys() {
            let name = named.entry((proto, port)).or_insert_with(|| {
                if let Some(n) = policy_name(policy, proto, port) {
                    Name::Policy(n)
                } else if let Some(e) =
                    catalog::lookup(proto, port).find(|e| !taken.contains(e.name))
                {
                    Name::Catalog(e)
                } else {
                    Name::Plain
                }
            });
            if let Name::Catalog(e) = name {
                catalog_seen
                    .entry(e.name)
                    .or_insert((e, BTreeSet::new()))
                    .1
                    .insert((proto, port));
            }
        }
    }

    let mut used_catalog: BTreeSet<&'static str> = BTreeSet::new();
    for ((s, t), services) in &pairs {
        // Group atoms by the name they get.
        let mut groups: Groups = BTreeMap::new();
        let by_name = |n: &Name| -> Option<(String, &'static str)> {
            match n {
                Name::Policy(p) => Some((p.clone(), "policy")),
                Name::Catalog(e) => Some((e.name.to_owned(), "catalog")),
                Name::Plain => None,
            }
        };
        for (&(proto, port), tally) in services {
            let n = &named[&(proto, port)];
            let (text, source) = by_name(n).unwrap_or_else(|| (atom_text(proto, port), "none"));
            // Named groups sort first, then plain atoms by protocol and port.
            let order = u8::from(source == "none");
            let g = groups
                .entry((order, text))
                .or_insert((source, Vec::new(), Tally::default()));
            g.1.push((proto, port));
            g.2.merge(tally);
        }
        let mut uses = Vec::new();
        let mut all = Tally::default();
        for ((_, text), (source, atoms, tally)) in groups {
            all.merge(&tally);
            // A catalog name whose definition would cover atoms this pair
            // did not see is written as those atoms instead.
            let seen_here: BTreeSet<(u8, u16)> = atoms.iter().copied().collect();
            let split = source == "catalog" && catalog_seen[text.as_str()].1 != seen_here;
            if split {
                for &(proto, port) in &atoms {
                    let one = &services[&(proto, port)];
                    uses.push(ServiceUse {
                        text: atom_text(proto, port),
                        source: "none",
                        observed: vec![atom_text(proto, port)],
                        evidence: one.evidence(),
                    });
                }
                continue;
            }
            if source == "catalog" {
                used_catalog.insert(catalog_seen[text.as_str()].0.name);
            }
            uses.push(ServiceUse {
                text,
                source,
                observed: atoms.iter().map(|&(p, n)| atom_text(p, n)).collect(),
                evidence: tally.evidence(),
            });
        }
        let (src, dst) = (zname(*s), zname(*t));
        let list: Vec<&str> = uses.iter().map(|u| u.text.as_str()).collect();
        let plain: Vec<String> = services.keys().map(|&(p, n)| atom_text(p, n)).collect();
        report.suggestions.push(Suggestion {
            rule: format!("allow {src} -> {dst} : {}", list.join(", ")),
            plain_rule: format!("allow {src} -> {dst} : {}", plain.join(", ")),
            src_zone: src,
            dst_zone: dst,
            services: uses,
            evidence: all.evidence(),
            audited: all.audited,
        });
    }
    for (name, (entry, seen)) in &catalog_seen {
        if used_catalog.contains(name) {
            report.new_services.push(NewService {
                name: (*name).to_owned(),
                atoms: seen.iter().map(|&(p, n)| atom_text(p, n)).collect(),
                description: entry.what.to_owned(),
            });
        }
    }

    // Proofs: a rule that would break a requirement is flagged instead.
    let candidates: Vec<String> = report
        .suggestions
        .iter()
        .map(|s| s.plain_rule.clone())
        .collect();
    let verdicts = if candidates.is_empty() {
        Vec::new()
    } else {
        withhold(&candidates)?
    };
    let mut kept = Vec::new();
    for (s, v) in std::mem::take(&mut report.suggestions)
        .into_iter()
        .zip(verdicts)
    {
        match v {
            Some(why) => report.flagged.push(Flagged {
                src_zone: s.src_zone,
                dst_zone: s.dst_zone,
                services: s.services.iter().flat_map(|u| u.observed.clone()).collect(),
                reason: why.replace("(imported)", "(suggested)"),
                evidence: s.evidence,
            }),
            None => kept.push(s),
        }
    }
    report.suggestions = kept;
    // Catalog services only the withheld rules used are not defined.
    let used: BTreeSet<&str> = report
        .suggestions
        .iter()
        .flat_map(|s| {
            s.services
                .iter()
                .filter(|u| u.source == "catalog")
                .map(|u| u.text.as_str())
        })
        .collect();
    report
        .new_services
        .retain(|n| used.contains(n.name.as_str()));

    for ((s, t, reason), (atoms, tally)) in flags {
        report.flagged.push(Flagged {
            src_zone: zname(s),
            dst_zone: zname(t),
            services: atoms.iter().map(|&(p, n)| atom_text(p, n)).collect(),
            reason,
            evidence: tally.evidence(),
        });
    }
    for ((network, name), (addrs, connections)) in unknown {
        report.unknown_devices.push(UnknownDevices {
            declare: format!("zone {name} {{ networks {network} }}"),
            network,
            addresses: addrs.len(),
            connections,
        });
    }
    Ok(report)
}

/// The smallest policy service that covers `(proto, port)` with single
/// ports and types only (never a whole protocol or `any`).
fn policy_name(policy: &Policy, proto: u8, port: u16) -> Option<String> {
    policy
        .services
        .iter()
        .filter(|s| {
            !s.atoms.is_empty()
                && s.atoms
                    .iter()
                    .all(|a| a.proto.is_some() && !a.is_whole() && a.hi - a.lo < 64)
                && s.atoms.iter().any(|a| a.covers(proto, port))
        })
        .min_by_key(|s| {
            let width: u32 = s.atoms.iter().map(|a| u32::from(a.hi - a.lo) + 1).sum();
            (width, s.name.clone())
        })
        .map(|s| s.name.clone())
}

fn policy_names(policy: &Policy, proto: u8, port: u16) -> bool {
    policy_name(policy, proto, port).is_some()
}

/// The suggestions as a `.ward` fragment: new services, then one rule per
/// zone pair with its evidence as a comment; flags and unknown devices as
/// comments at the end.
#[must_use]
pub fn render_ward(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Suggested by `wardgate suggest` from {} records, {}.",
        r.records,
        days_text(&r.first_seen, &r.last_seen)
    );
    let _ = writeln!(
        out,
        "# Review each rule: it allows what was seen, not what is needed."
    );
    for s in &r.new_services {
        let _ = writeln!(out, "\n# {}", s.description);
        let _ = writeln!(out, "service {} = {}", s.name, s.atoms.join(", "));
    }
    for s in &r.suggestions {
        out.push('\n');
        let _ = writeln!(
            out,
            "# {}{}",
            s.evidence.text(),
            if s.audited {
                "; passes today only as audit (monitor mode)"
            } else {
                ""
            }
        );
        if s.services.len() > 1 {
            for u in &s.services {
                let _ = writeln!(out, "#   {}: {}", u.text, u.evidence.text());
            }
        }
        let _ = writeln!(out, "{}", s.rule);
    }
    if !r.flagged.is_empty() {
        let _ = writeln!(out, "\n# Flagged, not proposed:");
        for f in &r.flagged {
            let _ = writeln!(
                out,
                "#   {} -> {} : {}: {} ({})",
                f.src_zone,
                f.dst_zone,
                f.services.join(", "),
                f.reason,
                f.evidence.text()
            );
        }
    }
    if !r.unknown_devices.is_empty() {
        let _ = writeln!(
            out,
            "\n# Unknown devices: private addresses that no zone holds (they are in `world`):"
        );
        for u in &r.unknown_devices {
            let _ = writeln!(
                out,
                "#   {} ({} address{}, {} connections): declare a zone for them, for example `{}`",
                u.network,
                u.addresses,
                if u.addresses == 1 { "" } else { "es" },
                u.connections,
                u.declare
            );
        }
    }
    out
}

/// The report as Markdown, for a pull request description.
#[must_use]
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Suggested rules\n");
    let _ = writeln!(
        out,
        "From {} records ({} flow keys), {}.\n",
        r.records,
        r.flow_keys,
        days_text(&r.first_seen, &r.last_seen)
    );
    if r.suggestions.is_empty() {
        let _ = writeln!(out, "No rule to suggest.\n");
    } else {
        let _ = writeln!(
            out,
            "| rule | connections | sources | destinations | first seen | last seen | days |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|---|---:|");
        for s in &r.suggestions {
            let e = &s.evidence;
            let _ = writeln!(
                out,
                "| `{}`{} | {} | {} | {} | {} | {} | {} |",
                s.rule,
                if s.audited { " (audit today)" } else { "" },
                e.connections,
                e.sources,
                e.destinations,
                day_of(&e.first_seen),
                day_of(&e.last_seen),
                e.days_seen
            );
        }
        out.push('\n');
    }
    if !r.new_services.is_empty() {
        let _ = writeln!(out, "New services:\n");
        for s in &r.new_services {
            let _ = writeln!(
                out,
                "- `service {} = {}`: {}",
                s.name,
                s.atoms.join(", "),
                s.description
            );
        }
        out.push('\n');
    }
    if !r.flagged.is_empty() {
        let _ = writeln!(out, "### Flagged, not proposed\n");
        for f in &r.flagged {
            let _ = writeln!(
                out,
                "- `{} -> {} : {}`: {} ({})",
                f.src_zone,
                f.dst_zone,
                f.services.join(", "),
                f.reason,
                f.evidence.text()
            );
        }
        out.push('\n');
    }
    if !r.unknown_devices.is_empty() {
        let _ = writeln!(out, "### Unknown devices\n");
        for u in &r.unknown_devices {
            let _ = writeln!(
                out,
                "- {}: {} address{}, {} connections; declare a zone, for example `{}`",
                u.network,
                u.addresses,
                if u.addresses == 1 { "" } else { "es" },
                u.connections,
                u.declare
            );
        }
        out.push('\n');
    }
    let k = &r.skipped;
    let _ = writeln!(
        out,
        "Not proposed (flow keys): {} already allowed, {} intra-zone, {} ephemeral port, {} broadcast or multicast, {} dropped by a deny, {} below the connection threshold.",
        k.already_allowed,
        k.intra_zone,
        k.ephemeral_port,
        k.broadcast_or_multicast,
        k.denied_by_rule,
        k.below_min_connections
    );
    out
}

/// `2026-01-05 to 2026-01-07`, or one day.
fn days_text(first: &str, last: &str) -> String {
    let (a, b) = (day_of(first), day_of(last));
    if a == b {
        a.to_owned()
    } else {
        format!("{a} to {b}")
    }
}

fn day_of(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

/// The `.ward` text `--write` appends: services and rules, with their
/// evidence comments (flags stay out of the policy).
#[must_use]
pub fn write_fragment(r: &Report, today: &str) -> String {
    let mut clean = r.clone();
    clean.flagged.clear();
    clean.unknown_devices.clear();
    let body = render_ward(&clean);
    let mut out = format!("\n# --- Suggested {today} from observed traffic ---\n");
    for line in body.lines().skip(2) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::Path;

    use super::*;
    use crate::analysis::{Options, analyze};
    use crate::discover::FlowKey;

    const SITE: &str = r#"
service web = tcp/443
service dns = udp/53, tcp/53
zone imaging { networks 10.20.0.0/24  tags medical }
zone pacs    { networks 10.30.0.0/24 }
zone office  { networks 10.50.0.0/24 }
zone cams    { networks 10.60.0.0/24  isolated }
zone guest   { networks 192.168.100.0/24 }
allow imaging -> pacs : tcp/104
allow office -> pacs : web
deny imaging -> world : any
require no-flow guest -> tag:medical
"#;

    fn run(flows: &[(&str, &str, u8, u16, u64)]) -> Report {
        let loaded = wardgate_lang::parse_str("site.ward", SITE);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let analysis = analyze(&loaded, &Options::default());
        let image = analysis.image.expect("site checks");
        let mut obs = Observations::default();
        for (i, &(s, d, proto, port, n)) in flows.iter().enumerate() {
            let t = 1_767_600_000 + i64::try_from(i).unwrap() * 86_400;
            let key = FlowKey {
                src: s.parse().unwrap(),
                dst: d.parse().unwrap(),
                proto,
                port,
            };
            obs.add(key, t, t + 60, n, None);
        }
        suggest(
            &analysis.policy,
            &image,
            &obs,
            Settings::default(),
            |candidates| {
                crate::mud::check::withhold(
                    Path::new("site.ward"),
                    &mut |_p: &Path| -> io::Result<String> { Ok(SITE.to_owned()) },
                    candidates,
                    None,
                )
                .map_err(|e| e.to_string())
            },
        )
        .unwrap()
    }

    fn rules(r: &Report) -> Vec<&str> {
        r.suggestions.iter().map(|s| s.rule.as_str()).collect()
    }

    #[test]
    fn a_new_pair_is_suggested_with_merged_services_and_evidence() {
        let r = run(&[
            ("10.50.0.5", "10.20.0.7", 6, 22, 4),
            ("10.50.0.6", "10.20.0.7", 6, 8000, 2),
            ("10.50.0.6", "10.20.0.8", 6, 22, 1),
        ]);
        assert_eq!(rules(&r), ["allow office -> imaging : ssh, tcp/8000"]);
        let e = &r.suggestions[0].evidence;
        assert_eq!(
            (e.connections, e.sources, e.destinations, e.days_seen),
            (7, 2, 2, 3)
        );
        assert_eq!(r.new_services[0].name, "ssh");
        assert_eq!(r.new_services[0].atoms, ["tcp/22"]);
        let ward = render_ward(&r);
        assert!(
            ward.contains(
                "# 7 connections, 2 sources, 2 destinations, 2026-01-05 to 2026-01-07 (3 days)"
            ),
            "{ward}"
        );
        assert!(ward.contains("service ssh = tcp/22"), "{ward}");
    }

    #[test]
    fn ephemeral_ports_are_never_proposed() {
        let r = run(&[
            ("10.50.0.5", "10.30.0.7", 6, 51234, 9),
            ("10.50.0.5", "10.30.0.7", 17, 40000, 9),
        ]);
        assert!(r.suggestions.is_empty(), "{r:?}");
        assert_eq!(r.skipped.ephemeral_port, 2);
    }

    #[test]
    fn multicast_and_broadcast_destinations_are_never_proposed() {
        let r = run(&[
            ("10.50.0.5", "224.0.0.251", 17, 5353, 9),
            ("10.50.0.5", "255.255.255.255", 17, 67, 9),
            ("10.50.0.5", "10.30.0.255", 17, 137, 9),
            ("10.50.0.5", "ff02::fb", 17, 5353, 9),
        ]);
        assert!(r.suggestions.is_empty(), "{r:?}");
        assert_eq!(r.skipped.broadcast_or_multicast, 4);
    }

    #[test]
    fn flows_already_allowed_and_intra_zone_flows_are_never_proposed() {
        let r = run(&[
            ("10.20.0.5", "10.30.0.7", 6, 104, 9),
            ("10.50.0.5", "10.30.0.7", 6, 443, 9),
            ("10.50.0.5", "10.50.0.9", 6, 445, 9),
        ]);
        assert!(r.suggestions.is_empty(), "{r:?}");
        assert_eq!(r.skipped.already_allowed, 2);
        assert_eq!(r.skipped.intra_zone, 1);
    }

    #[test]
    fn intra_zone_flows_of_isolated_zones_are_proposed() {
        let r = run(&[("10.60.0.5", "10.60.0.9", 6, 554, 3)]);
        assert_eq!(rules(&r), ["allow cams -> cams : rtsp"]);
    }

    #[test]
    fn a_suggestion_that_would_break_a_requirement_is_flagged_with_the_chain() {
        let r = run(&[
            ("192.168.100.5", "10.20.0.7", 6, 443, 3),
            ("10.50.0.5", "10.20.0.7", 6, 443, 3),
        ]);
        assert_eq!(rules(&r), ["allow office -> imaging : web"]);
        assert_eq!(r.flagged.len(), 1);
        let f = &r.flagged[0];
        assert_eq!(
            (f.src_zone.as_str(), f.dst_zone.as_str()),
            ("guest", "imaging")
        );
        assert_eq!(
            f.reason,
            "would break `require no-flow guest -> tag:medical`: guest -> imaging (suggested)"
        );
    }

    #[test]
    fn world_and_medical_zones_are_flagged() {
        let r = run(&[("203.0.113.9", "10.20.0.7", 6, 443, 3)]);
        assert!(r.suggestions.is_empty());
        assert!(
            r.flagged[0].reason.contains("a zone tagged medical"),
            "{r:?}"
        );
    }

    #[test]
    fn private_addresses_in_world_are_unknown_devices_with_a_zone_to_declare() {
        let r = run(&[
            ("10.99.0.7", "10.30.0.7", 6, 443, 3),
            ("10.99.0.8", "10.30.0.7", 6, 443, 2),
        ]);
        assert!(r.suggestions.is_empty());
        let u = &r.unknown_devices[0];
        assert_eq!(
            (u.network.as_str(), u.addresses, u.connections),
            ("10.99.0.0/24", 2, 5)
        );
        assert_eq!(u.declare, "zone unknown-10-99-0 { networks 10.99.0.0/24 }");
    }

    #[test]
    fn flows_an_explicit_deny_drops_are_flagged_not_proposed() {
        let r = run(&[("10.20.0.5", "203.0.113.9", 6, 443, 3)]);
        assert!(r.suggestions.is_empty());
        assert_eq!(r.skipped.denied_by_rule, 1);
        assert!(
            r.flagged[0]
                .reason
                .starts_with("dropped by `deny imaging -> world : any`"),
            "{r:?}"
        );
    }

    #[test]
    fn a_catalog_name_never_covers_ports_the_pair_did_not_use() {
        // `dicom` is tcp/104 and tcp/11112: one pair saw both, one only 104.
        let r = run(&[
            ("10.50.0.5", "10.20.0.7", 6, 104, 1),
            ("10.50.0.5", "10.20.0.7", 6, 11112, 1),
            ("10.30.0.5", "10.20.0.7", 6, 11112, 1),
        ]);
        assert_eq!(
            rules(&r),
            [
                "allow office -> imaging : dicom",
                "allow pacs -> imaging : tcp/11112"
            ]
        );
        assert_eq!(r.new_services[0].atoms, ["tcp/104", "tcp/11112"]);
    }

    #[test]
    fn min_connections_drops_rare_services() {
        let loaded = wardgate_lang::parse_str("site.ward", SITE);
        let analysis = analyze(&loaded, &Options::default());
        let image = analysis.image.unwrap();
        let mut obs = Observations::default();
        let key = |port| FlowKey {
            src: "10.50.0.5".parse().unwrap(),
            dst: "10.20.0.7".parse().unwrap(),
            proto: 6,
            port,
        };
        obs.add(key(22), 0, 0, 5, None);
        obs.add(key(23), 0, 0, 1, None);
        let r = suggest(
            &analysis.policy,
            &image,
            &obs,
            Settings { min_connections: 2 },
            |c| Ok(vec![None; c.len()]),
        )
        .unwrap();
        assert_eq!(rules(&r), ["allow office -> imaging : ssh"]);
        assert_eq!(r.skipped.below_min_connections, 1);
    }
}
