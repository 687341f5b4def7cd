//! Text to [`ast::File`]: the pest grammar (`ward.pest`), one `visit_<rule>`
//! function per rule, value validation, comment collection and syntax error
//! recovery.
//!
//! Syntax errors become [`Diagnostic`]s that say what was expected in words
//! (never rule names). After an error the parser skips to the next line that
//! starts with a statement keyword and goes on, so one typo does not hide the
//! rest of the file.

use std::net::IpAddr;
use std::str::FromStr;

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::ast::{
    Action, Criticality, File, Host, IcmpType, Ident, Include, Inventory, IpNetwork, Mode, Node,
    PortRange, Require, RequireKind, Rule as RuleStmt, Selector, Service, ServiceAtom, Statement,
    Zone, ZoneItem, is_keyword,
};
use crate::codes;
use crate::date::Date;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "ward.pest"]
struct WardParser;

/// Words that start a statement; error recovery resumes at a line starting
/// with one of them.
const STATEMENT_KEYWORDS: &[&str] = &[
    "include",
    "inventory",
    "service",
    "zone",
    "allow",
    "deny",
    "require",
];

/// Parses one file's text. Never panics; every problem is a diagnostic and
/// the AST holds every statement that could be read.
#[must_use]
pub fn parse_file(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    let scan = scan(file, text);
    let comment_ends = scan
        .comments
        .iter()
        .map(|c| (c.span.start, c.span.end))
        .collect();
    let mut p = Parser {
        file,
        text,
        offset: 0,
        diagnostics: Vec::new(),
        statements: Vec::new(),
        comment_ends,
    };
    p.diagnostics.extend(scan.diagnostics.iter().cloned());
    p.parse_with_recovery(&scan.bad_string_lines);
    let mut out = File {
        id: file,
        statements: p.statements,
        comments: scan.comments,
    };
    out.statements.sort_by_key(|s| s.span.start);
    (out, p.diagnostics)
}

/// Parses one service atom on its own (`tcp/443`), for tools and tests.
pub fn parse_service_atom(file: FileId, text: &str) -> Result<Node<ServiceAtom>, Vec<Diagnostic>> {
    let mut p = Parser {
        file,
        text,
        offset: 0,
        diagnostics: Vec::new(),
        statements: Vec::new(),
        comment_ends: Vec::new(),
    };
    match WardParser::parse(Rule::eof_service, text) {
        Ok(mut pairs) => {
            let eof = pairs.next().expect("entry rule");
            let atom = eof.into_inner().next().expect("service atom");
            match p.visit_service_atom(atom) {
                Some(a) if p.diagnostics.is_empty() => Ok(a),
                _ => Err(p.diagnostics),
            }
        }
        Err(e) => {
            p.syntax_error(&e);
            Err(p.diagnostics)
        }
    }
}

struct Parser<'a> {
    file: FileId,
    text: &'a str,
    /// Byte offset of the chunk being parsed (error recovery parses the rest
    /// of the file from a later statement).
    offset: usize,
    diagnostics: Vec<Diagnostic>,
    statements: Vec<Node<Statement>>,
    /// (start, end) of every comment, sorted by end.
    comment_ends: Vec<(usize, usize)>,
}

// ---------------------------------------------------------------------------
// Lexical scan: comments, unterminated strings, invalid escapes
// ---------------------------------------------------------------------------

struct Scan {
    comments: Vec<Node<String>>,
    diagnostics: Vec<Diagnostic>,
    /// Lines (0-based byte offset of line start) with a string error; a pest
    /// error on such a line is a consequence and is not reported again.
    bad_string_lines: Vec<usize>,
}

