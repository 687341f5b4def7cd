//! Completion by context: what may be written where the cursor is.
//!
//! The context is read from the text before the cursor (the statement may
//! be half-typed, so the AST cannot be asked): statement keywords at the
//! start of a line, zone items inside a zone's braces, selectors (zones,
//! `tag:` names, `world`, `any`) in rules and requirements, services after
//! `:` or `=`, ICMP type names after `icmp/`, item values after `mode` and
//! `criticality`.

use lsp_types::{CompletionItem, CompletionItemKind};
use wardgate_lang::parser::{ICMP_TYPES, ICMPV6_TYPES};

use super::documents::Snapshot;
use super::symbols::Kind;

const STATEMENTS: &[&str] = &[
    "zone",
    "service",
    "allow",
    "deny",
    "require",
    "include",
    "inventory",
];
const ZONE_ITEMS: &[&str] = &[
    "networks",
    "hosts",
    "tags",
    "mode",
    "isolated",
    "criticality",
    "description",
    "conntrack-limit",
];
const PROTOCOLS: &[&str] = &["tcp", "udp", "sctp", "icmp", "icmpv6", "proto", "any"];

/// Well-known services of hospital networks: a name and what to write.
pub const WELL_KNOWN: &[(&str, &str)] = &[
    ("dicom", "tcp/104, tcp/11112"),
    ("hl7-mllp", "tcp/2575"),
    ("fhir-https", "tcp/443"),
    ("https", "tcp/443"),
    ("http", "tcp/80"),
    ("ssh", "tcp/22"),
    ("rdp", "tcp/3389"),
    ("dns", "udp/53, tcp/53"),
    ("ntp", "udp/123"),
    ("syslog", "udp/514"),
    ("snmp", "udp/161"),
    ("ldap", "tcp/389"),
    ("ldaps", "tcp/636"),
    ("kerberos", "tcp/88, udp/88"),
    ("smb", "tcp/445"),
    ("bacnet", "udp/47808"),
    ("ping", "icmp/echo-request, icmpv6/echo-request"),
];

/// What the text before the cursor asks for.
#[derive(Debug, PartialEq, Eq)]
enum Context {
    Statement,
    ZoneItem,
    Selector,
    TagName,
    Service,
    Icmp,
    Icmpv6,
    Values(&'static [&'static str]),
    Nothing,
}

fn context(text: &str, offset: usize) -> Context {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    if line.contains('#') || line.matches('"').count() % 2 == 1 {
        return Context::Nothing;
    }
    let word_start = line
        .rfind(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == '=')
        .map_or(0, |i| i + 1);
    let word = &line[word_start..];
    if word.starts_with("icmpv6/") {
        return Context::Icmpv6;
    }
    if word.starts_with("icmp/") {
        return Context::Icmp;
    }
    if line[..word_start].ends_with("tag:") {
        return Context::TagName;
    }
    let head = line.trim_start();
    let first = head.split_whitespace().next().unwrap_or("");
    let in_zone = depth(before) > 0;
    if head.len() == word.len() {
        // The first word of the line.
        return if in_zone {
            Context::ZoneItem
        } else {
            Context::Statement
        };
    }
    match first {
        "mode" if in_zone => Context::Values(&["enforce", "monitor"]),
        "criticality" if in_zone => Context::Values(&["life-critical", "high", "medium", "low"]),
        "require" if !head[first.len()..].trim_start().contains(' ') => {
            Context::Values(&["no-flow", "no-path"])
        }
        "service" if head.contains('=') => Context::Service,
        "allow" | "deny" if head.contains(':') => {
            let after = &head[head.find(':').unwrap_or(0)..];
            if after.contains(" until ") {
                Context::Nothing
            } else {
                Context::Service
            }
        }
        "allow" | "deny" | "require" => Context::Selector,
        _ => Context::Nothing,
    }
}

/// Open zone braces before the offset (comments and strings skipped).
fn depth(before: &str) -> i32 {
    let mut depth = 0;
    for line in before.lines() {
        let mut in_string = false;
        for c in line.chars() {
            match c {
                '"' => in_string = !in_string,
                '#' if !in_string => break,
                '{' if !in_string => depth += 1,
                '}' if !in_string => depth -= 1,
                _ => {}
            }
        }
    }
    depth.max(0)
}

fn item(label: &str, kind: CompletionItemKind, detail: Option<String>) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail,
        ..CompletionItem::default()
    }
}

