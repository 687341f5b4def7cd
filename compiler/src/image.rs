//! The policy image: what `wardgate compile` writes and the agent loads.
//!
//! The format is documented in `docs/image.md`; keep the two in step. In
//! short: one header line `wardgate-image 1 sha256:<hex>` and then a JSON
//! body, one table entry per line. The hash is the SHA-256 of the body bytes
//! exactly as stored, so `tail -n +2 IMAGE | sha256sum` verifies it.
//! [`PolicyImage::from_bytes`] checks the header, the hash and every
//! invariant the datapath relies on, and rejects anything else with a clear
//! error: a corrupt image never loads.
//!
//! The tables use the `wardgate-common` types, so the agent writes them into
//! maps as they are: [`PolicyImage::zone_infos`], [`PolicyImage::lpm_entries`],
//! [`PolicyImage::pairs`], [`PolicyImage::intervals`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wardgate_common::{
    Interval, PROTO_ANY, PairKey, RULE_NONE, Span, VERDICT_ALLOW, VERDICT_DENY, WORLD_ZONE,
    ZONE_INTRA_TABLE, ZONE_ISOLATED, ZONE_MONITOR, ZoneInfo,
};

use crate::capacity::{self, CapacityError, Counts};
use crate::lower::Lowered;
use crate::model::{Action, Policy, RuleId, ZoneId};
use crate::prefix::{Key, Lpm, v4_guard};

/// First word of the header line.
pub const IMAGE_MAGIC: &str = "wardgate-image";
/// Format version; bumped on any incompatible change.
pub const IMAGE_VERSION: u32 = 2;

/// A zone as the image records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageZone {
    pub id: ZoneId,
    pub name: String,
    /// `ZONE_MONITOR | ZONE_ISOLATED | ZONE_INTRA_TABLE` bits, as in
    /// `ZoneInfo::flags`.
    pub flags: u32,
    pub criticality: Option<String>,
    pub tags: Vec<String>,
    /// `conntrack-limit`, if the zone declares one. Left out of the JSON
    /// when absent, so images of policies without limits are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_limit: Option<u32>,
}

impl ImageZone {
    /// Life-critical by `criticality life-critical` or by the tag
    /// `life-critical` (as the model says): without a `conntrack-limit`, the
    /// zone draws on the connection table's reserve.
    #[must_use]
    pub fn is_life_critical(&self) -> bool {
        self.criticality.as_deref() == Some("life-critical")
            || self.tags.iter().any(|t| t == "life-critical")
    }
}

/// Rule metadata: what a rule id means, for logs, metrics and `query`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMeta {
    pub id: RuleId,
    pub action: Action,
    pub file: String,
    pub line: u32,
    pub text: String,
    /// The rule's source and destination selectors as written
    /// (`tag:medical, lab`): metric labels.
    pub from: String,
    pub to: String,
    /// Last day in force (`until`), if any.
    pub until: Option<String>,
    /// Lowered into the tables (in force on the compile date).
    pub active: bool,
}

/// The lowered, loadable policy.
#[derive(Clone, Debug)]
pub struct PolicyImage {
    zones: Vec<ImageZone>,
    prefixes: Vec<(Key, ZoneId)>,
    pairs: Vec<(PairKey, Span)>,
    intervals: Vec<Interval>,
    rules: Vec<RuleMeta>,
    body: String,
    hash: String,
    lpm: Lpm,
}

impl PartialEq for PolicyImage {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body
    }
}

/// Why an image could not be built or loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    #[error("not a wardgate policy image (the first line must start with `{IMAGE_MAGIC}`)")]
    NotAnImage,
    #[error("policy image version {0} is not supported (this build reads version {IMAGE_VERSION})")]
    Version(String),
    #[error(
        "policy image is corrupt: the content hash does not match (expected {expected}, found {found})"
    )]
    Hash { expected: String, found: String },
    #[error("policy image is corrupt: {0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ImageError> {
    Err(ImageError::Invalid(msg.into()))
}

/// The JSON body, as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    format: String,
    version: u32,
    zones: Vec<ImageZone>,
    /// `[prefix, zone id]`, sorted by key (address, then length).
    prefixes: Vec<(String, ZoneId)>,
    /// `[src zone, dst zone, proto, first interval, interval count]`, sorted.
    pairs: Vec<[u32; 5]>,
    /// `[lo, hi, verdict, rule]`.
    intervals: Vec<[u32; 4]>,
    rules: Vec<RuleMeta>,
}

