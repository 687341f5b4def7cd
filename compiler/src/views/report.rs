//! `wardgate report FILE`: exposure.
//!
//! Per zone: what it reaches in one hop and transitively (its blast radius
//! if compromised), and who reaches it. Then what reaches each life-critical
//! zone, and what `world` and guest-like zones (name or tag `guest`, tag
//! `untrusted`) reach.

use std::fmt::Write as _;

use serde::Serialize;

use crate::graph::FlowGraph;
use crate::model::{Policy, WORLD, ZoneId};
use crate::reach::Reach;
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
    /// Zones that open connections to it directly.
    pub reached_by: Vec<String>,
    /// How many zones it reaches by any chain (blast radius if compromised).
    pub blast_radius: usize,
    /// How many zones reach it by any chain.
    pub reached_by_transitively: usize,
}

/// One zone's exposure spelled out: the zones on one side of it, directly
/// and by any chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exposure {
    pub zone: String,
    pub directly: Vec<String>,
    pub transitively: Vec<String>,
}

/// The exposure report. Transitive sets are spelled out only for
/// life-critical zones and untrusted sources; every other zone has counts,
/// so that the report stays linear in the policy's size (a list per zone
/// would be zones squared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub zones: Vec<ZoneReport>,
    /// Life-critical zones and who reaches them.
    pub life_critical: Vec<Exposure>,
    /// Untrusted sources (`world` and guest-like zones) and what they reach.
    pub untrusted: Vec<Exposure>,
}

#[must_use]
pub fn report(policy: &Policy, graph: &FlowGraph) -> Report {
    report_with(policy, graph, &Reach::new(graph))
}

/// [`report`] with reachability already computed.
#[must_use]
pub fn report_with(policy: &Policy, graph: &FlowGraph, reach: &Reach) -> Report {
    let names = |v: Vec<ZoneId>| -> Vec<String> {
        v.into_iter().map(|z| policy.zone(z).name.clone()).collect()
    };
    let mut zones = Vec::with_capacity(policy.zones.len());
    let mut life_critical = Vec::new();
    let mut untrusted = Vec::new();
    for (id, z) in policy.zones.iter().enumerate() {
        let id = u32::try_from(id).expect("zone count fits u32");
        let reached_by = names(graph.into_zone(id));
        let reaches = names(graph.out(id).into_iter().map(|e| e.0).collect());
        if z.is_life_critical() {
            life_critical.push(Exposure {
                zone: z.name.clone(),
                directly: reached_by.clone(),
                transitively: names(reach.reached_by(id)),
            });
        }
        if id == WORLD || z.is_guest_like() {
            untrusted.push(Exposure {
                zone: z.name.clone(),
                directly: reaches.clone(),
                transitively: names(reach.reach(id)),
            });
        }
        zones.push(ZoneReport {
            zone: z.name.clone(),
            criticality: z.criticality.map(|c| c.as_str().to_owned()),
            tags: z.tags.iter().cloned().collect(),
            monitor: z.monitor,
            isolated: z.isolated,
            reaches,
            reached_by,
            blast_radius: reach.reach_count(id),
            reached_by_transitively: reach.reached_by_count(id),
        });
    }
    Report {
        zones,
        life_critical,
        untrusted,
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
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
    for e in &r.life_critical {
        let _ = writeln!(out, "  {}", e.zone);
        let _ = writeln!(out, "    directly:     {}", list(&e.directly));
        let _ = writeln!(out, "    transitively: {}", list(&e.transitively));
    }
    out.push_str("\nuntrusted sources: what they can reach\n");
    for e in &r.untrusted {
        let _ = writeln!(out, "  {}", e.zone);
        let _ = writeln!(out, "    directly:     {}", list(&e.directly));
        let _ = writeln!(out, "    transitively: {}", list(&e.transitively));
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
            z.blast_radius,
            z.reached_by_transitively,
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
    for e in &r.life_critical {
        exposure_row(&mut out, e);
    }
    out.push_str("\n**Untrusted sources: what they can reach**\n\n| source | directly | transitively |\n|---|---|---|\n");
    for e in &r.untrusted {
        exposure_row(&mut out, e);
    }
    out.push_str("\n**Per zone**\n\n| zone | criticality | reaches | blast radius | reached by (any chain) |\n|---|---|---|---|---|\n");
    for z in &r.zones {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            md_cell(&z.zone),
            z.criticality.as_deref().unwrap_or(""),
            md_cell(&list(&z.reaches)),
            z.blast_radius,
            z.reached_by_transitively
        );
    }
    out
}

fn exposure_row(out: &mut String, e: &Exposure) {
    let _ = writeln!(
        out,
        "| `{}` | {} | {} |",
        md_cell(&e.zone),
        md_cell(&list(&e.directly)),
        md_cell(&list(&e.transitively))
    );
}
