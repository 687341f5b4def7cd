//! `--format sarif`: a SARIF 2.1.0 log with one run. Carries every
//! diagnostic; suppressed ones carry a `suppressions` entry.

use serde::Serialize;

use super::uri;
use crate::diagnostic::{CodeInfo, Diagnostic, Severity};
use crate::span::{SourceMap, Span};

/// Where each rule is documented: `helpUri` is this with `#wgNNN`.
pub const DOCS_URI: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/blob/main/docs/diagnostics.md"
);

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
    help_uri: String,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressions: Vec<SarifSuppression>,
}

/// SARIF §3.35: a finding acknowledged in the source.
#[derive(Serialize)]
struct SarifSuppression {
    kind: &'static str,
    justification: String,
    location: SarifLocation,
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
            help_uri: format!("{DOCS_URI}#{}", c.code.to_lowercase()),
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
                suppressions: d
                    .suppression
                    .iter()
                    .map(|s| SarifSuppression {
                        kind: "inSource",
                        justification: s.reason.clone(),
                        location: sarif_location(sources, s.span, None, None),
                    })
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
                    information_uri: env!("CARGO_PKG_REPOSITORY"),
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
