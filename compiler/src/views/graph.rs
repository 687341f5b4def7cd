//! The zone graph as Graphviz `dot` or Mermaid.
//!
//! Nodes are zones with their tags and criticality; `world` is drawn as a
//! cloud-like shape, life-critical zones in red with a double border, zones
//! in monitor mode dashed. Edges are labelled with the services of the rules
//! that open them.

use std::fmt::Write as _;

use crate::graph::FlowGraph;
use crate::model::{Policy, Zone, ZoneId};
use crate::views::edge_services;

fn node_label(z: &Zone) -> String {
    let mut parts = vec![z.name.clone()];
    if !z.tags.is_empty() {
        parts.push(z.tags.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let mut extra = Vec::new();
    if let Some(c) = z.criticality {
        extra.push(c.as_str().to_owned());
    }
    if z.monitor {
        extra.push("monitor".to_owned());
    }
    if z.isolated {
        extra.push("isolated".to_owned());
    }
    if !extra.is_empty() {
        parts.push(format!("[{}]", extra.join(", ")));
    }
    parts.join("\n")
}

fn edges(graph: &FlowGraph) -> Vec<(ZoneId, ZoneId)> {
    let mut v = Vec::new();
    for a in 0..graph.zone_count() {
        let a = u32::try_from(a).expect("zone count fits u32");
        v.extend(graph.out(a).into_iter().map(|(b, _)| (a, b)));
    }
    v
}

/// Graphviz `dot`.
#[must_use]
pub fn dot(policy: &Policy, graph: &FlowGraph) -> String {
    let q = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = String::from(
        "digraph wardgate {\n    rankdir=LR;\n    node [shape=box, style=\"rounded\", fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for (id, z) in policy.zones.iter().enumerate() {
        let mut attrs = vec![format!("label=\"{}\"", q(&node_label(z)))];
        if id == 0 {
            attrs.push("shape=egg, style=\"filled\", fillcolor=\"#e8e8e8\"".into());
        } else if z.is_life_critical() {
            attrs.push(
                "peripheries=2, color=\"#c00000\", style=\"rounded,filled\", fillcolor=\"#ffe0e0\""
                    .into(),
            );
        }
        if z.monitor {
            attrs.push("style=\"rounded,dashed\"".into());
        }
        let _ = writeln!(out, "    \"{}\" [{}];", q(&z.name), attrs.join(", "));
    }
    for (a, b) in edges(graph) {
        let label = edge_services(policy, graph, a, b).join(", ");
        let _ = writeln!(
            out,
            "    \"{}\" -> \"{}\" [label=\"{}\"];",
            q(&policy.zone(a).name),
            q(&policy.zone(b).name),
            q(&label)
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid `flowchart`.
#[must_use]
pub fn mermaid(policy: &Policy, graph: &FlowGraph) -> String {
    let q = |s: &str| s.replace('"', "#quot;").replace('\n', "<br/>");
    let mut out = String::from("flowchart LR\n");
    for (id, z) in policy.zones.iter().enumerate() {
        let label = q(&node_label(z));
        if id == 0 {
            let _ = writeln!(out, "    z{id}((\"{label}\"))");
        } else {
            let _ = writeln!(out, "    z{id}[\"{label}\"]");
        }
    }
    for (a, b) in edges(graph) {
        let label = q(&edge_services(policy, graph, a, b).join(", "));
        let _ = writeln!(out, "    z{a} -->|\"{label}\"| z{b}");
    }
    out.push_str("    classDef world fill:#e8e8e8,stroke:#666,stroke-dasharray:4 2\n");
    out.push_str("    classDef lifecritical fill:#ffe0e0,stroke:#c00000,stroke-width:3px\n");
    out.push_str("    classDef monitor stroke-dasharray:5 5\n");
    out.push_str("    class z0 world\n");
    let class = |pred: &dyn Fn(&Zone) -> bool| {
        policy
            .zones
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, z)| pred(z))
            .map(|(i, _)| format!("z{i}"))
            .collect::<Vec<_>>()
    };
    let lc = class(&Zone::is_life_critical);
    if !lc.is_empty() {
        let _ = writeln!(out, "    class {} lifecritical", lc.join(","));
    }
    let mon = class(&|z: &Zone| z.monitor);
    if !mon.is_empty() {
        let _ = writeln!(out, "    class {} monitor", mon.join(","));
    }
    out
}
