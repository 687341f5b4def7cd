//! `visit_` functions for statements, zone items and selectors.

use pest::iterators::Pair;

use super::{Parser, Rule};
use crate::ast::{
    Action, Criticality, Host, Include, Inventory, Mode, Node, Require, RequireKind,
    Rule as RuleStmt, Selector, Service, Statement, Zone, ZoneItem,
};
use crate::{codes, diagnostic::Diagnostic};

impl Parser<'_> {
    pub(super) fn visit_statement(&mut self, stmt: Pair<'_, Rule>) {
        let span = self.span_of(&stmt);
        let inner = stmt.into_inner().next().expect("statement has one child");
        let node = match inner.as_rule() {
            Rule::include => Statement::Include(self.visit_include(inner)),
            Rule::inventory => Statement::Inventory(self.visit_inventory(inner)),
            Rule::service_def => Statement::Service(self.visit_service_def(inner)),
            Rule::zone => Statement::Zone(self.visit_zone(inner)),
            Rule::rule_stmt => Statement::Rule(self.visit_rule(inner)),
            Rule::require => Statement::Require(self.visit_require(inner)),
            _ => return,
        };
        self.statements.push(Node::new(node, span));
    }

    pub(super) fn visit_include(&mut self, pair: Pair<'_, Rule>) -> Include {
        let s = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .expect("include has a path");
        Include {
            path: self.visit_string(s),
        }
    }

    pub(super) fn visit_inventory(&mut self, pair: Pair<'_, Rule>) -> Inventory {
        let s = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .expect("inventory has a path");
        Inventory {
            path: self.visit_string(s),
        }
    }

    pub(super) fn visit_service_def(&mut self, pair: Pair<'_, Rule>) -> Service {
        let mut name = None;
        let mut atoms = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.visit_definition_name(p, "service")),
                Rule::service_list => atoms = self.visit_service_list(p),
                _ => {}
            }
        }
        Service {
            name: name.expect("service has a name"),
            atoms,
        }
    }

    pub(super) fn visit_zone(&mut self, pair: Pair<'_, Rule>) -> Zone {
        let mut name = None;
        let mut items = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.visit_definition_name(p, "zone")),
                Rule::zone_item => {
                    if let Some(item) = self.visit_zone_item(p) {
                        items.push(item);
                    }
                }
                _ => {}
            }
        }
        Zone {
            name: name.expect("zone has a name"),
            items,
        }
    }

    pub(super) fn visit_rule(&mut self, pair: Pair<'_, Rule>) -> RuleStmt {
        let mut action = None;
        let mut lists = Vec::new();
        let mut services = Vec::new();
        let mut until = None;
        let mut comment = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::action => {
                    let span = self.span_of(&p);
                    let a = if p.as_str() == "allow" {
                        Action::Allow
                    } else {
                        Action::Deny
                    };
                    action = Some(Node::new(a, span));
                }
                Rule::selector_list => lists.push(self.visit_selector_list(p)),
                Rule::service_list => services = self.visit_service_list(p),
                Rule::until => {
                    let date = p
                        .into_inner()
                        .find(|d| d.as_rule() == Rule::date)
                        .expect("until has a date");
                    until = self.visit_date(date);
                }
                Rule::string => comment = Some(self.visit_string(p)),
                _ => {}
            }
        }
        let dst = lists.pop().unwrap_or_default();
        let src = lists.pop().unwrap_or_default();
        RuleStmt {
            action: action.expect("rule has an action"),
            src,
            dst,
            services,
            until,
            comment,
        }
    }

    pub(super) fn visit_require(&mut self, pair: Pair<'_, Rule>) -> Require {
        let mut kind = None;
        let mut lists = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::require_kind => {
                    let span = self.span_of(&p);
                    let k = if p.as_str() == "no-flow" {
                        RequireKind::NoFlow
                    } else {
                        RequireKind::NoPath
                    };
                    kind = Some(Node::new(k, span));
                }
                Rule::selector_list => lists.push(self.visit_selector_list(p)),
                _ => {}
            }
        }
        let dst = lists.pop().unwrap_or_default();
        let src = lists.pop().unwrap_or_default();
        Require {
            kind: kind.expect("require has a kind"),
            src,
            dst,
        }
    }

    // -----------------------------------------------------------------------
    // Zone items
    // -----------------------------------------------------------------------

    pub(super) fn visit_zone_item(&mut self, pair: Pair<'_, Rule>) -> Option<Node<ZoneItem>> {
        let span = self.span_of(&pair);
        let inner = pair.into_inner().next().expect("zone item has one child");
        let item = match inner.as_rule() {
            Rule::networks => {
                let nets = inner
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::prefix)
                    .filter_map(|p| self.visit_prefix(p))
                    .collect();
                ZoneItem::Networks(nets)
            }
            Rule::hosts => {
                let hosts = inner
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::address)
                    .filter_map(|p| self.visit_address(p).map(|a| a.map(Host::new)))
                    .collect();
                ZoneItem::Hosts(hosts)
            }
            Rule::tags => {
                let tags = inner
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::name)
                    .map(|p| self.visit_definition_name(p, "tag"))
                    .collect();
                ZoneItem::Tags(tags)
            }
            Rule::mode => {
                let v = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::mode_value)
                    .expect("mode value");
                ZoneItem::Mode(if v.as_str() == "monitor" {
                    Mode::Monitor
                } else {
                    Mode::Enforce
                })
            }
            Rule::isolated => ZoneItem::Isolated,
            Rule::criticality => {
                let v = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::criticality_value)
                    .expect("criticality value");
                ZoneItem::Criticality(match v.as_str() {
                    "life-critical" => Criticality::LifeCritical,
                    "high" => Criticality::High,
                    "medium" => Criticality::Medium,
                    _ => Criticality::Low,
                })
            }
            Rule::description => {
                let s = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::string)
                    .expect("description string");
                ZoneItem::Description(self.visit_string(s).node)
            }
            Rule::conntrack_limit => {
                let n = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::number)
                    .expect("conntrack limit number");
                let nspan = self.span_of(&n);
                match n.as_str().parse::<u32>() {
                    Ok(v) if v > 0 => ZoneItem::ConntrackLimit(v),
                    _ => {
                        self.error(
                            Diagnostic::new(
                                &codes::INVALID_CONNTRACK_LIMIT,
                                nspan,
                                format!("conntrack limit `{}` is out of range", n.as_str()),
                            )
                            .with_primary_label("not in 1-4294967295")
                            .with_help("a limit counts connections: write a number from 1 up; leave the item out for no limit of the zone's own"),
                        );
                        return None;
                    }
                }
            }
            _ => return None,
        };
        Some(Node::new(item, span))
    }

    // -----------------------------------------------------------------------
    // Selectors
    // -----------------------------------------------------------------------

    pub(super) fn visit_selector_list(&mut self, pair: Pair<'_, Rule>) -> Vec<Node<Selector>> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::selector)
            .filter_map(|p| self.visit_selector(p))
            .collect()
    }

    pub(super) fn visit_selector(&mut self, pair: Pair<'_, Rule>) -> Option<Node<Selector>> {
        let span = self.span_of(&pair);
        let inner = pair.into_inner().next().expect("selector has one child");
        let sel = match inner.as_rule() {
            Rule::tag_selector => {
                let name = inner.into_inner().next().expect("tag name");
                Selector::Tag(self.visit_reference_name(name))
            }
            Rule::kw_world => Selector::World,
            Rule::kw_any => Selector::Any,
            Rule::zone_name => {
                let name = inner.into_inner().next().expect("zone name");
                Selector::Zone(self.visit_reference_name(name))
            }
            _ => return None,
        };
        Some(Node::new(sel, span))
    }
}
