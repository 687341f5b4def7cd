//! Rule lowering: rules to per-(source zone, destination zone, protocol)
//! tables of disjoint intervals, the form the datapath searches.
//!
//! For every zone pair `(s, d)` that some rule in force names, and for every
//! protocol `p` a rule names for that pair, the table `(s, d, p)` partitions
//! `0..=65535` (destination port, or ICMP type) into sorted, disjoint
//! intervals. Each interval carries the verdict and the deciding rule: the
//! covering `deny` with the lowest id if any (deny wins), else the covering
//! `allow` with the lowest id, else default deny ([`RULE_NONE`]).
//!
//! A zone's own pair `(z, z)` when `z` is not `isolated` is the exception:
//! intra-zone traffic is allowed unless a `deny` covers it, so only deny rules
//! count, the pair is lowered only when one names it, and intervals that no
//! deny covers allow with [`RULE_NONE`]. The datapath allows intra-zone
//! traffic of such a zone without a lookup unless the zone has tables of its
//! own (`ZONE_INTRA_TABLE`, set by the image). Rules for `any` protocol count in every protocol's table of
//! their pairs and make one more table `(s, d, PROTO_ANY)`, which the datapath
//! consults for a protocol that has no table of its own.
//!
//! Each table is built by one sweep over the start and end points of the
//! covering rules, so lowering costs `O(k log k)` per table of `k` covering
//! service ranges, and a decision is one hash lookup and a binary search of at
//! most 17 steps whatever the number of rules.
//!
//! The same sweep records, per rule, what the lints need: whether an `allow`
//! opens anything at all (not fully cancelled by denies) and whether it is the
//! only `allow` somewhere (not redundant).

use std::collections::{BTreeMap, HashMap};

use wardgate_common::maps::MAX_PAIRS;
use wardgate_common::{Interval, PROTO_ANY, PairKey, RULE_NONE, VERDICT_ALLOW, VERDICT_DENY};

use crate::capacity::{CapacityError, too_many_pairs};
use crate::model::{Action, Date, Policy, RuleId, ZoneId};

/// The lowered rule tables and per-rule facts found on the way.
#[derive(Clone, Debug, Default)]
pub struct Lowered {
    /// `(src, dst, proto)` to its partition of `0..=65535`, sorted by key.
    pub tables: BTreeMap<PairKey, Vec<Interval>>,
    /// Per rule: in force on the date lowered for.
    pub in_force: Vec<bool>,
    /// Per rule: looked up by the datapath for at least one pair (not only
    /// intra-zone pairs of non-isolated zones).
    pub considered: Vec<bool>,
    /// Per allow rule: it allows some packet, now or later (no deny that
    /// lasts at least as long covers all of it).
    pub effective: Vec<bool>,
    /// Per allow rule: for some packet it allows, no other allow that lasts
    /// at least as long covers it.
    pub needed: Vec<bool>,
    /// Zone pair to the rules in force that the datapath consults for it.
    pub by_pair: HashMap<(ZoneId, ZoneId), Vec<RuleId>>,
}

/// Lowers every rule in force on `today` (all rules when `None`).
///
/// # Errors
/// [`CapacityError`] when the rules name more zone pairs and
/// protocols than the datapath's pair map can hold.
pub fn lower(policy: &Policy, today: Option<Date>) -> Result<Lowered, CapacityError> {
    let n = policy.rules.len();
    let mut out = Lowered {
        tables: BTreeMap::new(),
        in_force: policy.rules.iter().map(|r| r.in_force(today)).collect(),
        considered: vec![false; n],
        effective: vec![false; n],
        needed: vec![false; n],
        by_pair: HashMap::new(),
    };

    // Group the rules by zone pair.
    let mut pairs: HashMap<(ZoneId, ZoneId), Vec<RuleId>> = HashMap::new();
    for (id, rule) in policy.rules.iter().enumerate() {
        if !out.in_force[id] {
            continue;
        }
        let id = u32::try_from(id).expect("rule count fits u32");
        for &s in &rule.src {
            for &d in &rule.dst {
                if rule.action == Action::Allow && open_intra(policy, s, d) {
                    continue;
                }
                out.considered[id as usize] = true;
                pairs.entry((s, d)).or_default().push(id);
                if pairs.len() > MAX_PAIRS as usize {
                    return Err(too_many_pairs(pairs.len()));
                }
            }
        }
    }
    let mut keys: Vec<_> = pairs.keys().copied().collect();
    keys.sort_unstable();

    let mut segs = Vec::new();
    for (s, d) in keys {
        let ids = &pairs[&(s, d)];
        let mut protos: Vec<u32> = Vec::new();
        let mut has_any = false;
        for &r in ids {
            for a in &policy.rule(r).services {
                match a.proto {
                    Some(p) => protos.push(u32::from(p)),
                    None => has_any = true,
                }
            }
        }
        protos.sort_unstable();
        protos.dedup();
        if has_any {
            protos.push(PROTO_ANY);
        }
        for proto in protos {
            segs.clear();
            for &r in ids {
                for a in &policy.rule(r).services {
                    let hit = match a.proto {
                        None => true,
                        Some(p) => u32::from(p) == proto,
                    };
                    if hit {
                        segs.push((u32::from(a.lo), u32::from(a.hi), r));
                    }
                }
            }
            let table = sweep(policy, &segs, open_intra(policy, s, d), &mut out);
            if out.tables.len() >= MAX_PAIRS as usize {
                return Err(too_many_pairs(out.tables.len()));
            }
            out.tables.insert(
                PairKey {
                    src_zone: s,
                    dst_zone: d,
                    proto,
                },
                table,
            );
        }
    }
    out.by_pair = pairs;
    Ok(out)
}

