//! `--format github`: GitHub workflow annotation commands, one line per
//! diagnostic.

use super::excerpt::sanitize;
use super::{MAX_SHOWN, shown, too_many, uri};
use crate::diagnostic::{Diagnostic, Severity};
use crate::span::SourceMap;

/// Escapes `%`, CR and LF as the workflow command syntax asks; other control
/// characters become visible pictures, so nothing reaches the log raw.
fn escape_data(s: &str) -> String {
    let escaped = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    sanitize(&escaped, false)
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=…::message`
/// line per diagnostic (`::warning` and `::notice` for the other severities).
#[must_use]
pub fn github(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    let shown = shown(diagnostics);
    for d in shown.iter().take(MAX_SHOWN) {
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
    if let Some(line) = too_many(&shown) {
        out.push_str(&format!(
            "::warning title=wardgate::{}\n",
            escape_data(&line)
        ));
    }
    out
}
