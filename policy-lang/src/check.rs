//! Checks that need only the AST: duplicate names, undefined zone, tag and
//! service references, service cycles, conflicting zone items, a policy
//! that declares no zone.
//!
//! Value checks (addresses, prefixes, ports, ICMP types, dates, keywords as
//! names) happen while parsing; inventory checks while loading.

use std::collections::{HashMap, HashSet};

use crate::ast::{Node, Policy, Selector, ServiceAtom, ZoneItem};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::Span;
use crate::suggest::Suggester;

/// Runs every name check over a merged policy. With `references` false
/// (after a syntax error, when a declaration may have been lost) undefined
/// references are not reported: they would only be echoes of the syntax
/// error.
#[must_use]
pub fn check_policy(policy: &Policy, references: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();

    // Duplicate definitions.
    let mut zones: HashMap<&str, Span> = HashMap::new();
    for z in &policy.zones {
        if let Some(first) = zones.get(z.name.as_str()) {
            out.push(
                Diagnostic::new(
                    &codes::DUPLICATE_ZONE,
                    z.name.span,
                    format!("zone `{}` is declared twice", z.name.node),
                )
                .with_primary_label("declared again here")
                .with_label(*first, "first declared here")
                .with_help("merge the two declarations into one"),
            );
        } else {
            zones.insert(z.name.as_str(), z.name.span);
        }
    }
    let mut services: HashMap<&str, &Node<crate::ast::Service>> = HashMap::new();
    for s in &policy.services {
        if let Some(first) = services.get(s.name.as_str()) {
            out.push(
                Diagnostic::new(
                    &codes::DUPLICATE_SERVICE,
                    s.name.span,
                    format!("service `{}` is defined twice", s.name.node),
                )
                .with_primary_label("defined again here")
                .with_label(first.name.span, "first defined here")
                .with_help("list every port in one definition"),
            );
        } else {
            services.insert(s.name.as_str(), s);
        }
    }

    // Conflicting single-valued zone items.
    for z in &policy.zones {
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        for item in &z.items {
            let key = match item.node {
                ZoneItem::Mode(_) => "mode",
                ZoneItem::Criticality(_) => "criticality",
                ZoneItem::Description(_) => "description",
                ZoneItem::ConntrackLimit(_) => "conntrack-limit",
                _ => continue,
            };
            if let Some(first) = seen.get(key) {
                out.push(
                    Diagnostic::new(
                        &codes::CONFLICTING_ZONE_ITEM,
                        item.span,
                        format!("zone `{}` sets `{key}` twice", z.name.node),
                    )
                    .with_primary_label("set again here")
                    .with_label(*first, "first set here")
                    .with_help(format!("a zone has one `{key}`; keep one of them")),
                );
            } else {
                seen.insert(key, item.span);
            }
        }
    }

    if references {
        check_references(policy, &zones, &services, &mut out);
        out.extend(no_zones(policy));
    }

    // Service cycles: depth-first search, reporting each cycle once at the
    // definition where it is first entered.
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on stack, 2 = done
    for s in &policy.services {
        visit_service(s.name.as_str(), &services, &mut state, &mut out);
    }
    out
}

/// A policy that declares no zone (WG221): an empty, truncated or
/// half-written file must never pass for a policy. A file of services alone
/// is a library meant to be included and is not reported.
#[must_use]
pub fn no_zones(policy: &Policy) -> Option<Diagnostic> {
    if !policy.zones.is_empty() || !policy.services.is_empty() {
        return None;
    }
    let at = policy
        .rules
        .first()
        .map(|r| r.span)
        .or_else(|| policy.requirements.first().map(|r| r.span))
        .unwrap_or_else(|| Span::new(crate::span::FileId(0), 0, 0));
    Some(
        Diagnostic::new(&codes::NO_ZONES, at, "the policy declares no zone")
            .with_primary_label("no zone is declared in this policy or its includes")
            .with_help(
                "declare the zones to segment; to accept an empty policy on purpose, \
                 run `wardgate check --allow-empty`",
            ),
    )
}

