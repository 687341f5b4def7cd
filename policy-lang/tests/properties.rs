//! Properties that must hold for every input:
//! - round trip: `parse(fmt(x)) == parse(x)` (spans ignored) and
//!   `fmt(fmt(x)) == fmt(x)` over generated policies written with random
//!   layout and comments;
//! - the parser never panics, on random text and on mutated policies; and
//!   whenever a mutated policy parses cleanly, the round trip holds for it
//!   too;
//! - the renderers never panic, and nothing they print for people holds a
//!   control character other than newline and tab, whatever the text.

use proptest::prelude::*;
use wardgate_lang::ast::{File, is_keyword};
use wardgate_lang::fmt::{format_file, format_source};
use wardgate_lang::parser::{ICMP_TYPES, ICMPV6_TYPES, parse_file};
use wardgate_lang::{Diagnostic, FileId};

fn parse(text: &str) -> (File, Vec<Diagnostic>) {
    parse_file(FileId(0), text)
}

// ---------------------------------------------------------------------------
// Generators: a policy as a list of statements, each a list of tokens.
// ---------------------------------------------------------------------------

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,5}(-[a-z0-9]{1,3})?".prop_filter("keyword", |n| !is_keyword(n))
}

fn string_lit() -> impl Strategy<Value = String> {
    // Printable text with quotes and backslashes, escaped.
    "[ a-zA-Z0-9#\"\\\\.,:{}-]{0,16}"
        .prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}

fn ipv4_prefix() -> impl Strategy<Value = String> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        let addr = std::net::Ipv4Addr::from(a & mask);
        if len == 32 && a % 2 == 0 {
            addr.to_string()
        } else {
            format!("{addr}/{len}")
        }
    })
}

fn ipv6_prefix() -> impl Strategy<Value = String> {
    (any::<u128>(), 0u8..=128, any::<bool>()).prop_map(|(a, len, upper)| {
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        let addr = std::net::Ipv6Addr::from(a & mask).to_string();
        let addr = if upper { addr.to_uppercase() } else { addr };
        format!("{addr}/{len}")
    })
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
        any::<u128>().prop_map(|a| std::net::Ipv6Addr::from(a).to_string()),
        // Embedded IPv4 and full, uncompressed forms.
        any::<u32>().prop_map(|a| format!("::ffff:{}", std::net::Ipv4Addr::from(a))),
        any::<[u16; 8]>().prop_map(|g| g
            .iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")),
    ]
}

fn service_atom() -> impl Strategy<Value = String> {
    let ports = prop_oneof![
        Just(String::new()),
        any::<u16>().prop_map(|p| format!("/{p}")),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("/{}-{}", a.min(b), a.max(b))),
    ];
    prop_oneof![
        (prop_oneof![Just("tcp"), Just("udp"), Just("sctp")], ports)
            .prop_map(|(p, r)| format!("{p}{r}")),
        prop_oneof![
            Just("icmp".to_string()),
            any::<u8>().prop_map(|t| format!("icmp/{t}")),
            (0..ICMP_TYPES.len()).prop_map(|i| format!("icmp/{}", ICMP_TYPES[i].0)),
        ],
        prop_oneof![
            Just("icmpv6".to_string()),
            any::<u8>().prop_map(|t| format!("icmpv6/{t}")),
            (0..ICMPV6_TYPES.len()).prop_map(|i| format!("icmpv6/{}", ICMPV6_TYPES[i].0)),
        ],
        any::<u8>().prop_map(|n| format!("proto/{n}")),
        Just("any".to_string()),
        name(),
    ]
}

fn selector() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        name().prop_map(|n| format!("tag:{n}")),
        Just("world".to_string()),
        Just("any".to_string())
    ]
}

/// A comma-separated list as tokens.
fn list(item: impl Strategy<Value = String>, max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(item, 1..=max).prop_map(|items| {
        let mut out = Vec::new();
        for (i, it) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(",".to_string());
            }
            out.push(it);
        }
        out
    })
}

fn date() -> impl Strategy<Value = String> {
    (2000u16..2100, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

fn zone_item() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        list(prop_oneof![ipv4_prefix(), ipv6_prefix()], 3).prop_map(|l| [
            vec!["networks".to_string()],
            l
        ]
        .concat()),
        list(address(), 3).prop_map(|l| [vec!["hosts".to_string()], l].concat()),
        list(name(), 3).prop_map(|l| [vec!["tags".to_string()], l].concat()),
        prop_oneof![Just("enforce"), Just("monitor")]
            .prop_map(|m| vec!["mode".to_string(), m.to_string()]),
        Just(vec!["isolated".to_string()]),
        prop_oneof![
            Just("life-critical"),
            Just("high"),
            Just("medium"),
            Just("low")
        ]
        .prop_map(|c| vec!["criticality".to_string(), c.to_string()]),
        string_lit().prop_map(|s| vec!["description".to_string(), s]),
    ]
}

