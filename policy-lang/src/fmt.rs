//! The canonical formatter.
//!
//! One layout for every policy: one statement per line (a zone opens a block
//! with one item per line, indented four spaces), single spaces around `=`,
//! `->` and `:`, `, ` between list elements, prefixes and addresses in their
//! canonical textual form, strings re-escaped. Statements keep their order.
//!
//! Comments stay where they were: a comment on its own line stays on its own
//! line before the statement or zone item that followed it; a comment at the
//! end of a line stays at the end of that statement's or item's line. (A
//! comment in the middle of a statement that spans lines moves to the line
//! before the statement.) Blank lines between statements and between zone
//! items are kept, at most one in a row.
//!
//! The formatter works on a parsed [`File`] whose parse produced no errors:
//! an error means some text could not be represented, and formatting would
//! lose it. [`format_source`] checks that.

use crate::ast::{
    File, Node, Require, Rule, Selector, Service, ServiceAtom, Statement, Zone, ZoneItem,
};
use crate::diagnostic::Diagnostic;
use crate::parser::{escape, parse_file};
use crate::span::{FileId, Span};

const INDENT: &str = "    ";

/// Parses and formats a text; the parse errors if it has any (then nothing
/// can be formatted safely).
pub fn format_source(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (file, diags) = parse_file(FileId(0), text);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(format_file(&file, text))
}

/// The canonical text of a parsed file; `text` is the source it was parsed
/// from (for comment positions and blank lines).
#[must_use]
pub fn format_file(file: &File, text: &str) -> String {
    let mut p = Printer {
        text,
        comments: &file.comments,
        next: 0,
        out: String::new(),
    };
    let pads = alignment(file, text);
    let mut prev_end: Option<usize> = None;
    for (i, (stmt, pad)) in file.statements.iter().zip(pads).enumerate() {
        // A comment is a statement's trailing comment only if it comes
        // before the next statement starts.
        let next_start = file
            .statements
            .get(i + 1)
            .map_or(usize::MAX, |n| n.span.start);
        p.leading(
            stmt.span.start,
            stmt.span.end,
            &mut prev_end,
            "",
            !matches!(stmt.node, Statement::Zone(_)),
        );
        if prev_end.is_some_and(|e| p.blank_between(e, stmt.span.start)) {
            p.out.push('\n');
        }
        match &stmt.node {
            Statement::Zone(z) => p.zone(z, stmt.span.start, stmt.span.end, pad, next_start),
            other => {
                let line = statement_line(other, pad);
                p.out.push_str(&line);
                p.trailing(stmt.span.end, next_start);
                p.out.push('\n');
            }
        }
        prev_end = Some(stmt.span.end);
    }
    p.leading(usize::MAX, usize::MAX, &mut prev_end, "", false);
    p.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Rule,
    CompactZone,
    Other,
}

/// Whether a zone is written on one line: at most one item, no comment
/// between its braces.
fn is_compact(z: &Zone, span: Span, comments: &[Node<String>], text: &str) -> bool {
    let brace = open_brace_end(text, z.name.span.end);
    z.items.len() <= 1
        && !comments
            .iter()
            .any(|c| c.span.start >= brace && c.span.start < span.end)
}

/// Offset just after the `{` of a zone (only whitespace and comments can
/// stand between the name and the brace).
fn open_brace_end(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => return i + 1,
            b'#' => i = text[i..].find('\n').map_or(bytes.len(), |n| i + n),
            _ => i += 1,
        }
    }
    from
}

/// Column padding per statement: consecutive services align their `=`,
/// one-line zones their `{`, rules their trailing string. A run ends at a
/// blank line, a comment line or another kind of statement.
fn alignment(file: &File, text: &str) -> Vec<usize> {
    let stmts = &file.statements;
    let kind = |s: &Node<Statement>| match &s.node {
        Statement::Service(_) => Kind::Service,
        Statement::Rule(_) => Kind::Rule,
        Statement::Zone(z) if is_compact(z, s.span, &file.comments, text) => Kind::CompactZone,
        _ => Kind::Other,
    };
    let width = |s: &Node<Statement>| match &s.node {
        Statement::Service(sv) => sv.name.len(),
        Statement::Zone(z) => z.name.len(),
        Statement::Rule(r) if r.comment.is_some() => rule_line(r, 0).0.chars().count(),
        _ => 0,
    };
    let mut pads = vec![0; stmts.len()];
    let mut i = 0;
    while i < stmts.len() {
        let k = kind(&stmts[i]);
        let mut j = i + 1;
        while j < stmts.len()
            && kind(&stmts[j]) == k
            && !separated(text, &file.comments, &stmts[j - 1], &stmts[j])
        {
            j += 1;
        }
        if k != Kind::Other {
            let w = stmts[i..j].iter().map(width).max().unwrap_or(0);
            pads[i..j].fill(w);
        }
        i = j;
    }
    pads
}

