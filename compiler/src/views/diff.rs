//! `wardgate diff OLD NEW`: what a change does to reachability.
//!
//! Flows are compared by meaning, not by text: for every pair of zones (by
//! name) and every protocol, the set of allowed ports (or ICMP types) in the
//! old and the new image. A port allowed now and not before is *opened*; the
//! reverse is *closed*. Intra-zone traffic of a zone that is not `isolated`
//! counts as fully allowed, so isolating a zone shows as closed flows.
//! Requirements violated in the new policy and not in the old one are listed
//! with their chains, as are those that now hold.
//!
//! Addresses that change zone (a zone shrinks or grows, a carve-out zone is
//! removed or added) are listed too, as the prefixes that move from one zone
//! to another, with what the hosts there gain and lose: the flows of the new
//! zone in the new policy against those of the old zone in the old one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use wardgate_common::{PROTO_ANY, VERDICT_ALLOW, ZONE_ISOLATED, ZONE_MONITOR};

use crate::analysis::{Analysis, hop_text};
use crate::graph::Proof;
use crate::image::PolicyImage;
use crate::model::proto_name;
use crate::nft::zone_ranges;
use crate::prefix::Key;
use crate::views::md_cell;

/// Allowed ranges per protocol (`PROTO_ANY`: every protocol without its own entry).
type Flows = BTreeMap<u32, Vec<(u16, u16)>>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowChange {
    pub src: String,
    pub dst: String,
    /// Services in the language's notation (`tcp/443`, `icmp/8`, `any`).
    pub services: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainHop {
    pub from: String,
    pub to: String,
    /// The rule that opens the hop; `null` when monitor mode does.
    pub rule: Option<RuleRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub file: String,
    pub line: u32,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequirementChange {
    pub requirement: String,
    pub file: String,
    pub line: u32,
    /// The offending chain in the new policy (empty for fixed ones).
    pub chain: Vec<ChainHop>,
    /// Human form of the chain.
    pub summary: String,
}

/// Addresses that belong to `from` in the old policy and to `to` in the new.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AddressMove {
    pub from: String,
    pub to: String,
    /// The moved addresses as prefixes (IPv4 written as IPv4).
    pub prefixes: Vec<String>,
    /// Flows the moved hosts have in the new policy and not in the old (the
    /// moved side named `to`).
    pub gains: Vec<FlowChange>,
    /// Flows the moved hosts had in the old policy and no longer have (the
    /// moved side named `from`).
    pub losses: Vec<FlowChange>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub zones_added: Vec<String>,
    pub zones_removed: Vec<String>,
    /// `zone: enforce -> monitor` and the like.
    pub mode_changes: Vec<String>,
    /// Address ranges that change zone.
    pub moved: Vec<AddressMove>,
    pub opened: Vec<FlowChange>,
    pub closed: Vec<FlowChange>,
    pub newly_violated: Vec<RequirementChange>,
    pub newly_holding: Vec<RequirementChange>,
}

impl Diff {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn flows(image: &PolicyImage) -> BTreeMap<(String, String), Flows> {
    let mut out: BTreeMap<(String, String), Flows> = BTreeMap::new();
    for (key, span) in image.pairs() {
        let table = &image.intervals()[span.first as usize..(span.first + span.count) as usize];
        let ranges: Vec<(u16, u16)> = table
            .iter()
            .filter(|iv| iv.verdict == VERDICT_ALLOW)
            .map(|iv| (iv.lo, iv.hi))
            .collect();
        let pair = (
            image.zone_name(key.src_zone).to_owned(),
            image.zone_name(key.dst_zone).to_owned(),
        );
        out.entry(pair)
            .or_default()
            .insert(key.proto, merge(ranges));
    }
    // Intra-zone traffic of a zone that is not isolated: allowed unless a
    // deny covers it (its own tables, if any, already say which); protocols
    // without a table of their own are allowed.
    for z in image.zones() {
        if z.flags & ZONE_ISOLATED == 0 {
            out.entry((z.name.clone(), z.name.clone()))
                .or_default()
                .entry(PROTO_ANY)
                .or_insert_with(|| vec![(0, u16::MAX)]);
        }
    }
    out
}

/// The inclusive key-space range `lo..=hi` as the fewest prefixes.
fn prefixes(mut lo: u128, hi: u128) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        // The largest block aligned at `lo` (2^bits addresses) that ends by `hi`.
        let mut bits = if lo == 0 { 128 } else { lo.trailing_zeros() };
        let last = |bits: u32| {
            if bits == 128 {
                u128::MAX
            } else {
                lo | ((1u128 << bits) - 1)
            }
        };
        while last(bits) > hi {
            bits -= 1;
        }
        let len = u8::try_from(128 - bits).expect("at most 128");
        out.push(Key { addr: lo, len }.network().to_string());
        let end = last(bits);
        if end >= hi {
            return out;
        }
        lo = end + 1;
    }
}