fn statement() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        string_lit().prop_map(|s| vec!["include".to_string(), s]),
        string_lit().prop_map(|s| vec!["inventory".to_string(), s]),
        (name(), list(service_atom(), 3)).prop_map(|(n, l)| [
            vec!["service".to_string(), n, "=".to_string()],
            l
        ]
        .concat()),
        (name(), prop::collection::vec(zone_item(), 0..4)).prop_map(|(n, items)| {
            let mut t = vec!["zone".to_string(), n, "{".to_string()];
            t.extend(items.into_iter().flatten());
            t.push("}".to_string());
            t
        }),
        (
            prop_oneof![Just("allow"), Just("deny")],
            list(selector(), 2),
            list(selector(), 2),
            list(service_atom(), 3),
            prop::option::of(date()),
            prop::option::of(string_lit()),
        )
            .prop_map(|(a, src, dst, svc, until, comment)| {
                let mut t = vec![a.to_string()];
                t.extend(src);
                t.push("->".to_string());
                t.extend(dst);
                t.push(":".to_string());
                t.extend(svc);
                if let Some(d) = until {
                    t.push("until".to_string());
                    t.push(d);
                }
                t.extend(comment);
                t
            }),
        (
            prop_oneof![Just("no-flow"), Just("no-path")],
            list(selector(), 2),
            list(selector(), 2)
        )
            .prop_map(|(k, src, dst)| {
                let mut t = vec!["require".to_string(), k.to_string()];
                t.extend(src);
                t.push("->".to_string());
                t.extend(dst);
                t
            }),
    ]
}

/// What separates two tokens: any whitespace, possibly a comment.
fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(" ".to_string()),
        2 => Just("\n".to_string()),
        1 => Just("\n\n".to_string()),
        1 => Just("\t  ".to_string()),
        1 => "[ a-z{}\"#-]{0,10}".prop_map(|c| format!("  #{c}\n")),
    ]
}

/// A policy written with random layout and comments.
fn policy_text() -> impl Strategy<Value = String> {
    prop::collection::vec(statement(), 0..8)
        .prop_flat_map(|stmts| {
            let tokens: Vec<String> = stmts.into_iter().flatten().collect();
            let n = tokens.len();
            (Just(tokens), prop::collection::vec(separator(), n + 1))
        })
        .prop_map(|(tokens, seps)| {
            let mut out = String::new();
            for (t, s) in tokens.iter().zip(&seps) {
                out.push_str(t);
                out.push_str(s);
            }
            if let Some(last) = seps.last()
                && tokens.is_empty()
            {
                out.push_str(last);
            }
            out
        })
}

fn assert_round_trip(text: &str) -> Result<(), TestCaseError> {
    let (ast, diags) = parse(text);
    prop_assert!(
        diags.iter().all(|d| !d.is_error()),
        "generated policy does not parse: {diags:#?}\n{text}"
    );
    let once = format_file(&ast, text);
    let (ast2, diags2) = parse(&once);
    prop_assert!(
        diags2.is_empty(),
        "formatted policy does not parse: {diags2:#?}\n{once}"
    );
    prop_assert_eq!(
        &ast.statements,
        &ast2.statements,
        "formatting changed the policy:\n{}\n---\n{}",
        text,
        once
    );
    let comments: Vec<&str> = ast.comments.iter().map(|c| c.node.as_str()).collect();
    let comments2: Vec<&str> = ast2.comments.iter().map(|c| c.node.as_str()).collect();
    prop_assert_eq!(
        comments,
        comments2,
        "formatting lost or reordered comments:\n{}\n---\n{}",
        text,
        once
    );
    let twice = format_file(&ast2, &once);
    prop_assert_eq!(&once, &twice, "formatting is not idempotent:\n{}", text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn format_round_trips(text in policy_text()) {
        assert_round_trip(&text)?;
    }

    #[test]
    fn parser_never_panics_on_random_text(text in "\\PC{0,200}") {
        let _ = parse(&text);
        let _ = format_source(&text);
    }

    #[test]
    fn renderers_never_panic_nor_print_control_characters(
        text in "([a-z0-9 \\n#\"{}:,./>=-]|\\PC|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]){0,200}",
    ) {
        let loaded = wardgate_lang::parse_str("p\x1b.ward", &text);
        let (d, s) = (&loaded.diagnostics, &loaded.sources);
        for out in [
            wardgate_lang::render::human(d, s),
            wardgate_lang::render::concise(d, s),
            wardgate_lang::render::github(d, s),
        ] {
            let bad = out.chars().find(|c| c.is_control() && *c != '\n' && *c != '\t');
            prop_assert!(bad.is_none(), "{:?} in {:?}", bad, out);
        }
    }

    #[test]
    fn parser_never_panics_on_policy_like_text(text in "[a-z0-9 \\n#\"\\\\{}:,./>=-]{0,300}") {
        let _ = parse(&text);
    }

    #[test]
    fn parser_never_panics_on_mutated_policies(
        text in policy_text(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..6, "\\PC{0,4}"), 1..6),
    ) {
        let mut bytes = text.into_bytes();
        for (at, len, insert) in edits {
            let at = if bytes.is_empty() { 0 } else { at.index(bytes.len() + 1) };
            let end = (at + len).min(bytes.len());
            bytes.splice(at..end, insert.into_bytes());
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (_, diags) = parse(&text);
        if diags.is_empty() {
            assert_round_trip(&text)?;
        }
    }
}
