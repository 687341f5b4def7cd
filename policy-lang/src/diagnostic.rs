//! Diagnostics as values, shared by the language crate and the compiler.
//!
//! A [`Diagnostic`] has a stable code (`WG206`), a kebab-case name
//! (`host-bits-set`), a severity, a message, a primary span and optional
//! labels on other spans and a help line. Constructors take the code from a
//! [`CodeInfo`] registry entry so that code, name and severity cannot
//! disagree. Renderers live in [`crate::render`].
//!
//! Message style: lowercase, no final period, user input in backticks, no
//! Rust type names; advice goes in `help`, other places in labels.

use std::fmt;

use crate::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registry entry: everything that is known about a code before any input.
///
/// The language's codes are in [`crate::codes::ALL`]; the compiler defines
/// its own list of the same type. `docs/diagnostics.md` is generated from
/// these entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// `WGnnn`: 1xx syntax, 2xx names/values/includes/inventory (language),
    /// 3xx resolution, 4xx requirements, 5xx lints (compiler). Never reused.
    pub code: &'static str,
    /// kebab-case, describes the bad pattern.
    pub name: &'static str,
    pub severity: Severity,
    /// One line: what is reported.
    pub summary: &'static str,
    /// Why it matters and how to fix it (Markdown).
    pub explanation: &'static str,
    /// A small policy that triggers it.
    pub example: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub message: String,
    pub primary: Span,
    /// Text under the primary span's underline, if any.
    pub primary_label: Option<String>,
    /// Other places, each with its text.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
    /// Set when a suppression comment in the policy acknowledges this
    /// finding: it is then listed by JSON and SARIF only, and counts as
    /// neither an error nor a warning.
    pub suppression: Option<Suppression>,
}

/// A finding acknowledged in the policy by a comment
/// (`# wardgate: allow(WG502) "reason"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// The suppression comment.
    pub span: Span,
    /// Why the finding is accepted, as written in the comment.
    pub reason: String,
}

impl Diagnostic {
    /// A diagnostic of the registry entry `info`, with its default severity.
    #[must_use]
    pub fn new(info: &CodeInfo, primary: Span, message: impl Into<String>) -> Self {
        Self {
            code: info.code,
            name: info.name,
            severity: info.severity,
            message: message.into(),
            primary,
            primary_label: None,
            labels: Vec::new(),
            help: None,
            suppression: None,
        }
    }

    #[must_use]
    pub fn with_primary_label(mut self, label: impl Into<String>) -> Self {
        self.primary_label = Some(label.into());
        self
    }

    #[must_use]
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error && self.suppression.is_none()
    }

    /// A warning that no suppression comment acknowledges.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning && self.suppression.is_none()
    }
}

/// Sorts diagnostics by file, position, then code, for stable output.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.primary.file, a.primary.start, a.code, &a.message).cmp(&(
            b.primary.file,
            b.primary.start,
            b.code,
            &b.message,
        ))
    });
}