/// The address ranges that change zone, by (old zone, new zone) name.
fn moves(old: &PolicyImage, new: &PolicyImage) -> BTreeMap<(String, String), Vec<String>> {
    let (a, b) = (zone_ranges(old), zone_ranges(new));
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let (mut i, mut j) = (0, 0);
    let mut lo = 0u128;
    // Both lists cover the whole key space in order: walk their common cuts.
    while i < a.len() && j < b.len() {
        let hi = a[i].hi.min(b[j].hi);
        let (from, to) = (old.zone_name(a[i].zone), new.zone_name(b[j].zone));
        if from != to {
            out.entry((from.to_owned(), to.to_owned()))
                .or_default()
                .extend(prefixes(lo, hi));
        }
        if hi == u128::MAX {
            break;
        }
        if a[i].hi == hi {
            i += 1;
        }
        if b[j].hi == hi {
            j += 1;
        }
        lo = hi + 1;
    }
    out
}

fn merge(mut r: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    r.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in r {
        match out.last_mut() {
            Some(last) if u32::from(last.1) + 1 >= u32::from(lo) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// `a \ b` for sorted disjoint range lists.
fn minus(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(lo, hi) in a {
        let mut cur = u32::from(lo);
        let hi = u32::from(hi);
        for &(blo, bhi) in b {
            let (blo, bhi) = (u32::from(blo), u32::from(bhi));
            if bhi < cur || blo > hi {
                continue;
            }
            if blo > cur {
                out.push((cur, blo - 1));
            }
            cur = bhi + 1;
        }
        if cur <= hi {
            out.push((cur, hi));
        }
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "values come from u16 ranges"
    )]
    out.into_iter().map(|(l, h)| (l as u16, h as u16)).collect()
}

fn services(proto: u32, ranges: &[(u16, u16)]) -> Vec<String> {
    if proto == PROTO_ANY {
        return if ranges.is_empty() {
            vec![]
        } else {
            vec!["any".to_owned()]
        };
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "protocol numbers below 256"
    )]
    let p = proto as u8;
    let Some(name) = proto_name(p) else {
        return if ranges.is_empty() {
            vec![]
        } else {
            vec![format!("proto/{p}")]
        };
    };
    let full = |lo: u16, hi: u16| lo == 0 && (hi == u16::MAX || (matches!(p, 1 | 58) && hi >= 255));
    ranges
        .iter()
        .filter(|(lo, _)| !matches!(p, 1 | 58) || *lo <= 255)
        .map(|&(lo, hi)| {
            if full(lo, hi) {
                name.to_owned()
            } else if lo == hi {
                format!("{name}/{lo}")
            } else if matches!(p, 1 | 58) {
                format!("{name}/{lo}-{}", hi.min(255))
            } else {
                format!("{name}/{lo}-{hi}")
            }
        })
        .collect()
}

/// Opened and closed services for one pair.
fn compare(old: Option<&Flows>, new: Option<&Flows>) -> (Vec<String>, Vec<String>) {
    let empty = Flows::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let protos: BTreeSet<u32> = old.keys().chain(new.keys()).copied().collect();
    let get = |f: &Flows, p: u32| -> Vec<(u16, u16)> {
        f.get(&p)
            .or_else(|| f.get(&PROTO_ANY))
            .cloned()
            .unwrap_or_default()
    };
    let (mut opened, mut closed) = (Vec::new(), Vec::new());
    for p in protos {
        let (o, n) = if p == PROTO_ANY {
            (
                old.get(&p).cloned().unwrap_or_default(),
                new.get(&p).cloned().unwrap_or_default(),
            )
        } else {
            (get(old, p), get(new, p))
        };
        opened.extend(services(p, &minus(&n, &o)));
        closed.extend(services(p, &minus(&o, &n)));
    }
    (opened, closed)
}

fn chain(a: &Analysis, proof: &Proof) -> (Vec<ChainHop>, String) {
    let hops = match proof {
        Proof::Holds => return (Vec::new(), String::new()),
        Proof::Violated(c) | Proof::NotEnforced(c) => c,
    };
    let p = &a.policy;
    let v = hops
        .iter()
        .map(|h| ChainHop {
            from: p.zone(h.from).name.clone(),
            to: p.zone(h.to).name.clone(),
            rule: h.rule.map(|r| {
                let r = p.rule(r);
                RuleRef {
                    file: r.origin.file.clone(),
                    line: r.origin.line,
                    text: r.text.clone(),
                }
            }),
        })
        .collect();
    let s = hops
        .iter()
        .map(|h| hop_text(p, h))
        .collect::<Vec<_>>()
        .join(", ");
    (v, s)
}

/// Compares two analysed policies (both must have images).
#[must_use]
pub fn diff(
    old: &Analysis,
    new: &Analysis,
    old_image: &PolicyImage,
    new_image: &PolicyImage,
) -> Diff {
    let mut d = Diff::default();
    let names = |i: &PolicyImage| -> BTreeMap<String, u32> {
        i.zones()
            .iter()
            .map(|z| (z.name.clone(), z.flags))
            .collect()
    };
    let (on, nn) = (names(old_image), names(new_image));
    d.zones_added = nn
        .keys()
        .filter(|k| !on.contains_key(*k))
        .cloned()
        .collect();
    d.zones_removed = on
        .keys()
        .filter(|k| !nn.contains_key(*k))
        .cloned()
        .collect();
    for (name, nf) in &nn {
        let Some(of) = on.get(name) else { continue };
        let mode = |f: u32| {
            if f & ZONE_MONITOR != 0 {
                "monitor"
            } else {
                "enforce"
            }
        };
        if mode(*of) != mode(*nf) {
            d.mode_changes
                .push(format!("{name}: {} -> {}", mode(*of), mode(*nf)));
        }
    }
    let (of, nf) = (flows(old_image), flows(new_image));
    let peers: BTreeSet<String> = on.keys().chain(nn.keys()).cloned().collect();
    for ((from, to), prefixes) in moves(old_image, new_image) {
        let mut m = AddressMove {
            prefixes,
            ..AddressMove::default()
        };
        for x in &peers {
            // Outgoing, then incoming.
            for (old_pair, new_pair) in [
                ((from.clone(), x.clone()), (to.clone(), x.clone())),
                ((x.clone(), from.clone()), (x.clone(), to.clone())),
            ] {
                let (gained, lost) = compare(of.get(&old_pair), nf.get(&new_pair));
                if !gained.is_empty() {
                    m.gains.push(FlowChange {
                        src: new_pair.0,
                        dst: new_pair.1,
                        services: gained,
                    });
                }
                if !lost.is_empty() {
                    m.losses.push(FlowChange {
                        src: old_pair.0,
                        dst: old_pair.1,
                        services: lost,
                    });
                }
            }
        }
        // A pair inside the zone the addresses join or leave is reached both
        // as outgoing and as incoming: say it once.
        let mut seen = BTreeSet::new();
        m.gains
            .retain(|f| seen.insert((f.src.clone(), f.dst.clone(), f.services.clone())));
        seen.clear();
        m.losses
            .retain(|f| seen.insert((f.src.clone(), f.dst.clone(), f.services.clone())));
        m.from = from;
        m.to = to;
        d.moved.push(m);
    }
    let pairs: BTreeSet<&(String, String)> = of.keys().chain(nf.keys()).collect();
    for pair in pairs {
        let (opened, closed) = compare(of.get(pair), nf.get(pair));
        let change = |services| FlowChange {
            src: pair.0.clone(),
            dst: pair.1.clone(),
            services,
        };
        if !opened.is_empty() {
            d.opened.push(change(opened));
        }
        if !closed.is_empty() {
            d.closed.push(change(closed));
        }
    }
    let status = |a: &Analysis| -> BTreeMap<String, (usize, bool)> {
        a.policy
            .requirements
            .iter()
            .zip(&a.proofs)
            .enumerate()
            .map(|(i, (r, p))| (r.text.clone(), (i, matches!(p, Proof::Violated(_)))))
            .collect()
    };
    let (os, ns) = (status(old), status(new));
    for (text, &(i, violated)) in &ns {
        let was = os.get(text).is_some_and(|s| s.1);
        let req = &new.policy.requirements[i];
        if violated && !was {
            let (c, summary) = chain(new, &new.proofs[i]);
            d.newly_violated.push(RequirementChange {
                requirement: text.clone(),
                file: req.origin.file.clone(),
                line: req.origin.line,
                chain: c,
                summary,
            });
        } else if !violated && was {
            d.newly_holding.push(RequirementChange {
                requirement: text.clone(),
                file: req.origin.file.clone(),
                line: req.origin.line,
                chain: Vec::new(),
                summary: String::new(),
            });
        }
    }
    d
}

/// Plain text.
#[must_use]
pub fn human(d: &Diff) -> String {
    if d.is_empty() {
        return "no change in reachability\n".to_owned();
    }
    let mut out = String::new();
    let section = |out: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            let _ = writeln!(out, "{title}:");
            for i in items {
                let _ = writeln!(out, "  {i}");
            }
        }
    };
    section(&mut out, "zones added", &d.zones_added);
    section(&mut out, "zones removed", &d.zones_removed);
    section(&mut out, "mode changes", &d.mode_changes);
    let flows = |v: &[FlowChange], sign: char| -> Vec<String> {
        v.iter()
            .map(|f| format!("{sign} {} -> {} : {}", f.src, f.dst, f.services.join(", ")))
            .collect()
    };
    let mut moved = Vec::new();
    for m in &d.moved {
        moved.push(format!(
            "{}: `{}` -> `{}`",
            m.prefixes.join(", "),
            m.from,
            m.to
        ));
        moved.extend(
            flows(&m.gains, '+')
                .into_iter()
                .map(|f| format!("  gains {f}")),
        );
        moved.extend(
            flows(&m.losses, '-')
                .into_iter()
                .map(|f| format!("  loses {f}")),
        );
    }
    section(&mut out, "addresses that change zone", &moved);
    section(&mut out, "flows opened", &flows(&d.opened, '+'));
    section(&mut out, "flows closed", &flows(&d.closed, '-'));
    let reqs = |v: &[RequirementChange]| -> Vec<String> {
        v.iter()
            .map(|r| {
                if r.summary.is_empty() {
                    format!("{} ({}:{})", r.requirement, r.file, r.line)
                } else {
                    format!("{} ({}:{}): {}", r.requirement, r.file, r.line, r.summary)
                }
            })
            .collect()
    };
    section(
        &mut out,
        "requirements newly violated",
        &reqs(&d.newly_violated),
    );
    section(
        &mut out,
        "requirements now holding",
        &reqs(&d.newly_holding),
    );
    out
}