impl PolicyImage {
    /// Builds the image of a lowered policy.
    ///
    /// # Errors
    /// [`ImageError::Capacity`] when a table does not fit the datapath's maps.
    pub fn build(policy: &Policy, lowered: &Lowered) -> Result<Self, ImageError> {
        let own_tables: std::collections::BTreeSet<ZoneId> = lowered
            .tables
            .keys()
            .filter(|k| k.src_zone == k.dst_zone)
            .map(|k| k.src_zone)
            .collect();
        let zones: Vec<ImageZone> = policy
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| ImageZone {
                id: u32::try_from(i).expect("zone count fits u32"),
                name: z.name.clone(),
                flags: z.flags()
                    | if own_tables.contains(&u32::try_from(i).expect("zone count fits u32")) {
                        ZONE_INTRA_TABLE
                    } else {
                        0
                    },
                criticality: z.criticality.map(|c| c.as_str().to_owned()),
                tags: z.tags.iter().cloned().collect(),
                conntrack_limit: z.conntrack_limit,
            })
            .collect();
        let prefixes = prefix_entries(policy);

        // Pairs whose tables are equal share one run of intervals.
        let mut runs: std::collections::HashMap<Run<'_>, Span> = std::collections::HashMap::new();
        let mut intervals: Vec<Interval> = Vec::new();
        let mut pairs = Vec::with_capacity(lowered.tables.len());
        for (key, table) in &lowered.tables {
            let span = *runs.entry(Run(table)).or_insert_with(|| {
                let span = Span {
                    first: u32::try_from(intervals.len()).unwrap_or(u32::MAX),
                    count: u32::try_from(table.len()).unwrap_or(u32::MAX),
                };
                intervals.extend_from_slice(table);
                span
            });
            pairs.push((*key, span));
        }
        let rules = policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleMeta {
                id: u32::try_from(i).expect("rule count fits u32"),
                action: r.action,
                file: r.origin.file.clone(),
                line: r.origin.line,
                text: r.text.clone(),
                from: r.src_label.clone(),
                to: r.dst_label.clone(),
                until: r.until.map(|d| d.to_string()),
                active: lowered.in_force.get(i).copied().unwrap_or(true),
            })
            .collect::<Vec<_>>();
        check_capacity(
            zones.len(),
            prefixes.len(),
            pairs.len(),
            intervals.len(),
            rules.len(),
        )?;
        Ok(Self::assemble(zones, prefixes, pairs, intervals, rules))
    }

    fn assemble(
        zones: Vec<ImageZone>,
        prefixes: Vec<(Key, ZoneId)>,
        pairs: Vec<(PairKey, Span)>,
        intervals: Vec<Interval>,
        rules: Vec<RuleMeta>,
    ) -> Self {
        let body = render_body(&zones, &prefixes, &pairs, &intervals, &rules);
        let hash = hex(&Sha256::digest(body.as_bytes()));
        let lpm = Lpm::new(prefixes.iter().copied());
        Self {
            zones,
            prefixes,
            pairs,
            intervals,
            rules,
            body,
            hash,
            lpm,
        }
    }

    /// The bytes of the image file.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{IMAGE_MAGIC} {IMAGE_VERSION} sha256:{}\n", self.hash).into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    /// Loads and validates an image file.
    ///
    /// # Errors
    /// Any [`ImageError`] but `Capacity`... and `Capacity` too, for an image
    /// that does not fit this build's maps.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ImageError> {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ImageError::NotAnImage)?;
        let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| ImageError::NotAnImage)?;
        let mut words = header.split(' ');
        if words.next() != Some(IMAGE_MAGIC) {
            return Err(ImageError::NotAnImage);
        }
        let version = words.next().unwrap_or("");
        if version != IMAGE_VERSION.to_string() {
            return Err(ImageError::Version(version.to_owned()));
        }
        let expected = words
            .next()
            .and_then(|h| h.strip_prefix("sha256:"))
            .filter(|h| h.len() == 64)
            .ok_or_else(|| {
                ImageError::Invalid("the header has no `sha256:` content hash".into())
            })?;
        if words.next().is_some() {
            return invalid("unexpected words after the content hash in the header");
        }
        let body_bytes = &bytes[nl + 1..];
        let found = hex(&Sha256::digest(body_bytes));
        if found != expected {
            return Err(ImageError::Hash {
                expected: expected.to_owned(),
                found,
            });
        }
        let body: Body =
            serde_json::from_slice(body_bytes).map_err(|e| ImageError::Invalid(e.to_string()))?;
        if body.format != IMAGE_MAGIC || body.version != IMAGE_VERSION {
            return invalid("the body's format or version does not match the header");
        }
        let image = Self::from_body(body)?;
        if image.body.as_bytes() != body_bytes {
            return invalid("the body is not in canonical form");
        }
        Ok(image)
    }

    fn from_body(body: Body) -> Result<Self, ImageError> {
        let Body {
            zones,
            prefixes,
            pairs,
            intervals,
            rules,
            ..
        } = body;
        check_capacity(
            zones.len(),
            prefixes.len(),
            pairs.len(),
            intervals.len(),
            rules.len(),
        )?;
        let nz = zones.len();
        if zones.first().is_none_or(|z| z.name != "world") {
            return invalid("zone 0 must be `world`");
        }
        if zones[0].flags & ZONE_ISOLATED == 0 {
            return invalid("zone `world` must be isolated");
        }
        let mut names = std::collections::HashSet::new();
        for (i, z) in zones.iter().enumerate() {
            if z.id as usize != i {
                return invalid(format!("zone `{}` has id {} at position {i}", z.name, z.id));
            }
            if z.conntrack_limit == Some(0) {
                return invalid(format!("zone `{}` has a conntrack limit of 0", z.name));
            }
            if !names.insert(z.name.as_str()) {
                return invalid(format!("zone `{}` appears twice", z.name));
            }
            if z.flags & !(ZONE_MONITOR | ZONE_ISOLATED | ZONE_INTRA_TABLE) != 0 {
                return invalid(format!(
                    "zone `{}` has unknown flags {:#x}",
                    z.name, z.flags
                ));
            }
        }
        let limits: u64 = zones
            .iter()
            .filter_map(|z| z.conntrack_limit)
            .map(u64::from)
            .sum();
        let max = crate::ctlimits::limitable(wardgate_common::maps::MAX_CONNECTIONS);
        if limits > u64::from(max) {
            return invalid(format!(
                "the zones' conntrack limits add up to {limits}, more than {max}"
            ));
        }
        let mut keys = Vec::with_capacity(prefixes.len());
        for (s, zone) in &prefixes {
            let net: ipnetwork::IpNetwork = s
                .parse()
                .map_err(|e| ImageError::Invalid(format!("prefix `{s}`: {e}")))?;
            let key = Key::of(net);
            if key.network().to_string() != *s {
                return invalid(format!("prefix `{s}` is not in canonical form"));
            }
            if *zone as usize >= nz {
                return invalid(format!(
                    "prefix `{s}` names zone {zone}, which does not exist"
                ));
            }
            if keys.last().is_some_and(|(k, _): &(Key, ZoneId)| *k >= key) {
                return invalid(format!("prefix `{s}` is out of order or repeated"));
            }
            keys.push((key, *zone));
        }
        let ivs: Vec<Interval> = intervals
            .iter()
            .map(|&[lo, hi, verdict, rule]| {
                let (Ok(lo), Ok(hi), Ok(verdict)) =
                    (u16::try_from(lo), u16::try_from(hi), u16::try_from(verdict))
                else {
                    return invalid("an interval has a port or verdict out of range");
                };
                Ok(Interval {
                    lo,
                    hi,
                    verdict,
                    dir: 0,
                    rule,
                })
            })
            .collect::<Result<_, _>>()?;
        for (i, r) in rules.iter().enumerate() {
            if r.id as usize != i {
                return invalid(format!("rule at position {i} has id {}", r.id));
            }
        }
        let mut prs: Vec<(PairKey, Span)> = Vec::with_capacity(pairs.len());
        for &[src_zone, dst_zone, proto, first, count] in &pairs {
            let key = PairKey {
                src_zone,
                dst_zone,
                proto,
            };
            if src_zone as usize >= nz || dst_zone as usize >= nz || proto > PROTO_ANY {
                return invalid(format!(
                    "pair {src_zone} -> {dst_zone} proto {proto} is out of range"
                ));
            }
            if prs.last().is_some_and(|(k, _)| *k >= key) {
                return invalid(format!(
                    "pair {src_zone} -> {dst_zone} proto {proto} is out of order or repeated"
                ));
            }
            let end = u64::from(first) + u64::from(count);
            if count == 0 || end > ivs.len() as u64 {
                return invalid(format!(
                    "pair {src_zone} -> {dst_zone} proto {proto} points outside the intervals"
                ));
            }
            let own = src_zone == dst_zone;
            if own && zones[src_zone as usize].flags & ZONE_INTRA_TABLE == 0 {
                return invalid(format!(
                    "pair {src_zone} -> {dst_zone} proto {proto}: the zone is not flagged as having tables of its own"
                ));
            }
            let open = own && zones[src_zone as usize].flags & ZONE_ISOLATED == 0;
            check_partition(&ivs[first as usize..end as usize], rules.len(), open).map_err(
                |m| {
                    ImageError::Invalid(format!("pair {src_zone} -> {dst_zone} proto {proto}: {m}"))
                },
            )?;
            prs.push((key, Span { first, count }));
        }
        for z in &zones {
            let has_own = prs
                .iter()
                .any(|(k, _)| k.src_zone == z.id && k.dst_zone == z.id);
            if z.flags & ZONE_INTRA_TABLE != 0 && !has_own {
                return invalid(format!(
                    "zone `{}` is flagged as having tables of its own and has none",
                    z.name
                ));
            }
        }
        Ok(Self::assemble(zones, keys, prs, ivs, rules))
    }

    /// SHA-256 of the body, lowercase hex.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    #[must_use]
    pub fn zones(&self) -> &[ImageZone] {
        &self.zones
    }

    #[must_use]
    pub fn zone_name(&self, id: ZoneId) -> &str {
        self.zones.get(id as usize).map_or("?", |z| z.name.as_str())
    }

    #[must_use]
    pub fn zone_by_name(&self, name: &str) -> Option<ZoneId> {
        self.zones
            .iter()
            .position(|z| z.name == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// `ZoneInfo` array entries, indexed by zone id.
    #[must_use]
    pub fn zone_infos(&self) -> Vec<ZoneInfo> {
        self.zones
            .iter()
            .map(|z| ZoneInfo {
                flags: z.flags,
                // The loader fills in the zone's run of the pair list.
                ..ZoneInfo::default()
            })
            .collect()
    }

    /// Prefix to zone, sorted by key.
    #[must_use]
    pub fn prefixes(&self) -> &[(Key, ZoneId)] {
        &self.prefixes
    }

    /// LPM trie entries: `(prefix length in key space, 16-byte key, zone id)`.
    pub fn lpm_entries(&self) -> impl Iterator<Item = (u32, [u8; 16], ZoneId)> + '_ {
        self.prefixes
            .iter()
            .map(|(k, z)| (u32::from(k.len), k.bytes(), *z))
    }

    /// Pair table entries, sorted by key.
    #[must_use]
    pub fn pairs(&self) -> &[(PairKey, Span)] {
        &self.pairs
    }

    /// The global interval array that spans index into.
    #[must_use]
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    #[must_use]
    pub fn rules(&self) -> &[RuleMeta] {
        &self.rules
    }

    #[must_use]
    pub fn rule(&self, id: RuleId) -> Option<&RuleMeta> {
        self.rules.get(id as usize)
    }

    /// The intervals of one table, if the pair map has that key.
    #[must_use]
    pub fn table(&self, key: PairKey) -> Option<&[Interval]> {
        let i = self.pairs.binary_search_by(|(k, _)| k.cmp(&key)).ok()?;
        let s = self.pairs[i].1;
        Some(&self.intervals[s.first as usize..(s.first + s.count) as usize])
    }

    /// Longest-prefix match of an address in key space; `world` if none.
    #[must_use]
    pub fn classify(&self, addr: u128) -> ZoneId {
        self.lpm.lookup(addr).unwrap_or(WORLD_ZONE)
    }
}

