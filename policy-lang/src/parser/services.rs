//! `visit_` functions for services: lists, atoms, port ranges and ICMP
//! types, with their value checks.

use pest::iterators::Pair;

use super::errors::join_or;
use super::literals::{ICMP_TYPES, ICMPV6_TYPES};
use super::{Parser, Rule};
use crate::ast::{IcmpType, Node, PortRange, ServiceAtom};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::suggest::suggest;

impl Parser<'_> {
    pub(super) fn visit_service_list(&mut self, pair: Pair<'_, Rule>) -> Vec<Node<ServiceAtom>> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::service_atom)
            .filter_map(|p| self.visit_service_atom(p))
            .collect()
    }

    pub(super) fn visit_service_atom(&mut self, pair: Pair<'_, Rule>) -> Option<Node<ServiceAtom>> {
        let span = self.span_of(&pair);
        let inner = pair
            .into_inner()
            .next()
            .expect("service atom has one child");
        let atom = match inner.as_rule() {
            Rule::port_service => {
                let mut proto = "";
                let mut range = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::port_proto => proto = p.as_str(),
                        Rule::port_spec => range = Some(self.visit_port_spec(p)?),
                        _ => {}
                    }
                }
                match proto {
                    "tcp" => ServiceAtom::Tcp(range),
                    "udp" => ServiceAtom::Udp(range),
                    _ => ServiceAtom::Sctp(range),
                }
            }
            Rule::icmp_service => {
                let mut v6 = false;
                let mut ty = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::icmp_proto => v6 = p.as_str() == "icmpv6",
                        Rule::icmp_type => ty = Some(self.visit_icmp_type(p, v6)?),
                        _ => {}
                    }
                }
                if v6 {
                    ServiceAtom::Icmpv6(ty)
                } else {
                    ServiceAtom::Icmp(ty)
                }
            }
            Rule::proto_service => {
                let n = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::number)
                    .expect("proto number");
                let span = self.span_of(&n);
                match n.as_str().parse::<u8>() {
                    Ok(v) => ServiceAtom::Proto(v),
                    Err(_) => {
                        self.error(
                            Diagnostic::new(
                                &codes::INVALID_PROTOCOL,
                                span,
                                format!("protocol number `{}` is out of range", n.as_str()),
                            )
                            .with_primary_label("not in 0-255")
                            .with_help(
                                "IP protocol numbers are 0-255, for example `proto/50` for ESP",
                            ),
                        );
                        return None;
                    }
                }
            }
            Rule::any_service => ServiceAtom::Any,
            Rule::service_name => {
                let name = inner.into_inner().next().expect("service name");
                ServiceAtom::Named(self.visit_reference_name(name))
            }
            _ => return None,
        };
        Some(Node::new(atom, span))
    }

    pub(super) fn visit_port_spec(&mut self, pair: Pair<'_, Rule>) -> Option<PortRange> {
        let span = self.span_of(&pair);
        let mut ports = Vec::new();
        for n in pair.into_inner().filter(|p| p.as_rule() == Rule::number) {
            let nspan = self.span_of(&n);
            if let Ok(v) = n.as_str().parse::<u16>() {
                ports.push(v);
            } else {
                self.error(
                    Diagnostic::new(
                        &codes::PORT_OUT_OF_RANGE,
                        nspan,
                        format!("port `{}` is out of range", n.as_str()),
                    )
                    .with_primary_label("not in 0-65535")
                    .with_help("ports are 0-65535"),
                );
                return None;
            }
        }
        let range = match ports[..] {
            [p] => PortRange::single(p),
            [low, high] => PortRange { low, high },
            _ => return None,
        };
        if range.low > range.high {
            self.error(
                Diagnostic::new(
                    &codes::PORT_RANGE_REVERSED,
                    span,
                    format!("port range `{}-{}` runs backwards", range.low, range.high),
                )
                .with_primary_label("low port above high port")
                .with_help(format!("write `{}-{}`", range.high, range.low)),
            );
            return None;
        }
        Some(range)
    }

    pub(super) fn visit_icmp_type(&mut self, pair: Pair<'_, Rule>, v6: bool) -> Option<IcmpType> {
        let span = self.span_of(&pair);
        let text = pair.as_str();
        let proto = if v6 { "icmpv6" } else { "icmp" };
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(value) = text.parse::<u8>() {
                return Some(IcmpType { value, name: None });
            }
            self.error(
                Diagnostic::new(
                    &codes::UNKNOWN_ICMP_TYPE,
                    span,
                    format!("{proto} type `{text}` is out of range"),
                )
                .with_primary_label("not in 0-255")
                .with_help("ICMP types are 0-255"),
            );
            return None;
        }
        let table = if v6 { ICMPV6_TYPES } else { ICMP_TYPES };
        if let Some((name, value)) = table.iter().find(|(n, _)| *n == text) {
            return Some(IcmpType {
                value: *value,
                name: Some((*name).to_string()),
            });
        }
        let mut d = Diagnostic::new(
            &codes::UNKNOWN_ICMP_TYPE,
            span,
            format!("unknown {proto} type `{text}`"),
        )
        .with_primary_label("not a known type name");
        let prefixed: Vec<String> = table
            .iter()
            .filter(|(n, _)| n.starts_with(text))
            .map(|(n, _)| format!("`{n}`"))
            .collect();
        d = match suggest(text, table.iter().map(|(n, _)| *n)) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None if !prefixed.is_empty() => d.with_help(format!(
                "did you mean {}?",
                join_or(&prefixed.iter().map(String::as_str).collect::<Vec<_>>())
            )),
            None => d.with_help(format!(
                "write the type as a number, or one of {}",
                table
                    .iter()
                    .take(6)
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + ", ..."
            )),
        };
        self.error(d);
        None
    }
}
