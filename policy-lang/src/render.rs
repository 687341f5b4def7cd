//! Diagnostic renderers: human text (miette, no colour, fixed width), JSON,
//! SARIF 2.1.0 and GitHub workflow annotations.
//!
//! The machine formats come from the plain serde structs below; their shape
//! is a wire format, documented in `docs/diagnostics.md` (JSON) and by the
//! SARIF 2.1.0 and GitHub specifications.

use std::fmt;
use std::str::FromStr;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::diagnostic::{CodeInfo, Diagnostic, Severity};
use crate::span::{SourceMap, Span};

/// An output format of `wardgate check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
    Sarif,
    Github,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "github" => Ok(Format::Github),
            other => Err(format!(
                "unknown format `{other}` (expected human, json, sarif or github)"
            )),
        }
    }
}

/// Renders diagnostics in a format. `codes` is the registry used for SARIF
/// rule entries (the language's and the compiler's codes).
#[must_use]
pub fn render(
    format: Format,
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    codes: &[&CodeInfo],
) -> String {
    match format {
        Format::Human => human(diagnostics, sources),
        Format::Json => json(diagnostics, sources),
        Format::Sarif => sarif(diagnostics, sources, codes),
        Format::Github => github(diagnostics, sources),
    }
}

// ---------------------------------------------------------------------------
// Human
// ---------------------------------------------------------------------------

/// Width of human output: fixed, so snapshots do not depend on the terminal.
pub const HUMAN_WIDTH: usize = 100;