/// The own pair of a zone that is not isolated: intra-zone traffic is
/// allowed unless a deny covers it.
#[must_use]
pub fn open_intra(policy: &Policy, s: ZoneId, d: ZoneId) -> bool {
    s == d && !policy.zone(s).isolated
}

/// One table: the partition of `0..=65535` by the covering rules `segs`
/// (`lo`, `hi` inclusive, rule id). Where nothing covers a port the verdict
/// is default deny, or, for the own pair of a zone that is not isolated
/// (`intra`), allow with [`RULE_NONE`].
fn sweep(
    policy: &Policy,
    segs: &[(u32, u32, RuleId)],
    intra: bool,
    out: &mut Lowered,
) -> Vec<Interval> {
    const END: u32 = 1 << 16;
    // (position, 0 = end / 1 = start, rule): ends sort before starts.
    let mut events: Vec<(u32, u8, RuleId)> = Vec::with_capacity(segs.len() * 2);
    for &(lo, hi, r) in segs {
        events.push((lo, 1, r));
        events.push((hi + 1, 0, r));
    }
    events.sort_unstable();

    // Rule id to the number of its ranges covering the current position.
    let mut allows: BTreeMap<RuleId, u32> = BTreeMap::new();
    let mut denies: BTreeMap<RuleId, u32> = BTreeMap::new();
    let mut table: Vec<Interval> = Vec::new();
    let mut pos = 0u32;
    let mut i = 0;
    loop {
        while i < events.len() && events[i].0 == pos {
            let (_, start, r) = events[i];
            let set = match policy.rule(r).action {
                Action::Allow => &mut allows,
                Action::Deny => &mut denies,
            };
            if start == 1 {
                *set.entry(r).or_insert(0) += 1;
            } else if let Some(c) = set.get_mut(&r) {
                *c -= 1;
                if *c == 0 {
                    set.remove(&r);
                }
            }
            i += 1;
        }
        let next = events.get(i).map_or(END, |e| e.0);
        if next > pos {
            note_lifetimes(policy, &allows, &denies, out);
            let (verdict, rule) = if let Some((&r, _)) = denies.first_key_value() {
                (VERDICT_DENY, r)
            } else if let Some((&r, _)) = allows.first_key_value() {
                (VERDICT_ALLOW, r)
            } else if intra {
                (VERDICT_ALLOW, RULE_NONE)
            } else {
                (VERDICT_DENY, RULE_NONE)
            };
            #[expect(clippy::cast_possible_truncation, reason = "positions are below 2^16")]
            let (lo, hi) = (pos as u16, (next - 1) as u16);
            match table.last_mut() {
                Some(last) if last.verdict == verdict && last.rule == rule => last.hi = hi,
                _ => table.push(Interval {
                    lo,
                    hi,
                    verdict,
                    dir: 0,
                    rule,
                }),
            }
        }
        if next >= END {
            break;
        }
        pos = next;
    }
    table
}

/// The last day a rule is in force, as a number that orders them (a rule
/// without `until` lasts longest).
fn lasts(policy: &Policy, r: RuleId) -> i64 {
    policy
        .rule(r)
        .until
        .map_or(i64::MAX, Date::days_since_epoch)
}

/// The lint facts of one segment covered by `allows` and `denies`, with
/// `until` taken into account: covering rules count only if they last at
/// least as long as the rule they cover, so that a lint never advises to
/// remove a permanent rule because a temporary one covers it today.
/// - an allow is effective here unless a deny lasting at least as long
///   covers it;
/// - an effective allow is needed here unless another allow lasting at least
///   as long covers it.
fn note_lifetimes(
    policy: &Policy,
    allows: &BTreeMap<RuleId, u32>,
    denies: &BTreeMap<RuleId, u32>,
    out: &mut Lowered,
) {
    if allows.is_empty() {
        return;
    }
    let deny_lasts = denies.keys().map(|&d| lasts(policy, d)).max();
    // The longest-lasting allow, and how many allows last that long.
    let mut longest = (i64::MIN, 0usize);
    for &a in allows.keys() {
        let l = lasts(policy, a);
        if l > longest.0 {
            longest = (l, 1);
        } else if l == longest.0 {
            longest.1 += 1;
        }
    }
    for &a in allows.keys() {
        let l = lasts(policy, a);
        if deny_lasts.is_some_and(|d| d >= l) {
            continue;
        }
        out.effective[a as usize] = true;
        if l == longest.0 && longest.1 == 1 {
            out.needed[a as usize] = true;
        }
    }
}

