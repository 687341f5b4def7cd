//! Resolution: the AST of a loaded policy to the zone model.
//!
//! Selectors become zone sets (`tag:`, `world`, `any`, lists), services
//! become protocol/port atoms, inventory hosts are already in their zones.
//! Name errors (undefined zone, tag or service) are the language crate's
//! diagnostics; a statement with such a name is left out here. Resolution
//! adds its own errors: the same prefix in two zones, IPv6 prefixes in the
//! IPv4-mapped block, a `world` selector when zones declare every address
//! (IPv4 and IPv6) and `world` is empty; and a warning on a prefix that
//! declares a whole address family (`0.0.0.0/0`, `::/0`).

use std::collections::{BTreeSet, HashMap, HashSet};

use wardgate_lang::Diagnostic;
use wardgate_lang::ast::{self, Selector};
use wardgate_lang::span::{SourceMap, Span};

use crate::codes;
use crate::model::{
    Origin, Policy, PrefixDecl, Requirement, Rule, ServiceAtom, ServiceDef, Zone, ZoneId,
};
use crate::prefix::{Key, is_v4_mapped_v6};

/// Where a span is, as an [`Origin`].
#[must_use]
pub fn origin(sources: &SourceMap, span: Span) -> Origin {
    let lc = sources.start(span);
    Origin {
        file: sources.path(span.file).display().to_string(),
        line: u32::try_from(lc.line).unwrap_or(u32::MAX),
        column: u32::try_from(lc.column).unwrap_or(u32::MAX),
        offset: span.start,
        len: span.len(),
        file_id: span.file.0,
    }
}