struct Report {
    message: String,
    code: Option<String>,
    severity: miette::Severity,
    help: Option<String>,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code
            .as_ref()
            .map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

fn source_span(span: Span) -> SourceSpan {
    SourceSpan::new(span.start.into(), span.len())
}

fn named_source(sources: &SourceMap, span: Span) -> NamedSource<String> {
    NamedSource::new(
        sources.path(span.file).display().to_string(),
        sources.text(span.file).to_string(),
    )
}

fn miette_severity(s: Severity) -> miette::Severity {
    match s {
        Severity::Error => miette::Severity::Error,
        Severity::Warning => miette::Severity::Warning,
        Severity::Info => miette::Severity::Advice,
    }
}

fn report(d: &Diagnostic, sources: &SourceMap) -> Report {
    let mut labels = vec![LabeledSpan::new_primary_with_span(
        d.primary_label
            .clone()
            .or_else(|| Some(String::new()))
            .filter(|l| !l.is_empty()),
        source_span(d.primary),
    )];
    let mut related = Vec::new();
    for (span, text) in &d.labels {
        if span.file == d.primary.file {
            labels.push(LabeledSpan::new_with_span(
                Some(text.clone()),
                source_span(*span),
            ));
        } else {
            // miette shows one source per report; a label in another file
            // becomes a note with its own snippet.
            related.push(Report {
                message: text.clone(),
                code: None,
                severity: miette::Severity::Advice,
                help: None,
                source: Some(named_source(sources, *span)),
                labels: vec![LabeledSpan::new_primary_with_span(None, source_span(*span))],
                related: Vec::new(),
            });
        }
    }
    Report {
        message: d.message.clone(),
        code: Some(format!("{}({})", d.code, d.name)),
        severity: miette_severity(d.severity),
        help: d.help.clone(),
        source: Some(named_source(sources, d.primary)),
        labels,
        related,
    }
}

/// Human-readable text: each diagnostic with its source line underlined.
#[must_use]
pub fn human(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(HUMAN_WIDTH)
        .with_links(false)
        .without_syntax_highlighting();
    let mut out = String::new();
    for d in diagnostics {
        let r = report(d, sources);
        if handler.render_report(&mut out, &r).is_err() {
            // Rendering into a String cannot fail; keep the text anyway.
            out.push_str(&d.message);
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// `check --format json`: one object per run.
#[derive(Serialize, Debug)]
pub struct JsonReport {
    /// Format version; bumped on incompatible changes.
    pub version: u32,
    pub diagnostics: Vec<JsonDiagnostic>,
    pub errors: usize,
    pub warnings: usize,
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

fn counts(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    (errors, warnings)
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

// ---------------------------------------------------------------------------
// SARIF 2.1.0
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct SarifLog {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<SarifRun>,
}

#[derive(Serialize)]
struct SarifRun {
    tool: SarifTool,
    results: Vec<SarifResult>,
}

#[derive(Serialize)]
struct SarifTool {
    driver: SarifDriver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifDriver {
    name: &'static str,
    version: &'static str,
    information_uri: &'static str,
    rules: Vec<SarifRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRule {
    id: &'static str,
    name: &'static str,
    short_description: SarifText,
    full_description: SarifText,
    help: SarifText,
    default_configuration: SarifConfig,
}

#[derive(Serialize)]
struct SarifConfig {
    level: &'static str,
}

#[derive(Serialize)]
struct SarifText {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<usize>,
    level: &'static str,
    message: SarifText,
    locations: Vec<SarifLocation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_locations: Vec<SarifLocation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<usize>,
    physical_location: SarifPhysical,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<SarifText>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifPhysical {
    artifact_location: SarifArtifact,
    region: SarifRegion,
}

#[derive(Serialize)]
struct SarifArtifact {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRegion {
    start_line: usize,
    start_column: usize,
    end_line: usize,
    end_column: usize,
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn uri(sources: &SourceMap, span: Span) -> String {
    sources
        .path(span.file)
        .display()
        .to_string()
        .replace('\\', "/")
}

fn sarif_location(
    sources: &SourceMap,
    span: Span,
    id: Option<usize>,
    message: Option<String>,
) -> SarifLocation {
    let (start, end) = (sources.start(span), sources.end(span));
    SarifLocation {
        id,
        physical_location: SarifPhysical {
            artifact_location: SarifArtifact {
                uri: uri(sources, span),
            },
            region: SarifRegion {
                start_line: start.line,
                start_column: start.column,
                end_line: end.line,
                end_column: end.column,
            },
        },
        message: message.map(|text| SarifText { text }),
    }
}

/// A SARIF 2.1.0 log with one run; `codes` become the rule entries (one per
/// code), and each result names its rule by id and index.
#[must_use]
pub fn sarif(diagnostics: &[Diagnostic], sources: &SourceMap, codes: &[&CodeInfo]) -> String {
    let rules = codes
        .iter()
        .map(|c| SarifRule {
            id: c.code,
            name: c.name,
            short_description: SarifText {
                text: c.summary.to_string(),
            },
            full_description: SarifText {
                text: c.explanation.to_string(),
            },
            help: SarifText {
                text: format!("{}\n\nExample:\n{}", c.explanation, c.example),
            },
            default_configuration: SarifConfig {
                level: sarif_level(c.severity),
            },
        })
        .collect();
    let results = diagnostics
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(h);
            }
            SarifResult {
                rule_id: d.code,
                rule_index: codes.iter().position(|c| c.code == d.code),
                level: sarif_level(d.severity),
                message: SarifText { text },
                locations: vec![sarif_location(
                    sources,
                    d.primary,
                    None,
                    d.primary_label.clone(),
                )],
                related_locations: d
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(i, (s, m))| sarif_location(sources, *s, Some(i + 1), Some(m.clone())))
                    .collect(),
            }
        })
        .collect();
    let log = SarifLog {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: vec![SarifRun {
            tool: SarifTool {
                driver: SarifDriver {
                    name: "wardgate",
                    version: env!("CARGO_PKG_VERSION"),
                    information_uri: "https://example.invalid/wardgate",
                    rules,
                },
            },
            results,
        }],
    };
    let mut s = serde_json::to_string_pretty(&log).unwrap_or_default();
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// GitHub workflow annotations
// ---------------------------------------------------------------------------

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=…::message`
/// line per diagnostic (`::warning` and `::notice` for the other severities).
#[must_use]
pub fn github(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let (start, end) = (sources.start(d.primary), sources.end(d.primary));
        let mut message = d.message.clone();
        if let Some(h) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(h);
        }
        out.push_str(&format!(
            "::{kind} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            escape_property(&uri(sources, d.primary)),
            start.line,
            start.column,
            end.line,
            end.column,
            escape_property(&format!("{} {}", d.code, d.name)),
            escape_data(&message),
        ));
    }
    out
}