/// A table as a hash key (`Interval` is not `Hash`).
#[derive(PartialEq, Eq)]
struct Run<'a>(&'a [Interval]);

impl std::hash::Hash for Run<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for iv in self.0 {
            (iv.lo, iv.hi, iv.verdict, iv.rule).hash(state);
        }
    }
}

fn check_capacity(
    zones: usize,
    prefixes: usize,
    pairs: usize,
    intervals: usize,
    rules: usize,
) -> Result<(), ImageError> {
    capacity::check(Counts {
        zones,
        prefixes,
        pairs,
        intervals,
        rules,
    })?;
    Ok(())
}

/// A table must partition `0..=65535` with valid verdicts and rule ids. In
/// the own pair of a zone that is not isolated (`open`), ports no rule covers
/// allow (no default deny); elsewhere every allow names its rule.
fn check_partition(table: &[Interval], rules: usize, open: bool) -> Result<(), String> {
    let mut next = 0u32;
    for iv in table {
        if u32::from(iv.lo) != next || iv.hi < iv.lo {
            return Err(format!(
                "intervals do not partition the port space at {next}"
            ));
        }
        match iv.verdict {
            VERDICT_ALLOW if (iv.rule as usize) < rules || (open && iv.rule == RULE_NONE) => {}
            VERDICT_DENY if (iv.rule as usize) < rules || (!open && iv.rule == RULE_NONE) => {}
            _ => {
                return Err(format!(
                    "interval {}-{} has verdict {} and rule {}",
                    iv.lo, iv.hi, iv.verdict, iv.rule
                ));
            }
        }
        next = u32::from(iv.hi) + 1;
    }
    if next != 1 << 16 {
        return Err("intervals stop before port 65535".into());
    }
    Ok(())
}