/// Markdown for a pull-request comment.
#[must_use]
pub fn markdown(d: &Diff) -> String {
    let mut out = String::from("### wardgate: reachability changes\n\n");
    if d.is_empty() {
        out.push_str("No change in reachability.\n");
        return out;
    }
    if !d.newly_violated.is_empty() {
        out.push_str("**:x: Requirements newly violated**\n\n| requirement | chain |\n|---|---|\n");
        for r in &d.newly_violated {
            let _ = writeln!(
                out,
                "| `{}` ({}:{}) | {} |",
                md_cell(&r.requirement),
                md_cell(&r.file),
                r.line,
                md_cell(&r.summary)
            );
        }
        out.push('\n');
    }
    let table = |out: &mut String, title: &str, v: &[FlowChange]| {
        if v.is_empty() {
            return;
        }
        let _ = write!(
            out,
            "**{title}** ({})\n\n| from | to | services |\n|---|---|---|\n",
            v.len()
        );
        for f in v {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} |",
                md_cell(&f.src),
                md_cell(&f.dst),
                md_cell(
                    &f.services
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            );
        }
        out.push('\n');
    };
    if !d.moved.is_empty() {
        let _ = write!(
            out,
            "**Addresses that change zone** ({})\n\n| addresses | from | to | gains | loses |\n|---|---|---|---|---|\n",
            d.moved.len()
        );
        let flows = |v: &[FlowChange]| {
            v.iter()
                .map(|f| format!("`{} -> {} : {}`", f.src, f.dst, f.services.join(", ")))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        for m in &d.moved {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | {} |",
                md_cell(
                    &m.prefixes
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                md_cell(&m.from),
                md_cell(&m.to),
                md_cell(&flows(&m.gains)),
                md_cell(&flows(&m.losses)),
            );
        }
        out.push('\n');
    }
    table(&mut out, "Flows opened", &d.opened);
    table(&mut out, "Flows closed", &d.closed);
    let list = |out: &mut String, title: &str, v: &[String]| {
        if !v.is_empty() {
            let _ = writeln!(
                out,
                "**{title}:** {}\n",
                v.iter()
                    .map(|s| format!("`{}`", md_cell(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    };
    list(&mut out, "Zones added", &d.zones_added);
    list(&mut out, "Zones removed", &d.zones_removed);
    list(&mut out, "Mode changes", &d.mode_changes);
    let holding: Vec<String> = d
        .newly_holding
        .iter()
        .map(|r| r.requirement.clone())
        .collect();
    list(&mut out, "Requirements now holding", &holding);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_difference() {
        assert_eq!(
            minus(&[(0, 100)], &[(10, 20), (50, 60)]),
            vec![(0, 9), (21, 49), (61, 100)]
        );
        assert_eq!(minus(&[(0, 65535)], &[(0, 65535)]), vec![]);
        assert_eq!(
            services(6, &[(443, 443), (0, 65535)]),
            vec!["tcp/443", "tcp"]
        );
        assert_eq!(services(1, &[(8, 8), (0, 65535)]), vec!["icmp/8", "icmp"]);
    }

    #[test]
    fn ranges_become_the_fewest_prefixes() {
        let v4 = |a: u32| crate::prefix::V4_MAPPED_BASE | u128::from(a);
        assert_eq!(
            prefixes(v4(0x0a00_0400), v4(0x0a00_07ff)),
            vec!["10.0.4.0/22"]
        );
        assert_eq!(
            prefixes(v4(0x0a00_0001), v4(0x0a00_0004)),
            vec!["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/32"]
        );
        assert_eq!(prefixes(0, u128::MAX), vec!["::/0"]);
    }

    fn analysed(text: &str) -> (Analysis, PolicyImage) {
        let loaded = wardgate_lang::parse_str("p.ward", text);
        let a = crate::analyze(&loaded, &crate::Options::default());
        let image = a
            .image
            .clone()
            .unwrap_or_else(|| panic!("{:#?}", a.diagnostics));
        (a, image)
    }

    fn diff_of(old: &str, new: &str) -> Diff {
        let (oa, oi) = analysed(old);
        let (na, ni) = analysed(new);
        diff(&oa, &na, &oi, &ni)
    }

    #[test]
    fn a_shrinking_zone_reports_the_addresses_that_leave_it() {
        let ehr = "zone ehr { hosts 10.9.0.5 }\nallow workstations -> ehr : tcp/443\n";
        let d = diff_of(
            &format!("zone workstations {{ networks 10.0.0.0/21 }}\n{ehr}"),
            &format!("zone workstations {{ networks 10.0.0.0/22 }}\n{ehr}"),
        );
        assert!(!d.is_empty(), "no change in reachability reported");
        assert_eq!(d.moved.len(), 1, "{d:#?}");
        let m = &d.moved[0];
        assert_eq!((m.from.as_str(), m.to.as_str()), ("workstations", "world"));
        assert_eq!(m.prefixes, vec!["10.0.4.0/22"]);
        assert!(
            m.losses.iter().any(|f| f.src == "workstations"
                && f.dst == "ehr"
                && f.services == vec!["tcp/443"]),
            "{m:#?}"
        );
        assert!(human(&d).contains("10.0.4.0/22: `workstations` -> `world`"));
    }

    #[test]
    fn a_removed_carve_out_reports_where_its_addresses_go() {
        let base = "zone lan { networks 10.0.0.0/16 }\nzone srv { hosts 10.9.0.5 }\n";
        let d = diff_of(
            &format!("{base}zone lab {{ networks 10.0.7.0/24 }}\nallow lab -> srv : tcp/22\n"),
            base,
        );
        assert_eq!(d.zones_removed, vec!["lab"]);
        assert_eq!(d.moved.len(), 1, "{d:#?}");
        let m = &d.moved[0];
        assert_eq!((m.from.as_str(), m.to.as_str()), ("lab", "lan"));
        assert_eq!(m.prefixes, vec!["10.0.7.0/24"]);
        assert!(
            m.losses
                .iter()
                .any(|f| f.dst == "srv" && f.services == vec!["tcp/22"])
        );
        assert!(
            m.gains
                .iter()
                .any(|f| f.src == "lan" && f.dst == "lan" && f.services == vec!["any"]),
            "joins lan's intra-zone traffic: {m:#?}"
        );
    }
}
