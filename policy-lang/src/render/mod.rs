//! Diagnostic renderers: human text (miette, no colour, fixed width), one
//! line per diagnostic (`concise`), JSON, SARIF 2.1.0 and GitHub workflow
//! annotations.
//!
//! The machine formats come from plain serde structs; their shape is a wire
//! format, documented in `docs/diagnostics.md` (JSON) and by the SARIF 2.1.0
//! and GitHub specifications.
//!
//! Everything printed for people is safe for a terminal: control characters
//! in source text, messages and paths are shown as visible pictures (see
//! [`excerpt::sanitize`]). Human and GitHub output show the first
//! [`MAX_SHOWN`] diagnostics and then one line counting the rest; JSON, SARIF
//! and concise output carry every diagnostic.

mod excerpt;
mod github;
mod human;
mod json;
mod sarif;

use std::fmt::Write as _;
use std::str::FromStr;

pub use excerpt::sanitize;
pub use github::github;
pub use human::HUMAN_WIDTH;
pub use json::{JsonDiagnostic, JsonLabel, JsonReport, json, json_report};
pub use sarif::{DOCS_URI, sarif};

use crate::diagnostic::{CodeInfo, Diagnostic, Severity};
use crate::span::{SourceMap, Span};

/// Human and GitHub output show this many diagnostics, then a count of the
/// rest (as compilers stop after their first errors).
pub const MAX_SHOWN: usize = 100;

/// An output format of `wardgate check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Concise,
    Json,
    Sarif,
    Github,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(Format::Human),
            "concise" => Ok(Format::Concise),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "github" => Ok(Format::Github),
            other => Err(format!(
                "unknown format `{other}` (expected human, concise, json, sarif or github)"
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
        Format::Concise => concise(diagnostics, sources),
        Format::Json => json(diagnostics, sources),
        Format::Sarif => sarif(diagnostics, sources, codes),
        Format::Github => github(diagnostics, sources),
    }
}

/// Human-readable text: each diagnostic with its source lines underlined;
/// after [`MAX_SHOWN`] diagnostics, one line counts the rest.
#[must_use]
pub fn human(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    let shown = shown(diagnostics);
    for d in shown.iter().take(MAX_SHOWN) {
        human::render_one(&mut out, d, sources);
    }
    if let Some(line) = too_many(&shown) {
        out.push_str(&line);
        out.push_str("\n\n");
    }
    out
}

/// One line per diagnostic: `file:line:col: severity[CODE] message`.
#[must_use]
pub fn concise(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for d in shown(diagnostics) {
        let at = sources.start(d.primary);
        let _ = writeln!(
            out,
            "{}:{}:{}: {}[{}] {}",
            sanitize(&sources.path(d.primary.file).display().to_string(), false),
            at.line,
            at.column,
            d.severity,
            d.code,
            sanitize(&d.message, false),
        );
    }
    out
}

/// The diagnostics people see: suppressed findings are left out.
fn shown(diagnostics: &[Diagnostic]) -> Vec<&Diagnostic> {
    diagnostics
        .iter()
        .filter(|d| d.suppression.is_none())
        .collect()
}

/// The line that counts the diagnostics past [`MAX_SHOWN`], if any.
fn too_many(shown: &[&Diagnostic]) -> Option<String> {
    let rest = shown.get(MAX_SHOWN..)?;
    if rest.is_empty() {
        return None;
    }
    let errors = rest
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = rest
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let notes = rest.len() - errors - warnings;
    let mut parts = vec![plural(errors, "error"), plural(warnings, "warning")];
    if notes > 0 {
        parts.push(plural(notes, "note"));
    }
    Some(format!(
        "too many diagnostics: {} more not shown ({}); `--format json` or `--format concise` lists them all",
        rest.len(),
        parts.join(", ")
    ))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// (errors, warnings) among diagnostics that are not suppressed.
pub(crate) fn counts(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let shown = shown(diagnostics);
    let errors = shown
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = shown
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    (errors, warnings)
}

/// A file's path as a URI reference (forward slashes).
pub(crate) fn uri(sources: &SourceMap, span: Span) -> String {
    sources
        .path(span.file)
        .display()
        .to_string()
        .replace('\\', "/")
}
