//! Syntax errors in words: what pest expected, described for someone writing
//! a policy (never rule names), the token found, and a "did you mean" when a
//! keyword is close.

use pest::error::{ErrorVariant, InputLocation};

use super::{Parser, Rule, STATEMENT_KEYWORDS};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::Span;
use crate::suggest::suggest;

/// What a rule means to someone writing a policy.
fn describe_rule(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::statement | Rule::eof_statement => {
            "a statement (`zone`, `service`, `allow`, `deny`, `require`, `include` or `inventory`)"
        }
        Rule::zone_item => {
            "a zone item (`networks`, `hosts`, `tags`, `mode`, `isolated`, `criticality`, `description`, `conntrack-limit`)"
        }
        Rule::rbrace => "`}`",
        Rule::lbrace => "`{`",
        Rule::equals => "`=`",
        Rule::arrow => "`->`",
        Rule::colon => "`:`",
        Rule::name | Rule::service_name => "a name",
        Rule::selector
        | Rule::selector_list
        | Rule::zone_name
        | Rule::tag_selector
        | Rule::eof_selector => "a selector (a zone name, `tag:NAME`, `world` or `any`)",
        Rule::service_atom
        | Rule::service_list
        | Rule::port_service
        | Rule::icmp_service
        | Rule::proto_service
        | Rule::any_service
        | Rule::eof_service => {
            "a service (a service name, `tcp/PORT`, `udp/PORT`, `icmp/TYPE`, `proto/NUMBER` or `any`)"
        }
        Rule::port_spec | Rule::number => "a port number",
        Rule::icmp_type => "an ICMP type (a number or a name such as `echo-request`)",
        Rule::string | Rule::string_raw => "a quoted string",
        Rule::date => "a date (`YYYY-MM-DD`)",
        Rule::until | Rule::kw_until => "`until DATE`",
        Rule::prefix | Rule::eof_prefix => "an address or prefix (`10.20.0.0/24`, `2001:db8::/64`)",
        Rule::address | Rule::address_token => "an address (`10.20.0.1`, `2001:db8::1`)",
        Rule::mode_value => "`enforce` or `monitor`",
        Rule::criticality_value => "`life-critical`, `high`, `medium` or `low`",
        Rule::require_kind | Rule::kw_no_flow | Rule::kw_no_path => "`no-flow` or `no-path`",
        Rule::action | Rule::kw_allow | Rule::kw_deny => "`allow` or `deny`",
        Rule::EOI => "the end of the file",
        Rule::kw_include => "`include`",
        Rule::kw_inventory => "`inventory`",
        Rule::kw_service => "`service`",
        Rule::kw_zone => "`zone`",
        Rule::kw_require => "`require`",
        Rule::kw_networks => "`networks`",
        Rule::kw_hosts => "`hosts`",
        Rule::kw_tags => "`tags`",
        Rule::kw_mode => "`mode`",
        Rule::kw_isolated => "`isolated`",
        Rule::kw_criticality => "`criticality`",
        Rule::kw_description => "`description`",
        Rule::kw_conntrack_limit => "`conntrack-limit`",
        Rule::kw_world => "`world`",
        Rule::kw_any => "`any`",
        _ => return None,
    })
}

/// The words a rule's failure suggests as corrections (for "did you mean").
fn rule_words(r: Rule) -> &'static [&'static str] {
    match r {
        Rule::statement => STATEMENT_KEYWORDS,
        Rule::zone_item => &[
            "networks",
            "hosts",
            "tags",
            "mode",
            "isolated",
            "criticality",
            "description",
            "conntrack-limit",
        ],
        Rule::mode_value => &["enforce", "monitor"],
        Rule::criticality_value => &["life-critical", "high", "medium", "low"],
        Rule::require_kind => &["no-flow", "no-path"],
        Rule::until => &["until"],
        Rule::service_atom | Rule::service_list => {
            &["tcp", "udp", "sctp", "icmp", "icmpv6", "proto", "any"]
        }
        Rule::selector | Rule::selector_list => &["world", "any"],
        _ => &[],
    }
}

pub(super) fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {}", rest.join(", "), last),
    }
}

/// The token at `pos`, for "found `...`": a word, a punctuation mark, or end
/// of file.
fn token_at(text: &str, pos: usize) -> (usize, usize) {
    let rest = &text[pos..];
    let Some(first) = rest.chars().next() else {
        return (pos, pos);
    };
    let len = if first.is_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
            .unwrap_or(rest.len())
    } else if rest.starts_with("->") {
        2
    } else {
        first.len_utf8()
    };
    let mut end = pos + len.min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (pos, end)
}

impl Parser<'_> {
    pub(super) fn syntax_error(&mut self, e: &pest::error::Error<Rule>) {
        let at = self.offset
            + match e.location {
                InputLocation::Pos(p) | InputLocation::Span((p, _)) => p,
            };
        let positives: Vec<Rule> = match &e.variant {
            ErrorVariant::ParsingError { positives, .. } => positives.clone(),
            ErrorVariant::CustomError { message } => {
                // pest's own limits (its stack guard, a call limit): not a
                // mistake in the text, so say so rather than guess one.
                let (start, end) = token_at(self.text, at);
                self.diagnostics.push(
                    Diagnostic::new(
                        &codes::SYNTAX_ERROR,
                        Span::new(self.file, start, end),
                        format!("this statement is too large to parse ({message})"),
                    )
                    .with_primary_label("parsing stopped here")
                    .with_help("split the statement into smaller ones"),
                );
                return;
            }
        };
        let mut expected: Vec<&str> = Vec::new();
        for r in &positives {
            if let Some(d) = describe_rule(*r)
                && !expected.contains(&d)
            {
                expected.push(d);
            }
        }
        // "end of the file" is noise next to "a statement".
        if expected.len() > 1 {
            expected.retain(|d| *d != "the end of the file");
        }
        // Descriptions first, single tokens (`}`) last.
        expected.sort_by_key(|d| d.starts_with('`'));
        let (start, end) = token_at(self.text, at);
        let found = &self.text[start..end];
        // At the end of the file, underline the last character written, so
        // the snippet shows where the text stops.
        let (start, end) = if found.is_empty() {
            let last = self.text.trim_end();
            let ch = last.chars().next_back().map_or(0, char::len_utf8);
            (last.len() - ch, last.len())
        } else {
            (start, end)
        };
        let found_words = if found.is_empty() {
            "the end of the file".to_string()
        } else {
            format!("`{found}`")
        };
        let message = if expected.is_empty() {
            format!("unexpected {found_words}")
        } else {
            format!("expected {}, found {found_words}", join_or(&expected))
        };
        let mut d = Diagnostic::new(
            &codes::SYNTAX_ERROR,
            Span::new(self.file, start, end),
            message,
        )
        .with_primary_label(if found.is_empty() {
            "the file ends here"
        } else {
            "not expected here"
        });
        let word = found.split(['/', ':']).next().unwrap_or(found);
        let candidates = positives
            .iter()
            .flat_map(|r| rule_words(*r).iter().copied());
        if let Some(s) = suggest(word, candidates) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if positives.contains(&Rule::rbrace)
            && found.chars().next().is_some_and(|c| c.is_ascii_hexdigit())
        {
            d = d.with_help("separate the items of a list with commas");
        }
        self.diagnostics.push(d);
    }
}