/// Whether a blank line or a comment line stands between two statements.
fn separated(
    text: &str,
    comments: &[Node<String>],
    a: &Node<Statement>,
    b: &Node<Statement>,
) -> bool {
    let gap = text.get(a.span.end..b.span.start).unwrap_or("");
    let mut lines: Vec<&str> = gap.split('\n').skip(1).collect();
    lines.pop(); // the start of `b`'s line
    if lines.iter().any(|l| l.trim().is_empty()) {
        return true;
    }
    // A comment the printer puts on a line of its own between them: any
    // comment from the end of `a` to the end of `b` (comments inside `b`
    // move above it), except the one that trails `a` on its last line.
    let mut after_a = comments
        .iter()
        .filter(|c| c.span.start >= a.span.end && c.span.start < b.span.end);
    match after_a.next() {
        None => false,
        Some(first)
            if first.span.start < b.span.start
                && !text[a.span.end..first.span.start].contains('\n') =>
        {
            after_a.next().is_some()
        }
        Some(_) => true,
    }
}

struct Printer<'a> {
    text: &'a str,
    comments: &'a [Node<String>],
    /// Index of the first comment not yet printed.
    next: usize,
    out: String,
}

impl Printer<'_> {
    /// Whether the source between two offsets holds a blank line.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let Some(gap) = self.text.get(from..to) else {
            return false;
        };
        let mut lines = gap.split('\n');
        lines.next(); // the rest of the line `from` is on
        let mut middle: Vec<&str> = lines.collect();
        middle.pop(); // the line `to` is on
        middle.iter().any(|l| l.trim().is_empty())
    }

    /// Prints the comments before `start` (and, if `inside`, those before
    /// `end` too: comments in the middle of a one-line statement move up).
    fn leading(
        &mut self,
        start: usize,
        end: usize,
        prev_end: &mut Option<usize>,
        indent: &str,
        inside: bool,
    ) {
        let limit = if inside { end } else { start };
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start >= limit {
                break;
            }
            let moved = c.span.start > start;
            if !moved && prev_end.is_some_and(|e| self.blank_between(e, c.span.start)) {
                self.out.push('\n');
            }
            self.out.push_str(indent);
            self.out.push('#');
            self.out.push_str(&c.node);
            self.out.push('\n');
            self.next += 1;
            if !moved {
                *prev_end = Some(c.span.end);
            }
        }
    }

    /// Appends a comment that starts on the same line as `end` (and before
    /// `limit`) to the current line.
    fn trailing(&mut self, end: usize, limit: usize) {
        if let Some(c) = self.comments.get(self.next)
            && c.span.start >= end
            && c.span.start < limit
            && !self.text[end..c.span.start].contains('\n')
        {
            self.out.push_str("  #");
            self.out.push_str(&c.node);
            self.next += 1;
        }
    }

    fn zone(&mut self, z: &Zone, start: usize, end: usize, pad: usize, next_start: usize) {
        let brace = open_brace_end(self.text, z.name.span.end);
        // Comments between `zone` and `{` move above the zone.
        let mut none = None;
        self.leading(start, brace, &mut none, "", true);
        self.out.push_str("zone ");
        self.out.push_str(&z.name);
        let close = end.saturating_sub(1); // the `}`
        if is_compact(
            z,
            Span::new(z.name.span.file, start, end),
            self.comments,
            self.text,
        ) {
            let pad = pad.saturating_sub(z.name.len());
            self.out.push_str(&" ".repeat(pad));
            match z.items.first() {
                Some(item) => {
                    self.out.push_str(" { ");
                    self.out.push_str(&zone_item(&item.node));
                    self.out.push_str(" }");
                }
                None => self.out.push_str(" {}"),
            }
            self.trailing(end, next_start);
            self.out.push('\n');
            return;
        }
        self.out.push_str(" {");
        let first = z.items.first().map_or(close, |i| i.span.start);
        self.trailing(brace, first);
        self.out.push('\n');
        let mut prev_end = Some(brace);
        for (i, item) in z.items.iter().enumerate() {
            self.leading(item.span.start, item.span.end, &mut prev_end, INDENT, true);
            if i > 0 && prev_end.is_some_and(|e| self.blank_between(e, item.span.start)) {
                self.out.push('\n');
            }
            self.out.push_str(INDENT);
            self.out.push_str(&zone_item(&item.node));
            let limit = z.items.get(i + 1).map_or(close, |n| n.span.start);
            self.trailing(item.span.end, limit);
            self.out.push('\n');
            prev_end = Some(item.span.end);
        }
        self.leading(close, close, &mut prev_end, INDENT, false);
        self.out.push('}');
        self.trailing(end, next_start);
        self.out.push('\n');
    }
}

