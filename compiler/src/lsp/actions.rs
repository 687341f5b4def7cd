//! Quick fixes for findings whose fix is mechanical:
//!
//! - remove a statement that does nothing: a rule shadowed by `deny`
//!   (WG501), a redundant rule (WG502), an unused service (WG503), an
//!   expired rule (WG506);
//! - replace a misspelt name by the one the diagnostic suggests (`did you
//!   mean `x`?`).

use std::collections::HashMap;

use lsp_types::{CodeAction, CodeActionKind, TextEdit, Url, WorkspaceEdit};
use wardgate_lang::{CodeInfo, Diagnostic, FileId};

use super::diagnostics::convert;
use super::documents::Snapshot;
use super::position::LineIndex;
use crate::lints;

/// Findings fixed by removing their statement.
const REMOVABLE: &[&CodeInfo] = &[
    &lints::shadowed_by_deny::CODE,
    &lints::redundant_rule::CODE,
    &lints::unused_service::CODE,
    &lints::expired_rule::CODE,
];

/// Whether a finding's fix is to remove its statement.
#[must_use]
pub fn removable(code: &str) -> bool {
    REMOVABLE.iter().any(|c| c.code == code)
}

/// The quick fixes for the root file's findings that touch `start..end`.
#[must_use]
pub fn actions(snap: &Snapshot, uri: &Url, start: usize, end: usize) -> Vec<CodeAction> {
    let sources = &snap.loaded.sources;
    let text = snap.root_text();
    let idx = LineIndex::new(text);
    let indexes: Vec<LineIndex> = sources
        .ids()
        .map(|id| LineIndex::new(sources.text(id)))
        .collect();
    let mut out = Vec::new();
    for d in &snap.diagnostics {
        let p = d.primary;
        if p.file != FileId(0) || d.suppression.is_some() || p.start > end || start > p.end {
            continue;
        }
        let Some((title, edit)) = fix(snap, text, d) else {
            continue;
        };
        let edit = TextEdit::new(idx.range(edit.0, edit.1), edit.2);
        out.push(CodeAction {
            title,
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![convert(d, sources, &indexes)]),
            edit: Some(WorkspaceEdit {
                changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                ..WorkspaceEdit::default()
            }),
            is_preferred: Some(true),
            ..CodeAction::default()
        });
    }
    out
}

/// A fix's title and its edit: replace `start..end` with the text.
fn fix(snap: &Snapshot, text: &str, d: &Diagnostic) -> Option<(String, (usize, usize, String))> {
    if removable(d.code) {
        let file = snap.loaded.files.first()?;
        let stmt = file.statements.iter().find(|s| {
            s.span.start <= d.primary.start && d.primary.start < s.span.end.max(s.span.start + 1)
        })?;
        let (a, b) = whole_lines(text, stmt.span.start, stmt.span.end);
        let what = match &stmt.node {
            wardgate_lang::ast::Statement::Service(s) => {
                format!("remove unused service `{}`", s.name.node)
            }
            _ if d.code == lints::expired_rule::CODE.code => "remove the expired rule".to_string(),
            _ => "remove the rule that does nothing".to_string(),
        };
        return Some((what, (a, b, String::new())));
    }
    let help = d.help.as_deref()?;
    let name = help.strip_prefix("did you mean `")?.strip_suffix("`?")?;
    Some((
        format!("replace with `{name}`"),
        (d.primary.start, d.primary.end, name.to_string()),
    ))
}

/// `start..end` widened to whole lines (with the newline) when nothing
/// else is on them, so that removing a statement leaves no blank line.
fn whole_lines(text: &str, start: usize, end: usize) -> (usize, usize) {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let a = if text[line_start..start].trim().is_empty() {
        line_start
    } else {
        start
    };
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    let rest = text[end..line_end].trim();
    let b = if rest.is_empty() || rest.starts_with('#') {
        line_end
    } else {
        end
    };
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_takes_whole_lines() {
        let text = "a\n  allow x -> y : any # why\nb\n";
        let start = text.find("allow").unwrap();
        let end = text.find(" #").unwrap();
        assert_eq!(&text[..whole_lines(text, start, end).0], "a\n");
        assert_eq!(&text[whole_lines(text, start, end).1..], "b\n");
    }
}