/// The statement text on one line, whitespace collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Resolves a parsed, merged policy. The policy comes back canonicalized.
#[must_use]
pub fn resolve(policy: &ast::Policy, sources: &SourceMap) -> (Policy, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut out = Policy::new();

    // Zones (the first declaration of a name; duplicates are the language's error).
    let mut by_name: HashMap<&str, ZoneId> = HashMap::new();
    let mut prefix_owner: HashMap<Key, (ZoneId, Span)> = HashMap::new();
    // Prefixes of length 0, by family (IPv4 first): the whole address space.
    let mut whole: [Option<(Span, String)>; 2] = [None, None];
    for z in &policy.zones {
        if by_name.contains_key(z.name.as_str()) || z.name.node == "world" {
            continue;
        }
        let mut zone = Zone::new(z.name.node.clone());
        zone.origin = Some(origin(sources, z.name.span));
        zone.tags = z.tags().map(|t| t.node.clone()).collect::<BTreeSet<_>>();
        zone.monitor = z.mode() == ast::Mode::Monitor;
        zone.isolated = z.is_isolated();
        zone.criticality = z.criticality();
        zone.description = z.description().map(str::to_owned);
        zone.devices = z.hosts().filter(|h| h.device.is_some()).count();
        zone.has_inventory = zone.devices > 0;
        zone.conntrack_limit = z.conntrack_limit();
        zone.declared_addresses = z.prefixes().count();
        let id = u32::try_from(out.zones.len()).expect("zone count fits u32");
        for p in z.prefixes() {
            if is_v4_mapped_v6(&p.node) {
                diags.push(
                    Diagnostic::new(
                        &codes::IPV4_MAPPED_PREFIX,
                        p.span,
                        format!("prefix `{}` is an IPv4-mapped IPv6 prefix", p.node),
                    )
                    .with_primary_label("IPv4-mapped")
                    .with_help(format!(
                        "write the IPv4 form `{}`",
                        Key::of(p.node).network()
                    )),
                );
                continue;
            }
            let key = Key::of(p.node);
            match prefix_owner.get(&key) {
                Some(&(owner, _)) if owner == id => continue,
                Some(&(owner, first)) => {
                    let owner_name = &out.zone(owner).name;
                    diags.push(
                        Diagnostic::new(
                            &codes::DUPLICATE_PREFIX,
                            p.span,
                            format!(
                                "prefix `{}` is declared by both `{owner_name}` and `{}`",
                                p.node, z.name.node
                            ),
                        )
                        .with_primary_label(format!("declared again for `{}`", z.name.node))
                        .with_label(first, format!("first declared for `{owner_name}`"))
                        .with_help(
                            "keep the prefix in one zone, or split it into more specific prefixes",
                        ),
                    );
                    continue;
                }
                None => {
                    prefix_owner.insert(key, (id, p.span));
                }
            }
            if p.node.prefix() == 0 {
                let family = usize::from(p.node.is_ipv6());
                diags.push(whole_space(&p.node, p.span, &z.name.node));
                whole[family] = Some((p.span, z.name.node.clone()));
            }
            zone.prefixes.push(PrefixDecl {
                net: p.node,
                origin: origin(sources, p.span),
            });
        }
        by_name.insert(z.name.as_str(), id);
        out.add_zone(zone);
    }
    let mut by_tag: HashMap<&str, Vec<ZoneId>> = HashMap::new();
    for z in &policy.zones {
        if let Some(&id) = by_name.get(z.name.as_str()) {
            for t in z.tags() {
                let v = by_tag.entry(t.as_str()).or_default();
                if v.last() != Some(&id) {
                    v.push(id);
                }
            }
        }
    }
    // With both families declared whole, `world` holds no address: a
    // selector on it matches no zone (and its statement is left out).
    let world_empty = match &whole {
        [Some(v4), Some(v6)] => {
            let is_world = |s: &ast::Node<Selector>| match &s.node {
                Selector::World => true,
                Selector::Zone(n) => n.node == "world",
                _ => false,
            };
            let selectors = policy
                .rules
                .iter()
                .flat_map(|r| r.src.iter().chain(&r.dst))
                .chain(
                    policy
                        .requirements
                        .iter()
                        .flat_map(|q| q.src.iter().chain(&q.dst)),
                );
            for sel in selectors.filter(|s| is_world(s)) {
                diags.push(empty_world(sel.span, v4, v6));
            }
            true
        }
        _ => false,
    };
    let all: Vec<ZoneId> = (0..out.zones.len())
        .map(|i| u32::try_from(i).expect("zone count fits u32"))
        .collect();
    let world = (!world_empty).then_some(crate::model::WORLD);
    let select = |sels: &[ast::Node<Selector>]| -> Option<Vec<ZoneId>> {
        let mut v = Vec::new();
        for s in sels {
            match &s.node {
                Selector::Zone(n) if n.node == "world" => v.push(world?),
                Selector::Zone(n) => v.push(*by_name.get(n.as_str())?),
                Selector::Tag(t) => v.extend(by_tag.get(t.as_str())?.iter().copied()),
                Selector::World => v.push(world?),
                Selector::Any => v.extend(all.iter().copied()),
            }
        }
        v.sort_unstable();
        v.dedup();
        (!v.is_empty()).then_some(v)
    };

    // Services.
    let mut service_index: HashMap<&str, usize> = HashMap::new();
    // The first definition of each service, in `out.services` order.
    let mut defs: Vec<&ast::Service> = Vec::new();
    for s in &policy.services {
        if service_index.contains_key(s.name.as_str()) {
            continue;
        }
        service_index.insert(s.name.as_str(), out.services.len());
        defs.push(&s.node);
        out.services.push(ServiceDef {
            name: s.name.node.clone(),
            origin: origin(sources, s.name.span),
            uses: 0,
            atoms: Vec::new(),
        });
    }
    let mut uses = vec![0u32; out.services.len()];
    for s in &policy.services {
        for a in &s.atoms {
            if let ast::ServiceAtom::Named(n) = &a.node
                && let Some(&i) = service_index.get(n.as_str())
            {
                uses[i] += 1;
            }
        }
    }
    // Services that cannot be expanded: on a cycle, or naming (directly or
    // through others) one that is, or an undefined one; the language crate
    // reports those. One iterative post-order walk over all definitions, so
    // a chain of 10,000 services costs neither stack nor quadratic time.
    let named = |i: usize| {
        defs[i].atoms.iter().filter_map(|a| match &a.node {
            ast::ServiceAtom::Named(n) => Some(service_index.get(n.as_str()).copied()),
            _ => None,
        })
    };
    let mut state = vec![0u8; defs.len()]; // 0 new, 1 on the path, 2 done
    let mut bad = vec![false; defs.len()];
    for start in 0..defs.len() {
        let mut stack = vec![(start, false)];
        while let Some((i, children_done)) = stack.pop() {
            if children_done {
                bad[i] = named(i).any(|j| j.is_none_or(|j| state[j] != 2 || bad[j]));
                state[i] = 2;
            } else if state[i] == 0 {
                state[i] = 1;
                stack.push((i, true));
                stack.extend(
                    named(i)
                        .flatten()
                        .filter(|&j| state[j] == 0)
                        .map(|j| (j, false)),
                );
            }
        }
    }
    let expand =
        |atoms: &[ast::Node<ast::ServiceAtom>], uses: &mut Vec<u32>| -> Option<Vec<ServiceAtom>> {
            let mut out_atoms = Vec::new();
            let mut seen: HashSet<usize> = HashSet::new();
            let mut stack: Vec<&ast::ServiceAtom> = Vec::new();
            for a in atoms {
                if let ast::ServiceAtom::Named(n) = &a.node {
                    uses[*service_index.get(n.as_str())?] += 1;
                }
                stack.push(&a.node);
            }
            while let Some(a) = stack.pop() {
                match a {
                    ast::ServiceAtom::Named(n) => {
                        let i = *service_index.get(n.as_str())?;
                        if bad[i] {
                            return None; // the language's error
                        }
                        if seen.insert(i) {
                            stack.extend(defs[i].atoms.iter().map(|x| &x.node));
                        }
                    }
                    ast::ServiceAtom::Tcp(r) => out_atoms.push(ports(6, *r)),
                    ast::ServiceAtom::Udp(r) => out_atoms.push(ports(17, *r)),
                    ast::ServiceAtom::Sctp(r) => out_atoms.push(ports(132, *r)),
                    ast::ServiceAtom::Icmp(t) => out_atoms.push(icmp(1, t.as_ref())),
                    ast::ServiceAtom::Icmpv6(t) => out_atoms.push(icmp(58, t.as_ref())),
                    ast::ServiceAtom::Proto(p) => out_atoms.push(ServiceAtom::proto(*p)),
                    ast::ServiceAtom::Any => out_atoms.push(ServiceAtom::ANY),
                }
            }
            out_atoms.sort_unstable();
            out_atoms.dedup();
            Some(out_atoms)
        };

    // Rules.
    for r in &policy.rules {
        let (Some(src), Some(dst), Some(services)) = (
            select(&r.src),
            select(&r.dst),
            expand(&r.services, &mut uses),
        ) else {
            continue;
        };
        out.rules.push(Rule {
            action: r.action.node,
            src,
            dst,
            services,
            src_label: selectors_label(&r.src),
            dst_label: selectors_label(&r.dst),
            service_labels: r.services.iter().map(|s| label(&s.node)).collect(),
            until: r.until.as_ref().map(|d| d.node),
            comment: r.comment.as_ref().map(|c| c.node.clone()),
            text: one_line(sources.snippet(r.span)),
            origin: origin(sources, r.span),
        });
    }
    for (def, n) in out.services.iter_mut().zip(uses) {
        def.uses = n;
    }
    let mut scratch = vec![0u32; out.services.len()];
    for (i, d) in defs.iter().enumerate() {
        out.services[i].atoms = expand(&d.atoms, &mut scratch).unwrap_or_default();
    }

    // Requirements.
    for q in &policy.requirements {
        let (Some(from), Some(to)) = (select(&q.src), select(&q.dst)) else {
            continue;
        };
        out.requirements.push(Requirement {
            kind: q.kind.node,
            from,
            to,
            text: one_line(sources.snippet(q.span)),
            origin: origin(sources, q.span),
        });
    }
    diags.extend(crate::ctlimits::check(policy));
    out.canonicalize();
    (out, diags)
}

