//! The evidence pack (`wardgate report --format html|json`): what an auditor
//! asks for, computed from the policy itself.
//!
//! [`Evidence::new`] gathers, from an [`Analysis`], the zone inventory, the
//! conduit register (every `allow` rule with its justification), the
//! requirement proofs, the exceptions (`until` rules), the exposure report
//! and, when given, the agent's status as enforcement evidence. It is plain
//! data (serde: the JSON form); [`html::render`] writes the self-contained
//! HTML document and [`svg::diagram`] the zone-and-conduit diagram in it.
//! Everything is linear in the size of the policy (no per-zone-pair work),
//! so the pack of a 20,000-zone policy costs about what `check` does.

pub mod html;
pub mod svg;

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use wardgate_lang::SourceMap;

use crate::analysis::{Analysis, hop_text};
use crate::graph::Proof;
use crate::model::{Action, Date, Policy, RequireKind, Zone};
use crate::reach::Reach;
use crate::views::report::{self, Report};

/// What the pack says about its own making: the policy's files and their
/// hashes, the commit, the date.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// The root policy file as given.
    pub policy: String,
    /// sha256 of every file read (root, includes, inventories), in load order.
    pub files: Vec<FileHash>,
    /// The policy image's content hash (`sha256:...`), as `wardgate-agent
    /// status` shows the policy in force.
    pub image_hash: Option<String>,
    /// `git rev-parse HEAD` where the policy lives, with `-dirty` when the
    /// policy's files have uncommitted changes.
    pub commit: Option<String>,
    /// The date expiry is judged against (`--today`).
    pub today: Option<String>,
    /// `wardgate VERSION`.
    pub generator: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
}

impl Meta {
    /// Hashes every file of `sources`.
    #[must_use]
    pub fn of_sources(sources: &SourceMap) -> Vec<FileHash> {
        sources
            .ids()
            .map(|id| FileHash {
                path: sources.path(id).display().to_string(),
                sha256: hex(&Sha256::digest(sources.text(id).as_bytes())),
            })
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One zone of the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneEntry {
    pub name: String,
    pub description: Option<String>,
    pub prefixes: Vec<String>,
    /// Devices the inventory files put in this zone.
    pub devices: usize,
    pub tags: Vec<String>,
    pub criticality: Option<String>,
    /// `enforce` or `monitor`.
    pub mode: &'static str,
    pub isolated: bool,
    /// `world`, `vendor`, `untrusted` or `internal`: where the diagram puts it.
    pub kind: &'static str,
    /// `file:line` of the `zone` statement (`None` for `world`).
    pub origin: Option<String>,
}

/// One conduit: an `allow` rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conduit {
    pub from: String,
    pub to: String,
    pub services: Vec<String>,
    /// The rule's quoted reason.
    pub justification: Option<String>,
    pub until: Option<String>,
    pub origin: String,
    pub text: String,
}

/// One requirement and its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequirementEntry {
    pub text: String,
    pub kind: &'static str,
    /// `pass`, `fail`, or `not-enforced` (holds by the rules, but a zone in
    /// monitor mode opens a chain at run time).
    pub status: &'static str,
    /// The shortest violating chain, hop by hop (`a -> b (file:line)`).
    pub chain: Vec<String>,
    pub origin: String,
}

/// A rule with an expiry date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exception {
    pub action: &'static str,
    pub text: String,
    pub justification: Option<String>,
    pub until: String,
    /// Days from `today` to the expiry (negative: expired, still in the file).
    pub days_left: Option<i64>,
    pub expired: bool,
    pub origin: String,
}

/// Counts for the summary at the top.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub zones: usize,
    pub devices: usize,
    pub conduits: usize,
    pub denies: usize,
    pub requirements: usize,
    pub requirements_failing: usize,
    pub exceptions: usize,
    pub exceptions_expired: usize,
}

/// The evidence pack's contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub meta: Meta,
    pub summary: Summary,
    pub zones: Vec<ZoneEntry>,
    pub conduits: Vec<Conduit>,
    pub requirements: Vec<RequirementEntry>,
    pub exceptions: Vec<Exception>,
    pub exposure: Report,
    /// `wardgate-agent status --format json` as given with `--status`.
    pub enforcement: Option<serde_json::Value>,
    /// What the gateways' flows logs show (`wardgate drift`), given with `--flows`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::discover::drift::Report>,
    /// The zone-and-conduit diagram (SVG); in the HTML, not in the JSON.
    #[serde(skip)]
    pub diagram: String,
}

