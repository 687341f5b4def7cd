//! Text to [`ast::File`]: the pest grammar (`ward.pest`), one `visit_<rule>`
//! function per rule, value validation, comment collection and syntax error
//! recovery.
//!
//! This module drives the parse (statement by statement, with recovery);
//! the work is in its submodules:
//!
//! - `scan`: the lexical pass before pest (comments, unterminated strings,
//!   invalid escapes) and the line helpers recovery uses;
//! - `errors`: pest's failures as messages in words, with suggestions;
//! - `statements`: `visit_` functions for statements, zone items and
//!   selectors;
//! - `services`: service lists, ports and ICMP types;
//! - `literals`: names, strings, dates, addresses and prefixes.
//!
//! Syntax errors become [`Diagnostic`]s that say what was expected in words
//! (never rule names). After an error the parser skips to the next line that
//! starts with a statement keyword and goes on, so one typo does not hide the
//! rest of the file.

use pest::Parser as _;
use pest::error::InputLocation;
use pest::iterators::Pair;

use crate::ast::{File, Node, ServiceAtom, Statement};
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

mod errors;
mod literals;
mod scan;
mod services;
mod statements;

pub use literals::{ICMP_TYPES, ICMPV6_TYPES, escape};
use scan::{line_start, next_statement_line, scan, skip_trivia, starts_statement};

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
            // pest sees the text up to the next line that starts a
            // statement, never the rest of the file: a statement cannot
            // run into such a line, and pest's error path scans its input
            // from the end (on the rest of the file, 50,000 syntax errors
            // took minutes).
            let chunk_end = next_statement_line(text, pos).unwrap_or(text.len());
            match WardParser::parse(Rule::statement, &text[pos..chunk_end]) {
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
                    // Sorted (scanned in order): a binary search keeps
                    // 50,000 string errors linear-ish.
                    if bad_string_lines
                        .binary_search(&line_start(text, err_at))
                        .is_err()
                    {
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

    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }
}
