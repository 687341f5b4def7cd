//! Human-readable diagnostics: miette's graphical handler (no colour, fixed
//! width) over [`Excerpt`]s.
//!
//! Each diagnostic shows the lines its labels are on. Labels within a few
//! lines of each other share one snippet; labels far apart (or in another
//! file) get a snippet of their own below, so two rules 40,000 lines apart
//! print two short snippets, never the lines between them. Columns in
//! headers count characters, as in every other format.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceSpan};

use super::excerpt::{CONTEXT_LINES, Excerpt, MAX_GAP_LINES, MAX_SPAN_LINES, sanitize};
use crate::diagnostic::{Diagnostic, Severity};
use crate::span::{SourceMap, Span};

/// Width of human output: fixed, so snapshots do not depend on the terminal.
pub const HUMAN_WIDTH: usize = 100;

struct Report {
    message: String,
    code: Option<String>,
    severity: miette::Severity,
    help: Option<String>,
    source: Option<Excerpt>,
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

fn miette_severity(s: Severity) -> miette::Severity {
    match s {
        Severity::Error => miette::Severity::Error,
        Severity::Warning => miette::Severity::Warning,
        Severity::Info => miette::Severity::Advice,
    }
}

/// One label of a diagnostic, its span shortened to [`MAX_SPAN_LINES`].
struct Mark {
    span: Span,
    first_line: usize,
    last_line: usize,
    text: Option<String>,
    primary: bool,
    /// Position in the diagnostic's label list (the primary label is 0).
    order: usize,
}

/// Labels close enough to share a snippet.
struct Cluster {
    marks: Vec<Mark>,
    first_line: usize,
    last_line: usize,
}

fn mark(sources: &SourceMap, span: Span, text: Option<&str>, primary: bool, order: usize) -> Mark {
    let file = sources.file(span.file);
    let first_line = file.line_of(span.start);
    let mut last_line = file.line_of(span.end.saturating_sub(1).max(span.start));
    let mut span = span;
    if last_line + 1 - first_line > MAX_SPAN_LINES {
        span.end = file.line_bounds(first_line).1.max(span.start);
        last_line = first_line;
    }
    Mark {
        span,
        first_line,
        last_line,
        text: text.filter(|t| !t.is_empty()).map(|t| sanitize(t, false)),
        primary,
        order,
    }
}

/// Groups marks by file, then into runs of nearby lines.
fn clusters(mut marks: Vec<Mark>) -> Vec<Cluster> {
    marks.sort_by_key(|m| (m.span.file, m.first_line, m.order));
    let mut out: Vec<Cluster> = Vec::new();
    for m in marks {
        if let Some(c) = out.last_mut()
            && c.marks[0].span.file == m.span.file
            && m.first_line <= c.last_line + MAX_GAP_LINES
        {
            c.last_line = c.last_line.max(m.last_line);
            c.marks.push(m);
            continue;
        }
        out.push(Cluster {
            first_line: m.first_line,
            last_line: m.last_line,
            marks: vec![m],
        });
    }
    out
}

/// The excerpt of a cluster and its labels in excerpt offsets.
fn snippet<'c>(sources: &SourceMap, c: &'c Cluster) -> (Excerpt, Vec<(SourceSpan, &'c Mark)>) {
    let id = c.marks[0].span.file;
    let file = sources.file(id);
    let points: Vec<usize> = c
        .marks
        .iter()
        .flat_map(|m| [m.span.start, m.span.end])
        .collect();
    let name = sanitize(&sources.path(id).display().to_string(), false);
    let excerpt = Excerpt::new(
        name,
        file,
        c.first_line.saturating_sub(CONTEXT_LINES),
        c.last_line + CONTEXT_LINES,
        &points,
    );
    let spans = c
        .marks
        .iter()
        .map(|m| {
            let s = excerpt.map(m.first_line, m.span.start);
            let e = excerpt.map(file.line_of(m.span.end), m.span.end).max(s);
            (SourceSpan::new(s.into(), e - s), m)
        })
        .collect();
    (excerpt, spans)
}

fn report(d: &Diagnostic, sources: &SourceMap) -> Report {
    let mut marks = vec![mark(
        sources,
        d.primary,
        d.primary_label.as_deref(),
        true,
        0,
    )];
    for (i, (span, text)) in d.labels.iter().enumerate() {
        marks.push(mark(sources, *span, Some(text), false, i + 1));
    }
    let mut clusters = clusters(marks);
    clusters.sort_by_key(|c| {
        (
            !c.marks.iter().any(|m| m.primary),
            c.marks.iter().map(|m| m.order).min(),
        )
    });
    let mut main = Report {
        message: sanitize(&d.message, true),
        code: Some(format!("{}({})", d.code, d.name)),
        severity: miette_severity(d.severity),
        help: d.help.as_deref().map(|h| sanitize(h, true)),
        source: None,
        labels: Vec::new(),
        related: Vec::new(),
    };
    for (i, c) in clusters.iter().enumerate() {
        let (excerpt, spans) = snippet(sources, c);
        if i == 0 {
            main.labels = spans
                .into_iter()
                .map(|(s, m)| {
                    if m.primary {
                        LabeledSpan::new_primary_with_span(m.text.clone(), s)
                    } else {
                        LabeledSpan::new_with_span(m.text.clone(), s)
                    }
                })
                .collect();
            main.source = Some(excerpt);
        } else {
            // A snippet of its own, titled by its first label.
            let first = c.marks.iter().map(|m| m.order).min();
            let mut message = String::new();
            let labels = spans
                .into_iter()
                .map(|(s, m)| {
                    if Some(m.order) == first {
                        message = m.text.clone().unwrap_or_default();
                        LabeledSpan::new_primary_with_span(None, s)
                    } else {
                        LabeledSpan::new_with_span(m.text.clone(), s)
                    }
                })
                .collect();
            main.related.push(Report {
                message,
                code: None,
                severity: miette::Severity::Advice,
                help: None,
                source: Some(excerpt),
                labels,
                related: Vec::new(),
            });
        }
    }
    main
}

/// Renders one diagnostic (newline-terminated).
pub(super) fn render_one(out: &mut String, d: &Diagnostic, sources: &SourceMap) {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(HUMAN_WIDTH)
        .with_links(false)
        .without_syntax_highlighting();
    let r = report(d, sources);
    if handler.render_report(out, &r).is_err() {
        // Rendering into a String fails only if an excerpt cannot be read;
        // keep the message anyway.
        out.push_str(&sanitize(&d.message, true));
    }
    out.push('\n');
}
