//! `wardgate report FILE`: exposure.
//!
//! Per zone: what it reaches in one hop and transitively (its blast radius
//! if compromised), and who reaches it. Then what reaches each life-critical
//! zone, and what `world` and guest-like zones (name or tag `guest`, tag
//! `untrusted`) reach.

use std::fmt::Write as _;

use serde::Serialize;

use crate::graph::FlowGraph;
use crate::model::{Policy, ZoneId};
use crate::views::md_cell;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneReport {
    pub zone: String,
    pub criticality: Option<String>,
    pub tags: Vec<String>,
    pub monitor: bool,
    pub isolated: bool,
    /// Zones it opens connections to directly.
    pub reaches: Vec<String>,
    /// Zones it reaches by any chain (blast radius).
    pub reaches_transitively: Vec<String>,
    /// Zones that open connections to it directly.
    pub reached_by: Vec<String>,
    /// Zones that reach it by any chain.
    pub reached_by_transitively: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub zones: Vec<ZoneReport>,
    /// Life-critical zones (as in `zones`).
    pub life_critical: Vec<String>,
    /// Untrusted sources: `world` and guest-like zones.
    pub untrusted: Vec<String>,
}

#[must_use]
pub fn report(policy: &Policy, graph: &FlowGraph) -> Report {
    let names = |v: Vec<ZoneId>| -> Vec<String> {
        v.into_iter().map(|z| policy.zone(z).name.clone()).collect()
    };
    let mut zones = Vec::new();
    for (id, z) in policy.zones.iter().enumerate() {
        let id = u32::try_from(id).expect("zone count fits u32");
        zones.push(ZoneReport {
            zone: z.name.clone(),
            criticality: z.criticality.map(|c| c.as_str().to_owned()),
            tags: z.tags.iter().cloned().collect(),
            monitor: z.monitor,
            isolated: z.isolated,
            reaches: names(graph.out(id).into_iter().map(|e| e.0).collect()),
            reaches_transitively: names(graph.reach(id)),
            reached_by: names(graph.into_zone(id)),
            reached_by_transitively: names(graph.reached_by(id)),
        });
    }
    Report {
        life_critical: policy
            .zones
            .iter()
            .filter(|z| z.is_life_critical())
            .map(|z| z.name.clone())
            .collect(),
        untrusted: policy
            .zones
            .iter()
            .enumerate()
            .filter(|(i, z)| *i == 0 || z.is_guest_like())
            .map(|(_, z)| z.name.clone())
            .collect(),
        zones,
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
    }
}

impl Report {
    fn zone(&self, name: &str) -> Option<&ZoneReport> {
        self.zones.iter().find(|z| z.zone == name)
    }
}

/// Plain text.
#[must_use]
pub fn human(r: &Report) -> String {
    let mut out = String::new();
    let flows: usize = r.zones.iter().map(|z| z.reaches.len()).sum();
    let _ = writeln!(
        out,
        "exposure report: {} zones, {flows} zone-to-zone flows\n",
        r.zones.len()
    );
    out.push_str("life-critical zones: who can reach them\n");
    if r.life_critical.is_empty() {
        out.push_str("  (no life-critical zones)\n");
    }
    for name in &r.life_critical {
        let Some(z) = r.zone(name) else { continue };
        let _ = writeln!(out, "  {name}");
        let _ = writeln!(out, "    directly:     {}", list(&z.reached_by));
        let _ = writeln!(
            out,
            "    transitively: {}",
            list(&z.reached_by_transitively)
        );
    }
    out.push_str("\nuntrusted sources: what they can reach\n");
    for name in &r.untrusted {
        let Some(z) = r.zone(name) else { continue };
        let _ = writeln!(out, "  {name}");
        let _ = writeln!(out, "    directly:     {}", list(&z.reaches));
        let _ = writeln!(out, "    transitively: {}", list(&z.reaches_transitively));
    }
    out.push_str("\nper zone (blast radius: zones reachable by any chain)\n");
    let width = r
        .zones
        .iter()
        .map(|z| z.zone.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:width$}  reach  blast  reached-by  one hop",
        "zone"
    );
    for z in &r.zones {
        let _ = writeln!(
            out,
            "  {:width$}  {:>5}  {:>5}  {:>10}  {}",
            z.zone,
            z.reaches.len(),
            z.reaches_transitively.len(),
            z.reached_by_transitively.len(),
            list(&z.reaches)
        );
    }
    out
}

/// Markdown.
#[must_use]
pub fn markdown(r: &Report) -> String {
    let mut out = String::from("### wardgate: exposure report\n\n");
    out.push_str("**Life-critical zones: who can reach them**\n\n| zone | directly | transitively |\n|---|---|---|\n");
    for name in &r.life_critical {
        let Some(z) = r.zone(name) else { continue };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            md_cell(name),
            md_cell(&list(&z.reached_by)),
            md_cell(&list(&z.reached_by_transitively))
        );
    }
    out.push_str("\n**Untrusted sources: what they can reach**\n\n| source | directly | transitively |\n|---|---|---|\n");
    for name in &r.untrusted {
        let Some(z) = r.zone(name) else { continue };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            md_cell(name),
            md_cell(&list(&z.reaches)),
            md_cell(&list(&z.reaches_transitively))
        );
    }
    out.push_str("\n**Per zone**\n\n| zone | criticality | reaches | blast radius | reached by (any chain) |\n|---|---|---|---|---|\n");
    for z in &r.zones {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            md_cell(&z.zone),
            z.criticality.as_deref().unwrap_or(""),
            md_cell(&list(&z.reaches)),
            z.reaches_transitively.len(),
            z.reached_by_transitively.len()
        );
    }
    out
}
