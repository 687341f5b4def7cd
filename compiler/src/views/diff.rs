//! `wardgate diff OLD NEW`: what a change does to reachability.
//!
//! Flows are compared by meaning, not by text: for every pair of zones (by
//! name) and every protocol, the set of allowed ports (or ICMP types) in the
//! old and the new image. A port allowed now and not before is *opened*; the
//! reverse is *closed*. Intra-zone traffic of a zone that is not `isolated`
//! counts as fully allowed, so isolating a zone shows as closed flows.
//! Requirements violated in the new policy and not in the old one are listed
//! with their chains, as are those that now hold.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use wardgate_common::{PROTO_ANY, VERDICT_ALLOW, ZONE_ISOLATED, ZONE_MONITOR};

use crate::analysis::{Analysis, hop_text};
use crate::graph::Proof;
use crate::image::PolicyImage;
use crate::model::proto_name;
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub zones_added: Vec<String>,
    pub zones_removed: Vec<String>,
    /// `zone: enforce -> monitor` and the like.
    pub mode_changes: Vec<String>,
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
    for z in image.zones() {
        if z.flags & ZONE_ISOLATED == 0 {
            let mut f = Flows::new();
            f.insert(PROTO_ANY, vec![(0, u16::MAX)]);
            out.insert((z.name.clone(), z.name.clone()), f);
        }
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
}
