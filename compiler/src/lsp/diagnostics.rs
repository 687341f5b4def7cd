//! The compiler's diagnostics as LSP diagnostics, grouped by file.
//!
//! A diagnostic's labels become related information: for a requirement
//! proof, one entry per hop of the counter-example chain, pointing at the
//! rule that opens it. The help line follows the message.

use std::collections::BTreeMap;

use lsp_types::{
    Diagnostic as LspDiagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag,
    Location, NumberOrString, Url,
};
use wardgate_lang::{Diagnostic, FileId, Severity, SourceMap, Span};

use super::documents::{Snapshot, uri_of};
use super::position::LineIndex;

/// The diagnostics of a snapshot by file: the root file always (maybe with
/// none), then every other file that has some.
#[must_use]
pub fn by_file(snapshot: &Snapshot) -> BTreeMap<FileId, Vec<LspDiagnostic>> {
    let sources = &snapshot.loaded.sources;
    let mut out: BTreeMap<FileId, Vec<LspDiagnostic>> = BTreeMap::new();
    out.insert(FileId(0), Vec::new());
    let indexes: Vec<LineIndex> = sources
        .ids()
        .map(|id| LineIndex::new(sources.text(id)))
        .collect();
    for d in &snapshot.diagnostics {
        if d.suppression.is_some() {
            continue;
        }
        out.entry(d.primary.file)
            .or_default()
            .push(convert(d, sources, &indexes));
    }
    out
}

fn range(indexes: &[LineIndex], span: Span) -> lsp_types::Range {
    indexes[span.file.0 as usize].range(span.start, span.end)
}

/// One diagnostic, its spans converted with each file's line index.
#[must_use]
pub fn convert(d: &Diagnostic, sources: &SourceMap, indexes: &[LineIndex]) -> LspDiagnostic {
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter_map(|(span, text)| {
            Some(DiagnosticRelatedInformation {
                location: Location::new(uri_of(sources.path(span.file))?, range(indexes, *span)),
                message: text.clone(),
            })
        })
        .collect();
    LspDiagnostic {
        range: range(indexes, d.primary),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Info => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("wardgate".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        // A statement that does nothing is shown faded.
        tags: super::actions::removable(d.code).then(|| vec![DiagnosticTag::UNNECESSARY]),
        data: Some(serde_json::json!({ "name": d.name })),
    }
}

/// The URI a file's diagnostics are published to.
#[must_use]
pub fn file_uri(snapshot: &Snapshot, root: &Url, file: FileId) -> Option<Url> {
    if file == FileId(0) {
        Some(root.clone())
    } else {
        uri_of(snapshot.loaded.sources.path(file))
    }
}