/// Every zone prefix in key space, sorted, plus the IPv4 guard when an IPv6
/// prefix would otherwise hold IPv4 addresses (see [`crate::prefix`]).
/// Duplicates keep the lowest zone id (resolution reports them as errors).
#[must_use]
pub fn prefix_entries(policy: &Policy) -> Vec<(Key, ZoneId)> {
    let mut v: Vec<(Key, ZoneId)> = Vec::new();
    for (id, z) in policy.zones.iter().enumerate() {
        let id = u32::try_from(id).expect("zone count fits u32");
        v.extend(z.prefixes.iter().map(|p| (Key::of(p.net), id)));
    }
    v.sort_unstable();
    v.dedup_by_key(|e| e.0);
    let guard = v4_guard();
    let guard_needed = v
        .iter()
        .any(|(k, _)| k.len < guard.len && k.contains_key(guard));
    if guard_needed && v.binary_search_by_key(&guard, |e| e.0).is_err() {
        v.push((guard, WORLD_ZONE));
        v.sort_unstable();
    }
    v
}

fn render_body(
    zones: &[ImageZone],
    prefixes: &[(Key, ZoneId)],
    pairs: &[(PairKey, Span)],
    intervals: &[Interval],
    rules: &[RuleMeta],
) -> String {
    fn list<T>(out: &mut String, name: &str, items: &[T], last: bool, f: impl Fn(&T) -> String) {
        let _ = write!(out, "\"{name}\":[");
        for (i, it) in items.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&f(it));
        }
        out.push_str(if items.is_empty() { "]" } else { "\n]" });
        out.push_str(if last { "\n" } else { ",\n" });
    }
    let mut out = String::with_capacity(
        64 * (prefixes.len() + pairs.len() + intervals.len() + rules.len()) + 256,
    );
    let _ = writeln!(
        out,
        "{{\"format\":\"{IMAGE_MAGIC}\",\"version\":{IMAGE_VERSION},"
    );
    list(&mut out, "zones", zones, false, to_json);
    list(&mut out, "prefixes", prefixes, false, |(k, z)| {
        format!("[\"{}\",{z}]", k.network())
    });
    list(&mut out, "pairs", pairs, false, |(k, s)| {
        format!(
            "[{},{},{},{},{}]",
            k.src_zone, k.dst_zone, k.proto, s.first, s.count
        )
    });
    list(&mut out, "intervals", intervals, false, |iv| {
        format!("[{},{},{},{}]", iv.lo, iv.hi, iv.verdict, iv.rule)
    });
    list(&mut out, "rules", rules, true, to_json);
    out.push_str("}\n");
    out
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("image entries serialize")
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
