//! What reviewers read: the zone graph (`graph`), reachability changes
//! (`diff`) and exposure (`report`). Each view is computed from an
//! [`crate::Analysis`] into plain structs, then rendered as text, JSON
//! (serde) or Markdown; the CLI only picks the format.

pub mod diff;
pub mod evidence;
pub mod graph;
pub mod report;

use std::collections::BTreeSet;

use crate::graph::FlowGraph;
use crate::model::{Policy, ZoneId};

/// The service labels of the rules that open `a -> b`, deduplicated.
#[must_use]
pub fn edge_services(policy: &Policy, graph: &FlowGraph, a: ZoneId, b: ZoneId) -> Vec<String> {
    let Some(edge) = graph.edge(a, b) else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &r in &edge.rules {
        for l in &policy.rule(r).service_labels {
            if seen.insert(l.clone()) {
                out.push(l.clone());
            }
        }
    }
    out
}

/// Escapes a Markdown table cell.
#[must_use]
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}
