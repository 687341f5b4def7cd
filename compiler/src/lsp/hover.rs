//! Hover text: what the compiler knows about the name or statement under
//! the cursor.
//!
//! - zone: prefixes, tags, criticality, mode, the zones it reaches and the
//!   zones that reach it (directly, and over any number of hops);
//! - service: its definition and the protocols and ports it stands for;
//! - tag: the zones that carry it;
//! - rule: the zone pairs it opens (or why it opens nothing);
//! - `until` date: the days left.

use std::fmt::Write as _;

use wardgate_lang::ast::{Node, Statement};
use wardgate_lang::{FileId, Span};

use super::documents::Snapshot;
use super::symbols::Kind;
use crate::lints::Context;
use crate::model::{Policy, ZoneId};

/// Zone lists longer than this are cut, with the count.
const MAX_NAMES: usize = 20;

/// The hover at a byte offset of a file: Markdown, and the span it is about.
#[must_use]
pub fn hover(snap: &Snapshot, file: FileId, offset: usize) -> Option<(String, Span)> {
    if let Some(o) = snap.index.at(file, offset) {
        let text = match o.kind {
            Kind::Zone => zone(snap, &o.name),
            Kind::Service => service(snap, &o.name),
            Kind::Tag => tag(snap, &o.name),
        }?;
        return Some((text, o.span));
    }
    let f = snap.loaded.files.iter().find(|f| f.id == file)?;
    let stmt = f
        .statements
        .iter()
        .find(|s| s.span.start <= offset && offset <= s.span.end)?;
    match &stmt.node {
        Statement::Rule(r) => {
            if let Some(until) = r.until.as_ref().filter(|u| within(u, offset)) {
                return Some((days_left(snap, until.node), until.span));
            }
            Some((rule(snap, stmt.span)?, stmt.span))
        }
        _ => None,
    }
}

fn within<T>(n: &Node<T>, offset: usize) -> bool {
    n.span.start <= offset && offset <= n.span.end
}

fn names(policy: &Policy, ids: &[ZoneId]) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    let mut out: Vec<String> = ids
        .iter()
        .take(MAX_NAMES)
        .map(|&z| format!("`{}`", policy.zone(z).name))
        .collect();
    if ids.len() > MAX_NAMES {
        out.push(format!("and {} more", ids.len() - MAX_NAMES));
    }
    out.join(", ")
}

fn zone(snap: &Snapshot, name: &str) -> Option<String> {
    let policy = &snap.analysis.policy;
    let id = policy.zone_id(name)?;
    let z = policy.zone(id);
    let mut s = format!("**zone `{}`**", z.name);
    if let Some(d) = &z.description {
        let _ = write!(s, ": {d}");
    }
    s.push_str("\n\n");
    let prefixes: Vec<String> = z.prefixes.iter().map(|p| p.net.to_string()).collect();
    let _ = writeln!(
        s,
        "- prefixes: {}",
        if prefixes.is_empty() {
            "none".to_string()
        } else {
            prefixes.join(", ")
        }
    );
    let tags: Vec<&str> = z.tags.iter().map(String::as_str).collect();
    if !tags.is_empty() {
        let _ = writeln!(s, "- tags: {}", tags.join(", "));
    }
    let _ = writeln!(
        s,
        "- criticality: {}",
        z.criticality.map_or("not set", |c| c.as_str())
    );
    let _ = writeln!(
        s,
        "- mode: {}{}",
        if z.monitor { "monitor" } else { "enforce" },
        if z.isolated { ", isolated" } else { "" }
    );
    if let Some(g) = &snap.analysis.graph {
        let out: Vec<ZoneId> = g.out(id).into_iter().map(|(z, _)| z).collect();
        let _ = writeln!(s, "- reaches directly: {}", names(policy, &out));
        let _ = writeln!(
            s,
            "- reaches over any hops: {}",
            names(policy, &g.reach(id))
        );
        let _ = writeln!(
            s,
            "- reached directly by: {}",
            names(policy, &g.into_zone(id))
        );
        let _ = writeln!(
            s,
            "- reached over any hops by: {}",
            names(policy, &g.reached_by(id))
        );
    }
    Some(s)
}