/// Completions at a byte offset of the root file.
#[must_use]
pub fn complete(snap: &Snapshot, text: &str, offset: usize) -> Vec<CompletionItem> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let keyword = CompletionItemKind::KEYWORD;
    let names = |kind| snap.index.names(kind);
    match context(text, offset) {
        Context::Statement => STATEMENTS.iter().map(|k| item(k, keyword, None)).collect(),
        Context::ZoneItem => ZONE_ITEMS.iter().map(|k| item(k, keyword, None)).collect(),
        Context::Values(values) => values
            .iter()
            .map(|v| item(v, CompletionItemKind::ENUM_MEMBER, None))
            .collect(),
        Context::TagName => names(Kind::Tag)
            .into_iter()
            .map(|t| item(t, CompletionItemKind::ENUM_MEMBER, Some("tag".into())))
            .collect(),
        Context::Selector => {
            let mut out: Vec<CompletionItem> = names(Kind::Zone)
                .into_iter()
                .map(|z| item(z, CompletionItemKind::MODULE, Some("zone".into())))
                .collect();
            for t in names(Kind::Tag) {
                out.push(item(
                    &format!("tag:{t}"),
                    CompletionItemKind::ENUM_MEMBER,
                    Some("tag".into()),
                ));
            }
            out.extend(["world", "any"].iter().map(|k| item(k, keyword, None)));
            out
        }
        Context::Service => {
            let mut out: Vec<CompletionItem> = names(Kind::Service)
                .into_iter()
                .map(|s| {
                    let detail = snap.loaded.policy.service(s).map(|d| {
                        d.atoms
                            .iter()
                            .map(|a| wardgate_lang::fmt::service_atom(&a.node))
                            .collect::<Vec<_>>()
                            .join(", ")
                    });
                    item(s, CompletionItemKind::CONSTANT, detail)
                })
                .collect();
            out.extend(PROTOCOLS.iter().map(|k| item(k, keyword, None)));
            // Well-known services not declared: insert what they stand for.
            let declared = names(Kind::Service);
            for (name, atoms) in WELL_KNOWN {
                if !declared.contains(name) {
                    out.push(CompletionItem {
                        insert_text: Some((*atoms).to_string()),
                        filter_text: Some((*name).to_string()),
                        ..item(
                            name,
                            CompletionItemKind::VALUE,
                            Some(format!("well-known: {atoms}")),
                        )
                    });
                }
            }
            out
        }
        Context::Icmp => icmp(ICMP_TYPES),
        Context::Icmpv6 => icmp(ICMPV6_TYPES),
        Context::Nothing => Vec::new(),
    }
}

fn icmp(types: &[(&str, u8)]) -> Vec<CompletionItem> {
    types
        .iter()
        .map(|(name, n)| {
            item(
                name,
                CompletionItemKind::ENUM_MEMBER,
                Some(format!("type {n}")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(text: &str) -> Context {
        context(text, text.len())
    }

    /// Every zone item the grammar accepts is offered inside a zone.
    #[test]
    fn zone_items_follow_the_grammar() {
        let grammar = include_str!("../../../policy-lang/src/ward.pest");
        let line = grammar
            .lines()
            .find(|l| l.starts_with("zone_item"))
            .expect("zone_item rule");
        let body = line.split_once('{').expect("rule body").1;
        for rule in body.trim_end_matches('}').split('|') {
            let keyword = rule.trim().replace('_', "-");
            assert!(
                ZONE_ITEMS.contains(&keyword.as_str()),
                "`{keyword}` is not offered"
            );
        }
    }

    #[test]
    fn reads_the_context_before_the_cursor() {
        assert_eq!(ctx(""), Context::Statement);
        assert_eq!(ctx("zone a {\n  "), Context::ZoneItem);
        assert_eq!(ctx("zone a {\n  net"), Context::ZoneItem);
        assert_eq!(ctx("zone a { }\nal"), Context::Statement);
        assert_eq!(ctx("allow a, "), Context::Selector);
        assert_eq!(ctx("allow a -> tag:"), Context::TagName);
        assert_eq!(ctx("allow a -> b : "), Context::Service);
        assert_eq!(ctx("allow a -> b : tcp/1, icmp/ec"), Context::Icmp);
        assert_eq!(ctx("service p = icmpv6/"), Context::Icmpv6);
        assert_eq!(
            ctx("zone a {\n  mode "),
            Context::Values(&["enforce", "monitor"])
        );
        assert_eq!(ctx("require "), Context::Values(&["no-flow", "no-path"]));
        assert_eq!(ctx("require no-flow a -> "), Context::Selector);
        assert_eq!(ctx("allow a -> b : x \"why "), Context::Nothing);
        assert_eq!(ctx("# allow "), Context::Nothing);
    }
}