fn join<T>(items: &[Node<T>], f: impl Fn(&T) -> String) -> String {
    items
        .iter()
        .map(|i| f(&i.node))
        .collect::<Vec<_>>()
        .join(", ")
}

fn statement_line(stmt: &Statement, pad: usize) -> String {
    match stmt {
        Statement::Include(i) => format!("include \"{}\"", escape(&i.path)),
        Statement::Inventory(i) => format!("inventory \"{}\"", escape(&i.path)),
        Statement::Service(s) => service_line(s, pad),
        Statement::Rule(r) => {
            let (mut line, comment) = rule_line(r, pad);
            if let Some(c) = comment {
                let width = line.chars().count();
                line.push_str(&" ".repeat(pad.saturating_sub(width) + 1));
                line.push_str(&c);
            }
            line
        }
        Statement::Require(r) => require_line(r),
        Statement::Zone(_) => String::new(),
    }
}

fn service_line(s: &Service, pad: usize) -> String {
    format!(
        "service {:<pad$} = {}",
        s.name.node,
        join(&s.atoms, service_atom)
    )
}

/// A rule without its trailing string, and the string (quoted).
fn rule_line(r: &Rule, _pad: usize) -> (String, Option<String>) {
    let mut line = format!(
        "{} {} -> {} : {}",
        r.action.as_str(),
        join(&r.src, selector),
        join(&r.dst, selector),
        join(&r.services, service_atom)
    );
    if let Some(d) = &r.until {
        line.push_str(&format!(" until {}", d.node));
    }
    (
        line,
        r.comment.as_ref().map(|c| format!("\"{}\"", escape(c))),
    )
}

fn require_line(r: &Require) -> String {
    format!(
        "require {} {} -> {}",
        r.kind.as_str(),
        join(&r.src, selector),
        join(&r.dst, selector)
    )
}

fn selector(s: &Selector) -> String {
    s.to_string()
}

/// The canonical text of a service atom.
#[must_use]
pub fn service_atom(a: &ServiceAtom) -> String {
    let ports = |p: &str, r: &Option<crate::ast::PortRange>| match r {
        Some(r) => format!("{p}/{r}"),
        None => p.to_string(),
    };
    let icmp = |p: &str, t: &Option<crate::ast::IcmpType>| match t {
        Some(t) => format!("{p}/{t}"),
        None => p.to_string(),
    };
    match a {
        ServiceAtom::Named(n) => n.node.clone(),
        ServiceAtom::Tcp(r) => ports("tcp", r),
        ServiceAtom::Udp(r) => ports("udp", r),
        ServiceAtom::Sctp(r) => ports("sctp", r),
        ServiceAtom::Icmp(t) => icmp("icmp", t),
        ServiceAtom::Icmpv6(t) => icmp("icmpv6", t),
        ServiceAtom::Proto(n) => format!("proto/{n}"),
        ServiceAtom::Any => "any".to_string(),
    }
}

fn zone_item(item: &ZoneItem) -> String {
    match item {
        ZoneItem::Networks(n) => format!("networks {}", join(n, ToString::to_string)),
        ZoneItem::Hosts(h) => format!("hosts {}", join(h, |h| h.addr.to_string())),
        ZoneItem::Tags(t) => format!("tags {}", join(t, Clone::clone)),
        ZoneItem::Mode(m) => format!("mode {}", m.as_str()),
        ZoneItem::Isolated => "isolated".to_string(),
        ZoneItem::Criticality(c) => format!("criticality {}", c.as_str()),
        ZoneItem::Description(d) => format!("description \"{}\"", escape(d)),
        ZoneItem::ConntrackLimit(n) => format!("conntrack-limit {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format_source(s).unwrap_or_else(|d| panic!("{d:#?}"))
    }

    #[test]
    fn canonical_layout_and_comments() {
        let src = "# head\n\n\nservice  dicom=tcp/104,tcp/11112 # trailing\nzone pump-server { hosts 10.41.0.10 }  # after\nzone a {  # header\n  # lead\n  networks 10.0.0.0/8,2001:DB8::/32 # item\n\n  tags x\n  # end\n}\nallow a->pump-server:dicom until 2027-01-31 \"why \\\"this\\\"\"\n# tail\n";
        let out = fmt(src);
        insta::assert_snapshot!(out);
        assert_eq!(fmt(&out), out);
    }
}
