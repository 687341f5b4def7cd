//! The lexical pass before pest: comments, unterminated strings and invalid
//! escapes (reported once, here, rather than as pest's confused errors), and
//! the line helpers error recovery uses.

use super::STATEMENT_KEYWORDS;
use crate::ast::Node;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};

pub(super) struct Scan {
    pub(super) comments: Vec<Node<String>>,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// Lines (0-based byte offset of line start, ascending) with a string
    /// error; a pest error on such a line is a consequence and is not
    /// reported again.
    pub(super) bad_string_lines: Vec<usize>,
}

pub(super) fn scan(file: FileId, text: &str) -> Scan {
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

pub(super) fn line_start(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].rfind('\n').map_or(0, |n| n + 1)
}

pub(super) fn line_end(text: &str, pos: usize) -> usize {
    text[pos.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |n| pos + n)
}

/// Whether the line starting at `start` begins (after indentation) with a
/// statement keyword.
pub(super) fn starts_statement(text: &str, start: usize) -> bool {
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
pub(super) fn next_statement_line(text: &str, pos: usize) -> Option<usize> {
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
pub(super) fn skip_trivia(text: &str, mut pos: usize) -> usize {
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