/// Where the diagram puts a zone.
#[must_use]
pub fn zone_kind(id: usize, z: &Zone) -> &'static str {
    if id == 0 {
        "world"
    } else if z.name.contains("vendor") || z.tags.contains("vendor") {
        "vendor"
    } else if z.is_guest_like() {
        "untrusted"
    } else {
        "internal"
    }
}

fn today(meta: &Meta) -> Option<Date> {
    meta.today.as_deref().and_then(|d| d.parse().ok())
}

impl Evidence {
    /// Gathers the pack from an analysis that has a graph (no errors).
    ///
    /// # Panics
    /// When the analysis has no flow graph.
    #[must_use]
    pub fn new(a: &Analysis, meta: &Meta) -> Self {
        Self::with_status(a, meta, None)
    }

    /// [`Evidence::new`] with the agent's status.
    ///
    /// # Panics
    /// When the analysis has no flow graph.
    #[must_use]
    pub fn with_status(a: &Analysis, meta: &Meta, status: Option<serde_json::Value>) -> Self {
        let policy = &a.policy;
        let graph = a
            .graph
            .as_ref()
            .expect("an analysis without errors has a graph");
        let reach = Reach::new(graph);
        let today = today(meta);
        let zones: Vec<ZoneEntry> = policy
            .zones
            .iter()
            .enumerate()
            .map(|(id, z)| ZoneEntry {
                name: z.name.clone(),
                description: z.description.clone(),
                prefixes: z.prefixes.iter().map(|p| p.net.to_string()).collect(),
                devices: z.devices,
                tags: z.tags.iter().cloned().collect(),
                criticality: z.criticality.map(|c| c.as_str().to_owned()),
                mode: if z.monitor { "monitor" } else { "enforce" },
                isolated: z.isolated,
                kind: zone_kind(id, z),
                origin: z.origin.as_ref().map(ToString::to_string),
            })
            .collect();
        let conduits: Vec<Conduit> = policy
            .rules
            .iter()
            .filter(|r| r.action == Action::Allow)
            .map(|r| Conduit {
                from: r.src_label.clone(),
                to: r.dst_label.clone(),
                services: r.service_labels.clone(),
                justification: r.comment.clone(),
                until: r.until.map(|d| d.to_string()),
                origin: r.origin.to_string(),
                text: r.text.clone(),
            })
            .collect();
        let requirements = requirements(policy, &a.proofs);
        let exceptions: Vec<Exception> = policy
            .rules
            .iter()
            .filter_map(|r| {
                let until = r.until?;
                let days_left = today.map(|t| t.days_until(until));
                Some(Exception {
                    action: match r.action {
                        Action::Allow => "allow",
                        Action::Deny => "deny",
                    },
                    text: r.text.clone(),
                    justification: r.comment.clone(),
                    until: until.to_string(),
                    days_left,
                    expired: days_left.is_some_and(|d| d < 0),
                    origin: r.origin.to_string(),
                })
            })
            .collect();
        let summary = Summary {
            zones: zones.len(),
            devices: zones.iter().map(|z| z.devices).sum(),
            conduits: conduits.len(),
            denies: policy.rules.len() - conduits.len(),
            requirements: requirements.len(),
            requirements_failing: requirements.iter().filter(|r| r.status != "pass").count(),
            exceptions: exceptions.len(),
            exceptions_expired: exceptions.iter().filter(|e| e.expired).count(),
        };
        Self {
            meta: meta.clone(),
            summary,
            diagram: svg::diagram(policy, graph, today),
            zones,
            conduits,
            requirements,
            exceptions,
            exposure: report::report_with(policy, graph, &reach),
            enforcement: status,
            drift: None,
        }
    }
}

fn requirements(policy: &Policy, proofs: &[Proof]) -> Vec<RequirementEntry> {
    policy
        .requirements
        .iter()
        .zip(proofs)
        .map(|(q, p)| {
            let (status, chain) = match p {
                Proof::Holds => ("pass", Vec::new()),
                Proof::Violated(c) => ("fail", c.iter().map(|h| hop_text(policy, h)).collect()),
                Proof::NotEnforced(c) => (
                    "not-enforced",
                    c.iter().map(|h| hop_text(policy, h)).collect(),
                ),
            };
            RequirementEntry {
                text: q.text.clone(),
                kind: match q.kind {
                    RequireKind::NoFlow => "no-flow",
                    RequireKind::NoPath => "no-path",
                },
                status,
                chain,
                origin: q.origin.to_string(),
            }
        })
        .collect()
}

/// Escapes text for HTML and SVG, in element content and in quoted
/// attributes alike. Everything the policy says passes through here.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