fn check_references(
    policy: &Policy,
    zones: &HashMap<&str, Span>,
    services: &HashMap<&str, &Node<crate::ast::Service>>,
    out: &mut Vec<Diagnostic>,
) {
    let tags: HashSet<&str> = policy
        .zones
        .iter()
        .flat_map(|z| z.tags().map(|t| t.as_str()))
        .collect();
    let mut zone_names = Suggester::new(policy.zones.iter().map(|z| z.name.as_str()));
    let mut tag_names = Suggester::new(tags.iter().copied());
    let selectors = policy
        .rules
        .iter()
        .flat_map(|r| r.src.iter().chain(&r.dst))
        .chain(
            policy
                .requirements
                .iter()
                .flat_map(|r| r.src.iter().chain(&r.dst)),
        );
    for sel in selectors {
        match &sel.node {
            Selector::Zone(name) if !zones.contains_key(name.as_str()) => {
                let mut d = Diagnostic::new(
                    &codes::UNDEFINED_ZONE,
                    name.span,
                    format!("zone `{}` is not declared", name.node),
                )
                .with_primary_label("no zone of this name");
                if let Some(s) = zone_names.suggest(name) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else if tags.contains(&name.as_str()) {
                    d = d.with_help(format!(
                        "`{}` is a tag; select the zones carrying it with `tag:{}`",
                        name.node, name.node
                    ));
                } else {
                    d = d.with_help(format!("declare it with `zone {} {{ ... }}`", name.node));
                }
                out.push(d);
            }
            Selector::Tag(name) if !tags.contains(&name.as_str()) => {
                let mut d = Diagnostic::new(
                    &codes::UNDEFINED_TAG,
                    sel.span,
                    format!("no zone carries the tag `{}`", name.node),
                )
                .with_primary_label("selects no zone");
                if let Some(s) = tag_names.suggest(name) {
                    d = d.with_help(format!("did you mean `tag:{s}`?"));
                } else {
                    d = d.with_help(format!(
                        "add `tags {}` to the zones it is meant for",
                        name.node
                    ));
                }
                out.push(d);
            }
            _ => {}
        }
    }
    let mut service_names = Suggester::new(policy.services.iter().map(|s| s.name.as_str()));
    let atoms = policy
        .rules
        .iter()
        .flat_map(|r| r.services.iter())
        .chain(policy.services.iter().flat_map(|s| s.atoms.iter()));
    for atom in atoms {
        if let ServiceAtom::Named(name) = &atom.node
            && !services.contains_key(name.as_str())
        {
            let mut d = Diagnostic::new(
                &codes::UNDEFINED_SERVICE,
                name.span,
                format!("service `{}` is not defined", name.node),
            )
            .with_primary_label("no service of this name");
            d = match service_names.suggest(name) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!(
                    "define it with `service {} = ...`, or write the protocol and port, such as `tcp/443`",
                    name.node
                )),
            };
            out.push(d);
        }
    }
}

/// Depth-first search from one service over the services it names, with
/// an explicit stack (a chain of 10,000 definitions must not exhaust the
/// native stack). `state`: 1 = on the current path, 2 = done.
fn visit_service<'p>(
    root: &'p str,
    services: &HashMap<&'p str, &'p Node<crate::ast::Service>>,
    state: &mut HashMap<&'p str, u8>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(&def) = services.get(root) else {
        return;
    };
    if state.contains_key(root) {
        return;
    }
    state.insert(root, 1);
    // The services being visited with the next atom to look at, and the
    // uses that led from each to the next (`path[i]` is in `frames[i]`).
    let mut frames: Vec<(&'p str, &'p Node<crate::ast::Service>, usize)> = vec![(root, def, 0)];
    let mut path: Vec<(&'p str, Span)> = Vec::new();
    while let Some(top) = frames.last_mut() {
        let (name, def) = (top.0, top.1);
        let Some(atom) = def.atoms.get(top.2) else {
            state.insert(name, 2);
            frames.pop();
            path.pop();
            continue;
        };
        top.2 += 1;
        let ServiceAtom::Named(next) = &atom.node else {
            continue;
        };
        let Some(&next_def) = services.get(next.as_str()) else {
            continue;
        };
        match state.get(next.as_str()) {
            Some(2) => {}
            Some(_) => {
                path.push((name, next.span));
                out.push(cycle(next.as_str(), next_def, &path));
                path.pop();
            }
            None => {
                path.push((name, next.span));
                state.insert(next.as_str(), 1);
                frames.push((next.as_str(), next_def, 0));
            }
        }
    }
}

/// The diagnostic for a use of `name` (the last of `path`) that closes a
/// cycle.
fn cycle(name: &str, def: &Node<crate::ast::Service>, path: &[(&str, Span)]) -> Diagnostic {
    let at = path.iter().position(|(n, _)| *n == name).unwrap_or(0);
    let names: Vec<&str> = path[at..].iter().map(|(n, _)| *n).chain([name]).collect();
    let (_, use_span) = path[path.len() - 1];
    let mut d = Diagnostic::new(
        &codes::SERVICE_CYCLE,
        use_span,
        format!("service `{name}` is defined in terms of itself"),
    )
    .with_primary_label(format!("`{}`", names.join("` -> `")))
    .with_help("break the circle: list the ports in one of the services");
    if def.name.span != use_span {
        d = d.with_label(def.name.span, "defined here");
    }
    d
}

#[cfg(test)]
mod tests {
    use crate::{codes, load::parse_str};

    fn reports_no_zones(text: &str) -> bool {
        parse_str("p.ward", text)
            .diagnostics
            .iter()
            .any(|d| d.code == codes::NO_ZONES.code)
    }

    #[test]
    fn a_policy_without_zones_is_an_error() {
        assert!(reports_no_zones(""));
        assert!(reports_no_zones("# only a comment\n"));
        assert!(reports_no_zones("allow world -> world : any\n"));
        assert!(!reports_no_zones("zone a { hosts 10.0.0.1 }\n"));
        // A library of services, meant to be included.
        assert!(!reports_no_zones("service dicom = tcp/104\n"));
        // After a syntax error the zone may have been lost: no echo.
        assert!(!reports_no_zones("zone a { netwroks 10.0.0.0/8 }\n"));
    }
}