/// The warning on `0.0.0.0/0` or `::/0`: the zone takes every address of the
/// family from `world`.
fn whole_space(net: &ipnetwork::IpNetwork, span: Span, zone: &str) -> Diagnostic {
    let family = if net.is_ipv4() { "IPv4" } else { "IPv6" };
    Diagnostic::new(
        &codes::WHOLE_ADDRESS_SPACE,
        span,
        format!(
            "zone `{zone}` declares the whole {family} address space: `world` keeps no {family} address"
        ),
    )
    .with_primary_label(format!("every {family} address"))
    .with_help(
        "`world` already holds every address no zone declares (the internet): write `world` in rules and requirements, and declare only the ranges this zone really holds",
    )
}

/// The error on a `world` selector when zones declare every address.
fn empty_world(sel: Span, v4: &(Span, String), v6: &(Span, String)) -> Diagnostic {
    Diagnostic::new(
        &codes::EMPTY_WORLD,
        sel,
        "`world` matches no zone: every IPv4 and IPv6 address is declared by a zone",
    )
    .with_primary_label("selects nothing")
    .with_label(v4.0, format!("every IPv4 address is in `{}`", v4.1))
    .with_label(v6.0, format!("every IPv6 address is in `{}`", v6.1))
    .with_help(
        "remove `0.0.0.0/0` or `::/0` from the zone so that `world` holds the internet again, or name that zone here",
    )
}