fn service(snap: &Snapshot, name: &str) -> Option<String> {
    let def = snap.loaded.policy.service(name)?;
    let atoms: Vec<String> = def
        .atoms
        .iter()
        .map(|a| wardgate_lang::fmt::service_atom(&a.node))
        .collect();
    let mut s = format!("**service `{name}`** = {}", atoms.join(", "));
    // The ports after following named services.
    let expanded = expand(snap, name, 0);
    if expanded != atoms {
        let _ = write!(s, "\n\nports: {}", expanded.join(", "));
    }
    Some(s)
}

/// A service's atoms with every named service replaced by its own (a
/// cycle is an error elsewhere: cut at a depth).
fn expand(snap: &Snapshot, name: &str, depth: usize) -> Vec<String> {
    let Some(def) = snap.loaded.policy.service(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in &def.atoms {
        match &a.node {
            wardgate_lang::ast::ServiceAtom::Named(n) if depth < 16 => {
                out.extend(expand(snap, n, depth + 1));
            }
            other => out.push(wardgate_lang::fmt::service_atom(other)),
        }
    }
    out
}

fn tag(snap: &Snapshot, name: &str) -> Option<String> {
    let zones: Vec<String> = snap
        .loaded
        .policy
        .zones
        .iter()
        .filter(|z| z.has_tag(name))
        .map(|z| format!("`{}`", z.name.node))
        .collect();
    Some(format!(
        "**tag `{name}`**: carried by {}",
        if zones.is_empty() {
            "no zone".to_string()
        } else {
            zones.join(", ")
        }
    ))
}

fn rule(snap: &Snapshot, span: Span) -> Option<String> {
    let policy = &snap.analysis.policy;
    let rule = policy
        .rules
        .iter()
        .find(|r| r.origin.file_id == span.file.0 && r.origin.offset == span.start)?;
    let mut s = format!("**{}**", rule.text);
    let services: Vec<String> = rule.services.iter().map(ToString::to_string).collect();
    let _ = write!(s, "\n\nservices: {}", services.join(", "));
    if !rule.in_force(Some(snap.today)) {
        let _ = write!(
            s,
            "\n\nexpired on {}: opens nothing",
            rule.until.map(|d| d.to_string()).unwrap_or_default()
        );
        return Some(s);
    }
    if rule.action == wardgate_lang::ast::Action::Deny {
        let pairs = rule.src.len() * rule.dst.len();
        let _ = write!(
            s,
            "\n\ncloses these services between {pairs} zone pair{}, whatever `allow` says",
            if pairs == 1 { "" } else { "s" }
        );
        return Some(s);
    }
    let Some(lowered) = &snap.analysis.lowered else {
        return Some(s);
    };
    let cx = Context {
        policy,
        lowered,
        today: Some(snap.today),
    };
    let mut opened = Vec::new();
    for &a in &rule.src {
        for &b in &rule.dst {
            if cx.rule_opens(rule, a, b) {
                opened.push(format!(
                    "`{}` -> `{}`",
                    policy.zone(a).name,
                    policy.zone(b).name
                ));
            }
        }
    }
    if opened.is_empty() {
        s.push_str("\n\nopens nothing: `deny` rules or `isolated` close every pair it names");
    } else {
        let n = opened.len();
        if n > MAX_NAMES {
            opened.truncate(MAX_NAMES);
            opened.push(format!("and {} more", n - MAX_NAMES));
        }
        let _ = write!(
            s,
            "\n\nopens {n} zone pair{}: {}",
            if n == 1 { "" } else { "s" },
            opened.join(", ")
        );
    }
    Some(s)
}

fn days_left(snap: &Snapshot, until: wardgate_lang::date::Date) -> String {
    let days = snap.today.days_until(until);
    let when = match days {
        0 => "expires at the end of today".to_string(),
        1 => "1 day left".to_string(),
        d if d > 1 => format!("{d} days left"),
        -1 => "expired yesterday".to_string(),
        d => format!("expired {} days ago", -d),
    };
    format!("**until {until}**: {when} (today is {})", snap.today)
}
