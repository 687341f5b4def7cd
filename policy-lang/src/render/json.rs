//! `--format json`: one object per run, from the serde structs below (the
//! wire format is documented in `docs/diagnostics.md`). Carries every
//! diagnostic, suppressed ones included and marked.

use serde::Serialize;

use super::counts;
use crate::diagnostic::Diagnostic;
use crate::span::{SourceMap, Span};

/// `check --format json`: one object per run.
#[derive(Serialize, Debug)]
pub struct JsonReport {
    /// Format version; bumped on incompatible changes.
    pub version: u32,
    pub diagnostics: Vec<JsonDiagnostic>,
    /// Errors and warnings that are not suppressed.
    pub errors: usize,
    pub warnings: usize,
    /// Findings acknowledged by a suppression comment (listed, marked).
    pub suppressed: usize,
}

#[derive(Serialize, Debug)]
pub struct JsonDiagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub code: &'static str,
    pub name: &'static str,
    pub severity: &'static str,
    pub message: String,
    /// Text under the primary span.
    pub label: Option<String>,
    pub labels: Vec<JsonLabel>,
    pub help: Option<String>,
    /// The suppression comment that acknowledges this finding, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<JsonSuppression>,
}

#[derive(Serialize, Debug)]
pub struct JsonSuppression {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

#[derive(Serialize, Debug)]
pub struct JsonLabel {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
}

/// The JSON report as a value (for callers that embed it).
#[must_use]
pub fn json_report(diagnostics: &[Diagnostic], sources: &SourceMap) -> JsonReport {
    let path = |s: Span| sources.path(s.file).display().to_string();
    let (errors, warnings) = counts(diagnostics);
    JsonReport {
        version: 1,
        errors,
        warnings,
        suppressed: diagnostics
            .iter()
            .filter(|d| d.suppression.is_some())
            .count(),
        diagnostics: diagnostics
            .iter()
            .map(|d| {
                let (start, end) = (sources.start(d.primary), sources.end(d.primary));
                JsonDiagnostic {
                    file: path(d.primary),
                    line: start.line,
                    column: start.column,
                    end_line: end.line,
                    end_column: end.column,
                    code: d.code,
                    name: d.name,
                    severity: d.severity.as_str(),
                    message: d.message.clone(),
                    label: d.primary_label.clone(),
                    labels: d
                        .labels
                        .iter()
                        .map(|(s, m)| {
                            let (start, end) = (sources.start(*s), sources.end(*s));
                            JsonLabel {
                                file: path(*s),
                                line: start.line,
                                column: start.column,
                                end_line: end.line,
                                end_column: end.column,
                                message: m.clone(),
                            }
                        })
                        .collect(),
                    help: d.help.clone(),
                    suppressed: d.suppression.as_ref().map(|s| JsonSuppression {
                        file: path(s.span),
                        line: sources.start(s.span).line,
                        reason: s.reason.clone(),
                    }),
                }
            })
            .collect(),
    }
}

/// Pretty-printed JSON, newline-terminated.
#[must_use]
pub fn json(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut s =
        serde_json::to_string_pretty(&json_report(diagnostics, sources)).unwrap_or_default();
    s.push('\n');
    s
}