fn ports(proto: u8, r: Option<ast::PortRange>) -> ServiceAtom {
    r.map_or(ServiceAtom::proto(proto), |r| {
        ServiceAtom::ports(proto, r.low, r.high)
    })
}

fn icmp(proto: u8, t: Option<&ast::IcmpType>) -> ServiceAtom {
    t.map_or(ServiceAtom::proto(proto), |t| {
        ServiceAtom::ports(proto, u16::from(t.value), u16::from(t.value))
    })
}

/// A service as written.
fn label(a: &ast::ServiceAtom) -> String {
    let pr = |name: &str, r: &Option<ast::PortRange>| match r {
        Some(r) => format!("{name}/{r}"),
        None => name.to_owned(),
    };
    let ic = |name: &str, t: &Option<ast::IcmpType>| match t {
        Some(t) => format!("{name}/{t}"),
        None => name.to_owned(),
    };
    match a {
        ast::ServiceAtom::Named(n) => n.node.clone(),
        ast::ServiceAtom::Tcp(r) => pr("tcp", r),
        ast::ServiceAtom::Udp(r) => pr("udp", r),
        ast::ServiceAtom::Sctp(r) => pr("sctp", r),
        ast::ServiceAtom::Icmp(t) => ic("icmp", t),
        ast::ServiceAtom::Icmpv6(t) => ic("icmpv6", t),
        ast::ServiceAtom::Proto(p) => format!("proto/{p}"),
        ast::ServiceAtom::Any => "any".to_owned(),
    }
}

/// Selectors as written, canonically spaced (`tag:medical, lab`).
fn selectors_label(selectors: &[wardgate_lang::ast::Node<wardgate_lang::ast::Selector>]) -> String {
    selectors
        .iter()
        .map(|s| s.node.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use crate::testutil::check_text;

    fn codes(text: &str) -> Vec<&'static str> {
        check_text(text, None).iter().map(|d| d.code).collect()
    }

    #[test]
    fn a_world_selector_on_an_empty_world_is_an_error() {
        let text = "zone internet { networks 0.0.0.0/0, ::/0 }\nzone pumps { networks 10.40.0.0/22 }\n\
                    deny pumps -> world : any\nrequire no-path world -> pumps\n";
        let diags = check_text(text, None);
        let empty: Vec<_> = diags.iter().filter(|d| d.code == "WG304").collect();
        assert_eq!(empty.len(), 2, "{diags:#?}");
        assert!(empty[0].message.contains("`world` matches no zone"));
        assert_eq!(
            diags.iter().filter(|d| d.code == "WG305").count(),
            2,
            "one per family"
        );
    }

    #[test]
    fn one_family_declared_whole_warns_and_keeps_world() {
        let c = codes(
            "zone internet { networks 0.0.0.0/0 }\nzone pumps { networks 10.40.0.0/22 }\nrequire no-path world -> pumps\n",
        );
        assert!(c.contains(&"WG305"), "{c:?}");
        assert!(!c.contains(&"WG304"), "{c:?}");
        let c = codes(
            "zone internet { networks 0.0.0.0/1 }\nzone pumps { networks 10.40.0.0/22 }\nrequire no-path world -> pumps\n",
        );
        assert!(!c.contains(&"WG305") && !c.contains(&"WG304"), "{c:?}");
    }

    #[test]
    fn rules_keep_their_selectors_as_written_however_spaced() {
        let loaded = wardgate_lang::parse_str(
            "t.ward",
            "zone a { hosts 10.0.0.1 tags med }\nzone b { hosts 10.0.0.2 }\nzone c { hosts 10.0.0.3 }\n\
             allow a->b:tcp/443\nallow  tag:med ,c->  b : tcp/22\n",
        );
        let (image, diags) = crate::compile(&loaded, &crate::Options { today: None });
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
        let image = image.expect("the policy compiles");
        let ends: Vec<_> = image
            .rules()
            .iter()
            .map(|r| (r.from.as_str(), r.to.as_str()))
            .collect();
        assert_eq!(ends, [("a", "b"), ("tag:med, c", "b")]);
    }
}
