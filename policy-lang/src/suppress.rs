//! Suppression comments: a finding acknowledged in the policy, with a reason.
//!
//! ```ward
//! # wardgate: allow(WG502) "vendor maintenance window, ticket 123"
//! allow vendor -> pumps : tcp/443 until 2027-01-31
//! allow lab -> lis : tcp/443   # wardgate: allow(redundant-rule) "kept for the audit trail"
//! ```
//!
//! A comment `# wardgate: allow(CODE, ...) "reason"` on a line of its own
//! acknowledges the findings of those codes (codes or names) on the next
//! statement (inside a zone's braces: on the next line); at the end of a
//! line it acknowledges those on that line. Only warnings and notes can be
//! acknowledged. An acknowledged finding stays in JSON and SARIF output,
//! marked, and is counted neither as a warning nor an error.
//!
//! Two steps, because the language crate does not know the compiler's
//! codes: [`collect`] reads the comments while loading and reports the ones
//! that are malformed or give no reason; [`apply`] marks the findings once
//! every diagnostic is known and reports unknown codes and error codes.

use crate::ast::File;
use crate::codes;
use crate::diagnostic::{CodeInfo, Diagnostic, Severity, Suppression};
use crate::span::{SourceMap, Span};

/// What a comment starts with to be a suppression.
pub const PREFIX: &str = "wardgate:";

/// One suppression comment, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressionComment {
    /// The comment.
    pub span: Span,
    /// Each code or name listed, with its span.
    pub codes: Vec<(String, Span)>,
    pub reason: String,
    /// Findings whose primary span starts in this byte range are
    /// acknowledged.
    pub covers: Span,
}

/// Reads the suppression comments of parsed files. Malformed comments and
/// comments without a reason are reported (WG225) and do not suppress.
#[must_use]
pub fn collect(files: &[File], sources: &SourceMap) -> (Vec<SuppressionComment>, Vec<Diagnostic>) {
    let mut found = Vec::new();
    let mut diags = Vec::new();
    for file in files {
        let text = sources.text(file.id);
        for c in &file.comments {
            let body = c.node.trim_start();
            let Some(rest) = body.strip_prefix(PREFIX) else {
                continue;
            };
            // Offset of `rest` in the file: `#`, the skipped spaces, the prefix.
            let at = c.span.start + 1 + (c.node.len() - body.len()) + PREFIX.len();
            match parse(rest, at, c.span) {
                Ok((codes, reason)) => found.push(SuppressionComment {
                    span: c.span,
                    codes,
                    reason,
                    covers: covers(file, text, c.span),
                }),
                Err(d) => diags.push(*d),
            }
        }
    }
    (found, diags)
}

/// The codes (each with its span) and the reason of a suppression comment.
type Parsed = (Vec<(String, Span)>, String);

/// Parses `allow(CODE, ...) "reason"` starting at file offset `at`.
fn parse(rest: &str, at: usize, comment: Span) -> Result<Parsed, Box<Diagnostic>> {
    let malformed = || {
        Box::new(
            Diagnostic::new(
                &codes::INVALID_SUPPRESSION,
                comment,
                "this suppression comment cannot be read",
            )
            .with_primary_label("not `wardgate: allow(CODE) \"reason\"`")
            .with_help("write `# wardgate: allow(WG502) \"why this finding is accepted\"`"),
        )
    };
    let lead = rest.len() - rest.trim_start().len();
    let Some(list) = rest.trim_start().strip_prefix("allow(") else {
        return Err(malformed());
    };
    let list_at = at + lead + "allow(".len();
    let Some(close) = list.find(')') else {
        return Err(malformed());
    };
    let mut codes = Vec::new();
    let mut offset = 0;
    for part in list[..close].split(',') {
        let word = part.trim();
        let start = list_at + offset + (part.len() - part.trim_start().len());
        offset += part.len() + 1;
        if word.is_empty() {
            return Err(malformed());
        }
        codes.push((
            word.to_string(),
            Span::new(comment.file, start, start + word.len()),
        ));
    }
    let after = list[close + 1..].trim();
    let reason = after
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .map(str::trim)
        .unwrap_or("");
    if reason.is_empty() {
        return Err(if after.is_empty() || after.starts_with('"') {
            Box::new(Diagnostic::new(
                &codes::INVALID_SUPPRESSION,
                comment,
                "this suppression gives no reason",
            )
            .with_primary_label("no reason")
            .with_help("say why the finding is accepted: `# wardgate: allow(WG502) \"vendor window, ticket 123\"`"))
        } else {
            malformed()
        });
    }
    Ok((codes, reason.to_string()))
}