fn scan(file: FileId, text: &str) -> Scan {
    let mut out = Scan {
        comments: Vec::new(),
        diagnostics: Vec::new(),
        bad_string_lines: Vec::new(),
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                let body = text[i + 1..end].trim_end();
                let span_end = i + 1 + body.len();
                out.comments
                    .push(Node::new(body.to_string(), Span::new(file, i, span_end)));
                i = end;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            out.diagnostics.push(
                                Diagnostic::new(&codes::UNTERMINATED_STRING, Span::new(file, start, i), "this string is not closed")
                                    .with_primary_label("no closing `\"` on this line")
                                    .with_help("strings end on the line they start on; write a quote inside a string as `\\\"`"),
                            );
                            out.bad_string_lines.push(line_start(text, start));
                            break;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            match bytes.get(i + 1) {
                                Some(b'"' | b'\\') => {}
                                Some(b'\n') | None => {
                                    i += 1;
                                    continue;
                                }
                                Some(_) => {
                                    let ch_len =
                                        text[i + 1..].chars().next().map_or(1, char::len_utf8);
                                    let esc = &text[i..i + 1 + ch_len];
                                    out.diagnostics.push(
                                        Diagnostic::new(
                                            &codes::INVALID_ESCAPE,
                                            Span::new(file, i, i + 1 + ch_len),
                                            format!("`{esc}` is not an escape in a string"),
                                        )
                                        .with_help("the escapes are `\\\"` (a quote) and `\\\\` (a backslash)"),
                                    );
                                    i += 1 + ch_len;
                                    continue;
                                }
                            }
                            i += 2;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn line_start(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].rfind('\n').map_or(0, |n| n + 1)
}

fn line_end(text: &str, pos: usize) -> usize {
    text[pos.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |n| pos + n)
}

/// Whether the line starting at `start` begins (after indentation) with a
/// statement keyword.
fn starts_statement(text: &str, start: usize) -> bool {
    let line = text[start..].trim_start_matches([' ', '\t']);
    STATEMENT_KEYWORDS.iter().any(|kw| {
        line.strip_prefix(kw).is_some_and(|rest| {
            rest.chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        })
    })
}

/// Offset of the first statement line strictly after the line holding `pos`.
fn next_statement_line(text: &str, pos: usize) -> Option<usize> {
    let mut at = line_end(text, pos);
    while at < text.len() {
        let start = at + 1;
        if start >= text.len() {
            return None;
        }
        if starts_statement(text, start) {
            return Some(start);
        }
        at = line_end(text, start);
    }
    None
}

/// The first offset at or after `pos` that is not whitespace or a comment.
fn skip_trivia(text: &str, mut pos: usize) -> usize {
    let bytes = text.as_bytes();
    while pos < bytes.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'#' => pos = text[pos..].find('\n').map_or(bytes.len(), |n| pos + n),
            _ => break,
        }
    }
    pos
}

// ---------------------------------------------------------------------------
// Syntax errors in words
// ---------------------------------------------------------------------------

