//! `visit_` functions for literals: names (keywords refused), strings,
//! dates, addresses and prefixes, with their value checks; string escapes;
//! the ICMP type names.

use std::net::IpAddr;
use std::str::FromStr;

use pest::iterators::Pair;

use super::{Parser, Rule};
use crate::ast::{Ident, IpNetwork, Node, is_keyword};
use crate::codes;
use crate::date::Date;
use crate::diagnostic::Diagnostic;
use crate::span::Span;

impl Parser<'_> {
    /// A name being defined (zone, service, tag): keywords are refused.
    pub(super) fn visit_definition_name(&mut self, pair: Pair<'_, Rule>, what: &str) -> Ident {
        let span = self.span_of(&pair);
        let name = pair.as_str();
        if is_keyword(name) {
            self.error(
                Diagnostic::new(&codes::KEYWORD_AS_NAME, span, format!("`{name}` is a keyword and cannot be a {what} name"))
                    .with_primary_label("keyword")
                    .with_help(if name == "world" {
                        "`world` is the built-in zone of every undeclared address; choose another name, such as `internet`"
                            .to_string()
                    } else {
                        format!("choose another name, such as `{name}-{what}`")
                    }),
            );
        }
        Node::new(name.to_string(), span)
    }

    pub(super) fn visit_reference_name(&mut self, pair: Pair<'_, Rule>) -> Ident {
        Node::new(pair.as_str().to_string(), self.span_of(&pair))
    }

    pub(super) fn visit_string(&mut self, pair: Pair<'_, Rule>) -> Node<String> {
        let span = self.span_of(&pair);
        let raw = pair.into_inner().next().map_or("", |p| p.as_str());
        Node::new(unescape(raw), span)
    }

    pub(super) fn visit_date(&mut self, pair: Pair<'_, Rule>) -> Option<Node<Date>> {
        let span = self.span_of(&pair);
        match Date::from_str(pair.as_str()) {
            Ok(d) => Some(Node::new(d, span)),
            Err(e) => {
                self.error(
                    Diagnostic::new(
                        &codes::INVALID_DATE,
                        span,
                        format!("`{}` is not a date", pair.as_str()),
                    )
                    .with_primary_label(e.to_string())
                    .with_help("dates are `YYYY-MM-DD` and must exist on the calendar"),
                );
                None
            }
        }
    }

    pub(super) fn parse_addr(&mut self, text: &str, span: Span) -> Option<IpAddr> {
        if let Ok(a) = IpAddr::from_str(text) {
            return Some(a);
        }
        let mut d = Diagnostic::new(
            &codes::INVALID_ADDRESS,
            span,
            format!("`{text}` is not an IP address"),
        );
        if text.contains('.') && !text.contains(':') {
            d = d.with_help(
                "an IPv4 address is four numbers 0-255 separated by dots, such as `10.20.0.1`",
            );
        } else {
            d = d.with_help(
                "write an IPv4 address (`10.20.0.1`) or an IPv6 address (`2001:db8::1`)",
            );
        }
        self.error(d);
        None
    }

    pub(super) fn visit_address(&mut self, pair: Pair<'_, Rule>) -> Option<Node<IpAddr>> {
        let span = self.span_of(&pair);
        let addr = self.parse_addr(pair.as_str(), span)?;
        Some(Node::new(addr, span))
    }

    pub(super) fn visit_prefix(&mut self, pair: Pair<'_, Rule>) -> Option<Node<IpNetwork>> {
        let span = self.span_of(&pair);
        let text = pair.as_str();
        let mut addr_text = "";
        let mut len_pair = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::address_token => addr_text = p.as_str(),
                Rule::number => len_pair = Some(p),
                _ => {}
            }
        }
        let addr_span = Span::new(self.file, span.start, span.start + addr_text.len());
        let addr = self.parse_addr(addr_text, addr_span)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_pair {
            None => max,
            Some(n) => {
                let nspan = self.span_of(&n);
                match n.as_str().parse::<u8>() {
                    Ok(l) if l <= max => l,
                    _ => {
                        let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                        self.error(
                            Diagnostic::new(
                                &codes::PREFIX_LENGTH_OUT_OF_RANGE,
                                nspan,
                                format!(
                                    "prefix length `/{}` is too long for an {family} address",
                                    n.as_str()
                                ),
                            )
                            .with_primary_label(format!("not in 0-{max}"))
                            .with_help(format!("an {family} prefix length is 0-{max}")),
                        );
                        return None;
                    }
                }
            }
        };
        let net = IpNetwork::new(addr, len).ok()?;
        let network = IpNetwork::new(net.network(), len).ok()?;
        if network.ip() != addr {
            self.error(
                Diagnostic::new(
                    &codes::HOST_BITS_SET,
                    span,
                    format!("prefix `{text}` has host bits set"),
                )
                .with_primary_label(format!("bits after /{len} are not zero"))
                .with_help(format!(
                    "write the network `{network}`, or the single host `{addr}`"
                )),
            );
            return None;
        }
        Some(Node::new(network, span))
    }
}

/// Resolves `\"` and `\\`; any other backslash is kept as written (the
/// scanner reported it).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes a string for writing back between quotes.
#[must_use]
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// ICMP (v4) type names, as nftables spells them.
pub const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

/// ICMPv6 type names, as nftables spells them.
pub const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
];