/// The byte range a comment acknowledges findings in: its own line when it
/// ends a line of code; else the next statement, or, inside a statement
/// (a zone's braces), the next line of code.
fn covers(file: &File, text: &str, comment: Span) -> Span {
    let line_start = text[..comment.start].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..comment.start].trim().is_empty() {
        return Span::new(comment.file, line_start, comment.end);
    }
    let inside = file
        .statements
        .iter()
        .any(|s| s.span.start < comment.start && comment.start < s.span.end);
    if !inside && let Some(next) = file.statements.iter().find(|s| s.span.start >= comment.end) {
        return next.span;
    }
    // The next line that holds something other than a comment.
    let mut at = comment.end;
    while at < text.len() {
        let start = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[start..end].trim();
        if !line.is_empty() && !line.starts_with('#') {
            return Span::new(comment.file, start, end);
        }
        at = end;
    }
    Span::new(comment.file, comment.end, comment.end)
}

/// Marks the findings the comments acknowledge and returns the problems
/// with the comments themselves: unknown codes and error codes (WG225).
/// `codes` is the whole registry (the language's and the compiler's).
pub fn apply(
    comments: &[SuppressionComment],
    diagnostics: &mut [Diagnostic],
    registry: &[&CodeInfo],
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for c in comments {
        let mut allowed: Vec<&str> = Vec::new();
        for (word, span) in &c.codes {
            match crate::codes::lookup(registry, word) {
                None => problems.push(
                    Diagnostic::new(
                        &codes::INVALID_SUPPRESSION,
                        *span,
                        format!("`{word}` is not a wardgate diagnostic code"),
                    )
                    .with_primary_label("unknown code")
                    .with_help("name a code such as `WG502` or a name such as `redundant-rule`; `docs/diagnostics.md` lists them"),
                ),
                Some(info) if info.severity == Severity::Error => problems.push(
                    Diagnostic::new(
                        &codes::INVALID_SUPPRESSION,
                        *span,
                        format!("`{word}` is an error, and errors cannot be suppressed"),
                    )
                    .with_primary_label("an error code")
                    .with_help("fix the error; only warnings and notes can be acknowledged"),
                ),
                Some(info) => allowed.push(info.code),
            }
        }
        for d in diagnostics.iter_mut() {
            if d.severity != Severity::Error
                && d.suppression.is_none()
                && allowed.contains(&d.code)
                && d.primary.file == c.covers.file
                && c.covers.start <= d.primary.start
                && d.primary.start <= c.covers.end
            {
                d.suppression = Some(Suppression {
                    span: c.span,
                    reason: c.reason.clone(),
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    const LINT: CodeInfo = CodeInfo {
        code: "WG599",
        name: "test-lint",
        severity: Severity::Warning,
        summary: "",
        explanation: "",
        example: "",
    };

    /// A finding of `LINT` at the first occurrence of `at` in `text`, then
    /// whether the comments in `text` acknowledge it.
    fn acknowledged(text: &str, at: &str) -> bool {
        let loaded = parse_str("t.ward", text);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        let start = text.find(at).expect("marker");
        let mut diags = vec![Diagnostic::new(
            &LINT,
            Span::new(crate::FileId(0), start, start + at.len()),
            "m",
        )];
        let problems = apply(&loaded.suppressions, &mut diags, &[&LINT]);
        assert!(problems.is_empty(), "{problems:#?}");
        diags[0].suppression.is_some()
    }

    #[test]
    fn a_comment_line_covers_the_next_statement() {
        let text = "# wardgate: allow(WG599) \"r\"\nzone a {\n    hosts 10.0.0.1\n}\nzone b { }\n";
        assert!(acknowledged(text, "hosts"));
        assert!(!acknowledged(text, "zone b"));
    }

    #[test]
    fn inside_braces_a_comment_line_covers_the_next_line() {
        let text = "zone a {\n    # wardgate: allow(test-lint) \"r\"\n    hosts 10.0.0.1\n    networks 10.1.0.0/16\n}\n";
        assert!(acknowledged(text, "hosts"));
        assert!(!acknowledged(text, "networks"));
    }

    #[test]
    fn a_trailing_comment_covers_its_line_only() {
        let text = "zone a { hosts 10.0.0.1 }  # wardgate: allow(WG599) \"r\"\nzone b { }\n";
        assert!(acknowledged(text, "hosts"));
        assert!(!acknowledged(text, "zone b"));
    }

    #[test]
    fn other_comments_are_not_suppressions() {
        let loaded = parse_str(
            "t.ward",
            "# wardgate allows this\n# note: wardgate: allow(x)\nzone a { hosts 10.0.0.1 }\n",
        );
        assert!(loaded.suppressions.is_empty());
        assert!(loaded.diagnostics.is_empty());
    }
}