/// What a rule means to someone writing a policy.
fn describe_rule(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::statement | Rule::eof_statement => {
            "a statement (`zone`, `service`, `allow`, `deny`, `require`, `include` or `inventory`)"
        }
        Rule::zone_item => {
            "a zone item (`networks`, `hosts`, `tags`, `mode`, `isolated`, `criticality`, `description`)"
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

fn join_or(items: &[&str]) -> String {
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

/// Edit distance with adjacent transpositions (optimal string alignment),
/// for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate within a small edit distance (about a third of
/// the word, at least one, at most three edits).
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let len = word.chars().count();
    let limit = if len < 3 { 1 } else { (len / 2).clamp(1, 3) };
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < c.chars().count() && *c != word)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

impl<'a> Parser<'a> {
    /// The span of a pair, without the whitespace and comments that pest's
    /// implicit skipping leaves at the end of a rule followed by `*` or `?`.
    fn span_of(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let start = self.offset + s.start();
        let mut end = self.offset + s.end();
        let bytes = self.text.as_bytes();
        while end > start {
            if bytes[end - 1].is_ascii_whitespace() {
                end -= 1;
            } else if let Ok(i) = self.comment_ends.binary_search_by_key(&end, |c| c.1) {
                end = self.comment_ends[i].0;
            } else {
                break;
            }
        }
        Span::new(self.file, start, end)
    }

    /// Parses statement by statement (pest's token queue then only ever
    /// holds one statement, which keeps memory flat on large policies).
    fn parse_with_recovery(&mut self, bad_string_lines: &[usize]) {
        let text = self.text;
        let mut pos = skip_trivia(text, 0);
        while pos < text.len() {
            self.offset = pos;
            match WardParser::parse(Rule::statement, &text[pos..]) {
                Ok(mut pairs) => {
                    let stmt = pairs.next().expect("statement rule");
                    let end = pos + stmt.as_span().end();
                    self.visit_statement(stmt);
                    pos = skip_trivia(text, end.max(pos + 1));
                }
                Err(e) => {
                    let err_at = pos
                        + match e.location {
                            InputLocation::Pos(p) | InputLocation::Span((p, _)) => p,
                        };
                    if !bad_string_lines.contains(&line_start(text, err_at)) {
                        self.syntax_error(&e);
                    }
                    // Resume at the line of the error if a statement starts
                    // there (a zone missing its `}` before the next zone),
                    // else at the next line that starts a statement.
                    let here = line_start(text, err_at);
                    let resume = if here > pos && starts_statement(text, here) {
                        Some(here)
                    } else {
                        next_statement_line(text, err_at)
                    };
                    match resume {
                        Some(next) if next > pos => pos = skip_trivia(text, next),
                        _ => return,
                    }
                }
            }
        }
    }

    fn syntax_error(&mut self, e: &pest::error::Error<Rule>) {
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

    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    // -----------------------------------------------------------------------
    // Statements
    // -----------------------------------------------------------------------

    fn visit_statement(&mut self, stmt: Pair<'_, Rule>) {
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

    fn visit_include(&mut self, pair: Pair<'_, Rule>) -> Include {
        let s = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .expect("include has a path");
        Include {
            path: self.visit_string(s),
        }
    }

    fn visit_inventory(&mut self, pair: Pair<'_, Rule>) -> Inventory {
        let s = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .expect("inventory has a path");
        Inventory {
            path: self.visit_string(s),
        }
    }

    fn visit_service_def(&mut self, pair: Pair<'_, Rule>) -> Service {
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

    fn visit_zone(&mut self, pair: Pair<'_, Rule>) -> Zone {
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

    fn visit_rule(&mut self, pair: Pair<'_, Rule>) -> RuleStmt {
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

    fn visit_require(&mut self, pair: Pair<'_, Rule>) -> Require {
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

    fn visit_zone_item(&mut self, pair: Pair<'_, Rule>) -> Option<Node<ZoneItem>> {
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
            _ => return None,
        };
        Some(Node::new(item, span))
    }

    // -----------------------------------------------------------------------
    // Services
    // -----------------------------------------------------------------------

    fn visit_service_list(&mut self, pair: Pair<'_, Rule>) -> Vec<Node<ServiceAtom>> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::service_atom)
            .filter_map(|p| self.visit_service_atom(p))
            .collect()
    }

    fn visit_service_atom(&mut self, pair: Pair<'_, Rule>) -> Option<Node<ServiceAtom>> {
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

    fn visit_port_spec(&mut self, pair: Pair<'_, Rule>) -> Option<PortRange> {
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

    fn visit_icmp_type(&mut self, pair: Pair<'_, Rule>, v6: bool) -> Option<IcmpType> {
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

    // -----------------------------------------------------------------------
    // Selectors
    // -----------------------------------------------------------------------

    fn visit_selector_list(&mut self, pair: Pair<'_, Rule>) -> Vec<Node<Selector>> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::selector)
            .filter_map(|p| self.visit_selector(p))
            .collect()
    }

    fn visit_selector(&mut self, pair: Pair<'_, Rule>) -> Option<Node<Selector>> {
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

    // -----------------------------------------------------------------------
    // Literals
    // -----------------------------------------------------------------------

    /// A name being defined (zone, service, tag): keywords are refused.
    fn visit_definition_name(&mut self, pair: Pair<'_, Rule>, what: &str) -> Ident {
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

    fn visit_reference_name(&mut self, pair: Pair<'_, Rule>) -> Ident {
        Node::new(pair.as_str().to_string(), self.span_of(&pair))
    }

    fn visit_string(&mut self, pair: Pair<'_, Rule>) -> Node<String> {
        let span = self.span_of(&pair);
        let raw = pair.into_inner().next().map_or("", |p| p.as_str());
        Node::new(unescape(raw), span)
    }

    fn visit_date(&mut self, pair: Pair<'_, Rule>) -> Option<Node<Date>> {
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

    fn parse_addr(&mut self, text: &str, span: Span) -> Option<IpAddr> {
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

    fn visit_address(&mut self, pair: Pair<'_, Rule>) -> Option<Node<IpAddr>> {
        let span = self.span_of(&pair);
        let addr = self.parse_addr(pair.as_str(), span)?;
        Some(Node::new(addr, span))
    }

    fn visit_prefix(&mut self, pair: Pair<'_, Rule>) -> Option<Node<IpNetwork>> {
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