/// The interval of a sorted partition holding `port` (binary search on `lo`,
/// as the datapath does it).
#[must_use]
pub fn find(table: &[Interval], port: u16) -> Option<&Interval> {
    let i = table.partition_point(|iv| iv.lo <= port);
    i.checked_sub(1)
        .map(|i| &table[i])
        .filter(|iv| port <= iv.hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn deny_wins_and_lowest_allow_decides() {
        let mut p = policy(&["a", "b"]);
        // After canonicalization rules sort by content; ids are checked by action.
        rule(&mut p, Action::Allow, &[1], &[2], &[tcp(100, 200)]);
        rule(&mut p, Action::Deny, &[1], &[2], &[tcp(150, 160)]);
        rule(&mut p, Action::Allow, &[1], &[2], &[any()]);
        p.canonicalize();
        let l = lower(&p, None).unwrap();
        let tcp_table = &l.tables[&PairKey {
            src_zone: 1,
            dst_zone: 2,
            proto: 6,
        }];
        let at = |port| *find(tcp_table, port).unwrap();
        assert_eq!(at(150).verdict, VERDICT_DENY);
        assert_eq!(p.rule(at(150).rule).action, Action::Deny);
        assert_eq!(at(100).verdict, VERDICT_ALLOW);
        assert_eq!(at(99).verdict, VERDICT_ALLOW);
        assert_eq!(tcp_table.first().unwrap().lo, 0);
        assert_eq!(tcp_table.last().unwrap().hi, u16::MAX);
        for w in tcp_table.windows(2) {
            assert_eq!(w[0].hi + 1, w[1].lo);
        }
        assert!(l.tables.contains_key(&PairKey {
            src_zone: 1,
            dst_zone: 2,
            proto: PROTO_ANY
        }));
    }

    #[test]
    fn intra_zone_pairs_of_open_zones_are_lowered_only_for_denies() {
        let mut p = policy(&["a", "b"]);
        p.zones[2].isolated = true;
        rule(&mut p, Action::Allow, &[1, 2], &[1, 2], &[tcp(22, 22)]);
        p.canonicalize();
        let l = lower(&p, None).unwrap();
        let pairs: Vec<_> = l.tables.keys().map(|k| (k.src_zone, k.dst_zone)).collect();
        assert_eq!(pairs, vec![(1, 2), (2, 1), (2, 2)]);

        rule(&mut p, Action::Deny, &[1], &[1], &[tcp(23, 23)]);
        p.canonicalize();
        let l = lower(&p, None).unwrap();
        let own = &l.tables[&PairKey {
            src_zone: 1,
            dst_zone: 1,
            proto: 6,
        }];
        let at = |port| *find(own, port).unwrap();
        assert_eq!(
            (at(23).verdict, p.rule(at(23).rule).action),
            (VERDICT_DENY, Action::Deny)
        );
        assert_eq!((at(22).verdict, at(22).rule), (VERDICT_ALLOW, RULE_NONE));
        assert_eq!((at(24).verdict, at(24).rule), (VERDICT_ALLOW, RULE_NONE));
    }

    #[test]
    fn world_is_isolated() {
        let mut p = policy(&["a"]);
        rule(&mut p, Action::Allow, &[0], &[0], &[tcp(80, 80)]);
        p.canonicalize();
        let l = lower(&p, None).unwrap();
        let world = &l.tables[&PairKey {
            src_zone: 0,
            dst_zone: 0,
            proto: 6,
        }];
        assert_eq!(find(world, 80).unwrap().verdict, VERDICT_ALLOW);
        assert_eq!(
            (
                find(world, 81).unwrap().verdict,
                find(world, 81).unwrap().rule
            ),
            (VERDICT_DENY, RULE_NONE)
        );
    }

    #[test]
    fn expired_rules_are_dropped() {
        let mut p = policy(&["a", "b"]);
        rule(&mut p, Action::Allow, &[1], &[2], &[tcp(22, 22)]);
        p.rules[0].until = "2026-01-31".parse().ok();
        p.canonicalize();
        assert_eq!(
            lower(&p, "2026-01-31".parse().ok()).unwrap().tables.len(),
            1
        );
        assert!(
            lower(&p, "2026-02-01".parse().ok())
                .unwrap()
                .tables
                .is_empty()
        );
    }
}
