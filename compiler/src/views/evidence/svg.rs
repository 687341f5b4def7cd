//! The zone-and-conduit diagram, drawn as SVG by hand (no layout crate: a
//! layered layout by trust fits the question an auditor asks, "what can
//! reach the life-critical zones", better than a general graph layout).
//!
//! Zones stand in columns from outside to inside: `world` and vendor zones,
//! untrusted (guest-like) zones, then by criticality from none to
//! life-critical. Nodes are filled by criticality; monitor-mode zones have a
//! dashed border and a `MONITOR` mark. Each zone is one `<g class="zone">`.
//!
//! Up to [`DETAIL_ZONES`] zones (and [`DETAIL_EDGES`] edges) every flow-graph
//! edge is drawn, labelled with its services; an edge whose every rule has an
//! `until` is dashed and carries the earliest date. Larger policies group
//! zones by their first tag inside each column and draw one arc per pair of
//! columns, labelled with how many zone pairs it joins and the commonest
//! services: 150 zones stay readable. Past [`NODE_ZONES`] zones only the
//! columns are drawn, with their counts (the inventory table lists every
//! zone). The cost is linear in zones and edges.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::graph::FlowGraph;
use crate::model::{Criticality, Date, Policy, Zone, ZoneId};
use crate::views::edge_services;

use super::{esc, zone_kind};

/// Up to this many zones, every edge is drawn.
pub const DETAIL_ZONES: usize = 60;
/// Up to this many edges, every edge is drawn.
pub const DETAIL_EDGES: usize = 160;
/// Up to this many zones, every zone is a node.
pub const NODE_ZONES: usize = 1_000;

/// The columns, outside to inside.
const BANDS: [&str; 7] = [
    "world and vendors",
    "untrusted",
    "unclassified",
    "low",
    "medium",
    "high",
    "life-critical",
];

fn band(id: usize, z: &Zone) -> usize {
    match zone_kind(id, z) {
        "world" | "vendor" => 0,
        "untrusted" => 1,
        _ => match z.criticality {
            _ if z.is_life_critical() => 6,
            None => 2,
            Some(Criticality::Low) => 3,
            Some(Criticality::Medium) => 4,
            Some(Criticality::High) => 5,
            Some(Criticality::LifeCritical) => 6,
        },
    }
}

/// Fill and stroke by criticality.
fn colours(id: usize, z: &Zone) -> (&'static str, &'static str) {
    if id == 0 {
        return ("#dcdcdc", "#555555");
    }
    if z.is_life_critical() {
        return ("#f8c9c4", "#b2182b");
    }
    match z.criticality {
        Some(Criticality::High) => ("#fddbb0", "#d35400"),
        Some(Criticality::Medium) => ("#fff3b0", "#a68a00"),
        Some(Criticality::Low) => ("#dff2d8", "#2e8b3a"),
        _ => ("#f2f2f2", "#7a7a7a"),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// A node's box.
#[derive(Clone, Copy)]
struct Box {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

struct Canvas {
    body: String,
    width: f64,
    height: f64,
}

/// The diagram alone: a standalone SVG document (`wardgate graph --format svg`).
#[must_use]
pub fn document(policy: &Policy, graph: &FlowGraph, today: Option<Date>) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        diagram(policy, graph, today)
    )
}

/// The diagram as an inline `<svg>` element.
#[must_use]
pub fn diagram(policy: &Policy, graph: &FlowGraph, today: Option<Date>) -> String {
    let n = policy.zones.len();
    let edges = graph.graph.edge_count();
    let c = if n > NODE_ZONES {
        bands_only(policy, graph)
    } else if n > DETAIL_ZONES || edges > DETAIL_EDGES {
        grouped(policy, graph)
    } else {
        detailed(policy, graph, today)
    };
    let mut out = String::new();
    let (w, h) = (c.width.ceil(), c.height.ceil() + LEGEND_H);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"zone-diagram\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"Helvetica, Arial, sans-serif\" role=\"img\" aria-label=\"zone and conduit diagram\">"
    );
    out.push_str(STYLE);
    out.push_str(&c.body);
    legend(&mut out, c.height);
    out.push_str("</svg>\n");
    out
}

const STYLE: &str = r##"<defs><marker id="wg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker><marker id="wg-arrow-exp" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#b35806"/></marker><marker id="wg-arrow-group" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7a7a7a"/></marker></defs>
<style>
.zone-diagram text { fill: #1a1a1a; }
.zone-diagram .band-title { font-size: 13px; font-weight: bold; fill: #333; }
.zone-diagram .band { fill: #fafafa; stroke: #d0d0d0; }
.zone-diagram .band-outside { fill: #f3f0f8; stroke: #b9b0d0; }
.zone-diagram .zname { font-size: 12px; font-weight: bold; }
.zone-diagram .zmeta { font-size: 10px; fill: #444; }
.zone-diagram .zsmall { font-size: 10px; }
.zone-diagram .monitor-mark { font-size: 8px; font-weight: bold; fill: #b35806; }
.zone-diagram .tag-head { font-size: 10px; font-style: italic; fill: #555; }
.zone-diagram .conduit { fill: none; stroke: #666; stroke-width: 1.3; }
.zone-diagram .conduit.expiring { stroke: #b35806; stroke-dasharray: 6 4; }
.zone-diagram .conduit.group { stroke: #7a7a7a; }
.zone-diagram .label { font-size: 10px; paint-order: stroke; stroke: #ffffff; stroke-width: 3px; stroke-linejoin: round; }
.zone-diagram .label.expiring { fill: #8a4200; }
.zone-diagram .legend { font-size: 11px; }
</style>
"##;

const LEGEND_H: f64 = 56.0;

fn legend(out: &mut String, top: f64) {
    let y = top + 14.0;
    let _ = writeln!(out, "<g class=\"legend\" transform=\"translate(12,{y})\">");
    let items: [(&str, &str, &str); 6] = [
        ("#dcdcdc", "#555555", "world"),
        ("#f2f2f2", "#7a7a7a", "no criticality"),
        ("#dff2d8", "#2e8b3a", "low"),
        ("#fff3b0", "#a68a00", "medium"),
        ("#fddbb0", "#d35400", "high"),
        ("#f8c9c4", "#b2182b", "life-critical"),
    ];
    let mut x = 0.0;
    for (fill, stroke, name) in items {
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"0\" width=\"16\" height=\"12\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"{}\" y=\"10\">{name}</text>",
            x + 20.0
        );
        x += 30.0 + 7.0 * name.len() as f64;
    }
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"20\" width=\"16\" height=\"12\" rx=\"3\" fill=\"#ffffff\" stroke=\"#555\" stroke-dasharray=\"4 2\"/><text x=\"20\" y=\"30\">mode monitor (not enforced)</text>\
<path d=\"M200,26 h40\" class=\"conduit\" marker-end=\"url(#wg-arrow)\"/><text x=\"246\" y=\"30\">conduit (services)</text>\
<path d=\"M370,26 h40\" class=\"conduit expiring\" marker-end=\"url(#wg-arrow-exp)\"/><text x=\"416\" y=\"30\">expiring rule (until date)</text>\
<rect x=\"590\" y=\"20\" width=\"16\" height=\"12\" rx=\"3\" fill=\"#f3f0f8\" stroke=\"#b9b0d0\"/><text x=\"610\" y=\"30\">outside the site: world and vendor access</text>"
    );
    out.push_str("</g>\n");
}

/// Zone ids per band, each band in its drawing order.
fn columns(policy: &Policy) -> Vec<(usize, Vec<ZoneId>)> {
    let mut cols: Vec<Vec<ZoneId>> = vec![Vec::new(); BANDS.len()];
    for (id, z) in policy.zones.iter().enumerate() {
        cols[band(id, z)].push(ZoneId::try_from(id).expect("zone count fits u32"));
    }
    cols.into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn first_tag(z: &Zone) -> &str {
    z.tags
        .iter()
        .find(|t| t.as_str() != "life-critical")
        .map_or("", String::as_str)
}

/// One zone's node.
fn node(out: &mut String, policy: &Policy, graph: &FlowGraph, id: ZoneId, b: Box, detail: bool) {
    let z = policy.zone(id);
    let (fill, stroke) = colours(id as usize, z);
    let kind = zone_kind(id as usize, z);
    let dash = if z.monitor {
        " stroke-dasharray=\"5 3\""
    } else {
        ""
    };
    let width = if kind == "vendor" || z.is_life_critical() {
        2.2
    } else {
        1.2
    };
    let rx = if kind == "world" { b.h / 2.0 } else { 5.0 };
    let mut title = z.name.clone();
    if let Some(d) = &z.description {
        let _ = write!(title, ": {d}");
    }
    let _ = write!(
        title,
        "\n{} prefixes, {} devices; reaches {} zones directly",
        z.prefixes.len(),
        z.devices,
        graph.out(id).len()
    );
    let _ = write!(
        out,
        "<g class=\"zone zone-{kind}\" data-zone=\"{}\"><title>{}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{rx:.1}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}/>",
        esc(&z.name),
        esc(&title),
        b.x,
        b.y,
        b.w,
        b.h
    );
    if detail {
        let _ = write!(
            out,
            "<text class=\"zname\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            b.x + 8.0,
            b.y + 17.0,
            esc(&truncate(&z.name, 22))
        );
        let mut meta: Vec<String> = Vec::new();
        if kind == "vendor" {
            meta.push("vendor".into());
        }
        if let Some(c) = z.criticality {
            meta.push(c.as_str().to_owned());
        }
        meta.extend(
            z.tags
                .iter()
                .filter(|t| t.as_str() != "life-critical")
                .cloned(),
        );
        if z.isolated && id != 0 {
            meta.push("isolated".into());
        }
        let _ = write!(
            out,
            "<text class=\"zmeta\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            b.x + 8.0,
            b.y + 32.0,
            esc(&truncate(&meta.join(" · "), 30))
        );
    } else {
        let _ = write!(
            out,
            "<text class=\"zsmall\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            b.x + 6.0,
            b.y + b.h - 6.0,
            esc(&truncate(&z.name, 20))
        );
    }
    if z.monitor {
        let _ = write!(
            out,
            "<text class=\"monitor-mark\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">MONITOR</text>",
            b.x + b.w - 4.0,
            b.y + 9.0
        );
    }
    out.push_str("</g>\n");
}

fn band_box(out: &mut String, band: usize, x: f64, w: f64, h: f64, count: usize) {
    let class = if band == 0 {
        "band band-outside"
    } else {
        "band"
    };
    let _ = writeln!(
        out,
        "<rect class=\"{class}\" x=\"{x:.1}\" y=\"40\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"8\"/><text class=\"band-title\" x=\"{:.1}\" y=\"57\">{} ({count})</text>",
        x + 10.0,
        BANDS[band]
    );
}

// ---- every edge -------------------------------------------------------------

const NODE_W: f64 = 172.0;
const NODE_H: f64 = 42.0;
const NODE_GAP: f64 = 26.0;
const BAND_GAP: f64 = 96.0;
const BAND_TITLE: f64 = 20.0;
const PAD: f64 = 12.0;
/// Edges into one zone with the same services from at least this many
/// zones share one label at the target (NTP and DNS servers, proxies).
const FAN_IN: usize = 3;

/// Every zone and edge, bands as rows from outside (top) to life-critical
/// (bottom): a page is wider than it is tall only in landscape, and a row
/// of zones reads like a line of text.
fn detailed(policy: &Policy, graph: &FlowGraph, today: Option<Date>) -> Canvas {
    let mut cols = columns(policy);
    // Two barycentre sweeps against the rows already placed reduce
    // crossings; ties keep name order.
    let mut pos = vec![0.0_f64; policy.zones.len()];
    for (_, col) in &cols {
        for (i, &z) in col.iter().enumerate() {
            pos[z as usize] = i as f64 - col.len() as f64 / 2.0;
        }
    }
    for _ in 0..2 {
        for (_, col) in &mut cols {
            let mut keyed: Vec<(f64, ZoneId)> = col
                .iter()
                .map(|&z| {
                    let ns: Vec<f64> = graph
                        .out(z)
                        .iter()
                        .map(|e| pos[e.0 as usize])
                        .chain(graph.into_zone(z).iter().map(|&p| pos[p as usize]))
                        .collect();
                    let key = if ns.is_empty() {
                        pos[z as usize]
                    } else {
                        ns.iter().sum::<f64>() / ns.len() as f64
                    };
                    (key, z)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            *col = keyed.into_iter().map(|k| k.1).collect();
            let n = col.len() as f64;
            for (i, &z) in col.iter().enumerate() {
                pos[z as usize] = i as f64 - n / 2.0;
            }
        }
    }
    let widest = cols.iter().map(|c| c.1.len()).max().unwrap_or(1) as f64;
    let inner = widest * (NODE_W + NODE_GAP) - NODE_GAP + 2.0 * PAD;
    let width = inner + 40.0;
    let mut boxes: Vec<Option<Box>> = vec![None; policy.zones.len()];
    let mut out = String::new();
    let mut y = 10.0;
    let band_h = BAND_TITLE + NODE_H + 2.0 * PAD;
    for (b, col) in &cols {
        let class = if *b == 0 { "band band-outside" } else { "band" };
        let _ = writeln!(
            out,
            "<rect class=\"{class}\" x=\"20\" y=\"{y:.1}\" width=\"{inner:.1}\" height=\"{band_h:.1}\" rx=\"8\"/><text class=\"band-title\" x=\"30\" y=\"{:.1}\">{} ({})</text>",
            y + 15.0,
            BANDS[*b],
            col.len()
        );
        let w = col.len() as f64 * (NODE_W + NODE_GAP) - NODE_GAP;
        let mut x = 20.0 + (inner - w) / 2.0;
        for &z in col {
            boxes[z as usize] = Some(Box {
                x,
                y: y + BAND_TITLE + PAD,
                w: NODE_W,
                h: NODE_H,
            });
            x += NODE_W + NODE_GAP;
        }
        y += band_h + BAND_GAP;
    }
    let height = y - BAND_GAP + 10.0;
    // Fan-in: (target, label) -> sources.
    let mut fan: BTreeMap<(ZoneId, String), usize> = BTreeMap::new();
    let mut fan_out: BTreeMap<(ZoneId, String), usize> = BTreeMap::new();
    let mut all = Vec::new();
    for a in 0..graph.zone_count() {
        let a = ZoneId::try_from(a).expect("zone count fits u32");
        for (b, _) in graph.out(a) {
            let label = edge_label(policy, graph, a, b, today);
            *fan.entry((b, label.0.clone())).or_default() += 1;
            *fan_out.entry((a, label.0.clone())).or_default() += 1;
            all.push((a, b, label));
        }
    }
    let mut labels = Labels::default();
    let mut edges_svg = String::new();
    let mut labels_svg = String::new();
    let mut shared_done = std::collections::BTreeSet::new();
    for (a, b, (label, expiring)) in all {
        let (Some(s), Some(t)) = (boxes[a as usize], boxes[b as usize]) else {
            continue;
        };
        let (p0, p1, p2, p3) = route(s, t);
        let class = if expiring {
            "conduit expiring"
        } else {
            "conduit"
        };
        let marker = if expiring { "wg-arrow-exp" } else { "wg-arrow" };
        let _ = writeln!(
            edges_svg,
            "<path class=\"{class}\" data-from=\"{}\" data-to=\"{}\" d=\"M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" marker-end=\"url(#{marker})\"><title>{}</title></path>",
            esc(&policy.zone(a).name),
            esc(&policy.zone(b).name),
            p0.0,
            p0.1,
            p1.0,
            p1.1,
            p2.0,
            p2.1,
            p3.0,
            p3.1,
            esc(&format!(
                "{} -> {}: {label}",
                policy.zone(a).name,
                policy.zone(b).name
            ))
        );
        let sources = fan[&(b, label.clone())];
        let (text, at) = if sources >= FAN_IN {
            if !shared_done.insert((b, label.clone())) {
                continue;
            }
            // One label where the bundle arrives.
            let at = if p3.1 < p0.1 {
                (t.x + t.w / 2.0, t.y + t.h + 13.0)
            } else {
                (t.x + t.w / 2.0, t.y - 12.0)
            };
            (format!("{label} (from {sources} zones)"), at)
        } else if let Some(&targets) = fan_out.get(&(a, label.clone())).filter(|&&n| n >= FAN_IN) {
            if !shared_done.insert((u32::MAX - a, label.clone())) {
                continue;
            }
            // One label where the bundle leaves.
            let at = if p3.1 < p0.1 {
                (s.x + s.w / 2.0, s.y - 10.0)
            } else {
                (s.x + s.w / 2.0, s.y + s.h + 13.0)
            };
            (format!("{label} (to {targets} zones)"), at)
        } else {
            (label, bezier(p0, p1, p2, p3, 0.5))
        };
        let (lx, ly) = labels.place(at, &text, width);
        let lclass = if expiring { "label expiring" } else { "label" };
        let _ = writeln!(
            labels_svg,
            "<text class=\"{lclass}\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            ly + 3.5,
            esc(&text)
        );
    }
    let mut body = out;
    body.push_str(&edges_svg);
    for (id, b) in boxes.iter().enumerate() {
        if let Some(b) = b {
            node(
                &mut body,
                policy,
                graph,
                ZoneId::try_from(id).expect("zone count fits u32"),
                *b,
                true,
            );
        }
    }
    body.push_str(&labels_svg);
    let height = labels.bottom().max(height);
    Canvas {
        body,
        width,
        height,
    }
}

/// An edge's label (its services, and its date when every rule opening it
/// expires) and whether it is expiring.
fn edge_label(
    policy: &Policy,
    graph: &FlowGraph,
    a: ZoneId,
    b: ZoneId,
    today: Option<Date>,
) -> (String, bool) {
    let edge = graph.edge(a, b).expect("an out-neighbour has an edge");
    let expiring = edge.rules.iter().all(|&r| policy.rule(r).until.is_some());
    let services = edge_services(policy, graph, a, b);
    let mut label = if services.len() > 3 {
        format!("{}, +{}", services[..3].join(", "), services.len() - 3)
    } else {
        services.join(", ")
    };
    if expiring
        && let Some(d) = edge
            .rules
            .iter()
            .filter_map(|&r| policy.rule(r).until)
            .min()
    {
        let _ = write!(label, " until {d}");
        if let Some(t) = today {
            let _ = write!(label, " ({} days)", t.days_until(d));
        }
    }
    (label, expiring)
}

/// Placed labels: a new label moves down past any it would cover.
#[derive(Default)]
struct Labels(Vec<(f64, f64, f64)>);

impl Labels {
    fn place(&mut self, at: Pt, text: &str, width: f64) -> Pt {
        let w = 5.8 * text.chars().count() as f64;
        let x =
            at.0.clamp(w / 2.0 + 2.0, (width - w / 2.0 - 2.0).max(w / 2.0 + 2.0));
        let mut y = at.1;
        let mut moved = true;
        while moved {
            moved = false;
            for &(ox, oy, ow) in &self.0 {
                if (x - ox).abs() < (w + ow) / 2.0 + 4.0 && (y - oy).abs() < 11.0 {
                    y = oy + 11.5;
                    moved = true;
                }
            }
        }
        self.0.push((x, y, w));
        (x, y)
    }

    /// A label anchored at one end (`start` or `end`): moves down past
    /// labels on the same side that it would cover.
    fn place_anchored(&mut self, at: Pt, anchor: &str) -> Pt {
        let side = if anchor == "end" { -1.0 } else { 1.0 };
        let mut y = at.1;
        let mut moved = true;
        while moved {
            moved = false;
            for &(ox, oy, _) in &self.0 {
                if ox.signum() == side && (y - oy).abs() < 12.0 {
                    y = oy + 12.5;
                    moved = true;
                }
            }
        }
        // Stored with the side as the sign of x: only same-side labels collide.
        self.0.push((side, y, 0.0));
        (at.0, y)
    }

    fn bottom(&self) -> f64 {
        self.0.iter().map(|l| l.1 + 14.0).fold(0.0, f64::max)
    }
}

type Pt = (f64, f64);

/// A cubic Bézier from `s` to `t`: top to bottom between rows, an arc below
/// within a row, up beside the nodes back to an earlier row.
fn route(s: Box, t: Box) -> (Pt, Pt, Pt, Pt) {
    let (scx, tcx) = (s.x + s.w / 2.0, t.x + t.w / 2.0);
    if t.y > s.y + 1.0 {
        let (a, b) = ((scx + 8.0, s.y + s.h), (tcx - 8.0, t.y - 2.0));
        let dy = (b.1 - a.1) / 2.0;
        (a, (a.0, a.1 + dy), (b.0, b.1 - dy), b)
    } else if (t.y - s.y).abs() <= 1.0 {
        let (a, b) = ((scx + 10.0, s.y + s.h), (tcx - 10.0, t.y + t.h + 2.0));
        let bulge = 30.0 + (b.0 - a.0).abs() * 0.12;
        (a, (a.0, a.1 + bulge), (b.0, b.1 + bulge), b)
    } else {
        let (a, b) = ((scx - 8.0, s.y), (tcx + 8.0, t.y + t.h + 2.0));
        let dy = (a.1 - b.1) / 2.0;
        (a, (a.0, a.1 - dy), (b.0, b.1 + dy), b)
    }
}

fn bezier(p0: Pt, p1: Pt, p2: Pt, p3: Pt, t: f64) -> Pt {
    let u = 1.0 - t;
    let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    (
        a * p0.0 + b * p1.0 + c * p2.0 + d * p3.0,
        a * p0.1 + b * p1.1 + c * p2.1 + d * p3.1,
    )
}

// ---- grouped ----------------------------------------------------------------

const SMALL_W: f64 = 150.0;
const SMALL_H: f64 = 18.0;
const SMALL_GAP: f64 = 4.0;
/// Zone chips per line in a grouped band.
const CHIPS: usize = 6;
const GROUP_GAP: f64 = 150.0;
/// Room for the band's title inside its box.
const GROUP_TITLE: f64 = 22.0;

/// Band-to-band conduits: how many zone pairs, and services by frequency.
fn band_edges(
    policy: &Policy,
    graph: &FlowGraph,
) -> BTreeMap<(usize, usize), (usize, BTreeMap<String, usize>)> {
    let mut out: BTreeMap<(usize, usize), (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for a in 0..graph.zone_count() {
        let ai = ZoneId::try_from(a).expect("zone count fits u32");
        let ba = band(a, policy.zone(ai));
        for (b, _) in graph.out(ai) {
            let bb = band(b as usize, policy.zone(b));
            let e = out.entry((ba, bb)).or_default();
            e.0 += 1;
            for s in edge_services(policy, graph, ai, b) {
                *e.1.entry(s).or_default() += 1;
            }
        }
    }
    out
}

fn band_label(count: usize, services: &BTreeMap<String, usize>) -> String {
    let mut by: Vec<(&String, &usize)> = services.iter().collect();
    by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<&str> = by.iter().take(3).map(|s| s.0.as_str()).collect();
    let more = by.len().saturating_sub(3);
    let mut l = format!(
        "{count} zone pair{}: {}",
        if count == 1 { "" } else { "s" },
        top.join(", ")
    );
    if more > 0 {
        let _ = write!(l, ", +{more}");
    }
    l
}

/// Arcs between column centres: forward above the columns, backward below,
/// within a column a loop above it.
fn arcs(
    out: &mut String,
    policy: &Policy,
    graph: &FlowGraph,
    centre: &BTreeMap<usize, f64>,
    top: f64,
    bottom: f64,
) -> (f64, f64) {
    let (mut min_y, mut max_y) = (top, bottom);
    let index: BTreeMap<usize, usize> = centre.keys().enumerate().map(|(i, &b)| (b, i)).collect();
    for ((ba, bb), (count, services)) in band_edges(policy, graph) {
        let (xa, xb) = (centre[&ba], centre[&bb]);
        let span = index[&ba].abs_diff(index[&bb]) as f64;
        let label = band_label(count, &services);
        let width = (1.0 + (count as f64).ln()).min(6.0);
        let (d, lx, ly) = if ba == bb {
            let y = top - 6.0;
            (
                format!(
                    "M{:.1},{y:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{y:.1}",
                    xa - 24.0,
                    xa - 34.0,
                    y - 34.0,
                    xa + 34.0,
                    y - 34.0,
                    xa + 24.0
                ),
                xa,
                y - 34.0,
            )
        } else if ba < bb || index[&ba] < index[&bb] {
            let h = 40.0 + 34.0 * span;
            let y = top - 6.0;
            (
                format!(
                    "M{:.1},{y:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{y:.1}",
                    xa + 10.0,
                    xa + 10.0,
                    y - h,
                    xb - 10.0,
                    y - h,
                    xb - 10.0
                ),
                (xa + xb) / 2.0,
                y - 0.75 * h - 8.0,
            )
        } else {
            let h = 40.0 + 34.0 * span;
            let y = bottom + 6.0;
            (
                format!(
                    "M{:.1},{y:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{y:.1}",
                    xa - 10.0,
                    xa - 10.0,
                    y + h,
                    xb + 10.0,
                    y + h,
                    xb + 10.0
                ),
                (xa + xb) / 2.0,
                y + 0.75 * h + 12.0,
            )
        };
        min_y = min_y.min(ly - 14.0);
        max_y = max_y.max(ly + 14.0);
        let _ = writeln!(
            out,
            "<path class=\"conduit group\" style=\"stroke-width:{width:.1}\" d=\"{d}\" marker-end=\"url(#wg-arrow-group)\"/><text class=\"label\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            ly + 3.5,
            esc(&label)
        );
    }
    (min_y, max_y)
}

/// Bands as rows of zone chips (grouped by first tag, [`CHIPS`] a line);
/// conduits between bands as arcs in the margins: down the right margin,
/// up the left one, a loop on the right for a band's own.
fn grouped(policy: &Policy, graph: &FlowGraph) -> Canvas {
    let cols = columns(policy);
    let inner = CHIPS as f64 * (SMALL_W + 8.0) - 8.0 + 2.0 * PAD;
    let edges = band_edges(policy, graph);
    // Margins wide enough for the arcs and their labels.
    let index: BTreeMap<usize, usize> = cols.iter().enumerate().map(|(i, c)| (c.0, i)).collect();
    let (mut left, mut right) = (30.0_f64, 30.0_f64);
    for ((a, b), (count, services)) in &edges {
        let span = index[a].abs_diff(index[b]) as f64;
        let w = 6.0 * band_label(*count, services).chars().count() as f64 + 20.0;
        if index[a] > index[b] {
            left = left.max(arc_bulge(span) * 0.75 + w);
        } else {
            right = right.max(arc_bulge(span) * 0.75 + w);
        }
    }
    let x0 = left;
    let mut body = String::new();
    let mut strips: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    let mut y = 10.0;
    for (b, col) in &cols {
        let mut zones = col.clone();
        zones.sort_by(|&p, &q| {
            let (zp, zq) = (policy.zone(p), policy.zone(q));
            first_tag(zp)
                .cmp(first_tag(zq))
                .then_with(|| natural(&zp.name, &zq.name))
        });
        let top = y;
        let mut chips = String::new();
        let mut cy = y + GROUP_TITLE + PAD;
        let mut i = 0;
        while i < zones.len() {
            let tag = first_tag(policy.zone(zones[i])).to_owned();
            let n = zones[i..]
                .iter()
                .take_while(|&&z| first_tag(policy.zone(z)) == tag)
                .count();
            let head = if tag.is_empty() {
                format!("no tag ({n})")
            } else {
                format!("tag {tag} ({n})")
            };
            let _ = writeln!(
                chips,
                "<text class=\"tag-head\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x0 + PAD,
                cy + 11.0,
                esc(&head)
            );
            cy += 16.0;
            for (k, &z) in zones[i..i + n].iter().enumerate() {
                let (line, pos) = (k / CHIPS, k % CHIPS);
                node(
                    &mut chips,
                    policy,
                    graph,
                    z,
                    Box {
                        x: x0 + PAD + pos as f64 * (SMALL_W + 8.0),
                        y: cy + line as f64 * (SMALL_H + SMALL_GAP),
                        w: SMALL_W,
                        h: SMALL_H,
                    },
                    false,
                );
            }
            cy += n.div_ceil(CHIPS) as f64 * (SMALL_H + SMALL_GAP) + 4.0;
            i += n;
        }
        let h = cy - top + PAD - 4.0;
        let class = if *b == 0 { "band band-outside" } else { "band" };
        let _ = writeln!(
            body,
            "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{inner:.1}\" height=\"{h:.1}\" rx=\"8\"/><text class=\"band-title\" x=\"{:.1}\" y=\"{:.1}\">{} ({})</text>",
            x0 + 10.0,
            top + 17.0,
            BANDS[*b],
            col.len()
        );
        body.push_str(&chips);
        strips.insert(*b, (top, h));
        y = top + h + 26.0;
    }
    let height = y - 26.0 + 10.0;
    let (xl, xr) = (x0, x0 + inner);
    // Each strip hands out endpoints down its side so arcs do not share one.
    let mut slots: BTreeMap<(usize, bool), usize> = BTreeMap::new();
    let mut slot = |b: usize, right_side: bool| {
        let (top, h) = strips[&b];
        let k = slots.entry((b, right_side)).or_default();
        let y = top + 24.0 + (*k as f64 * 9.0) % (h - 30.0).max(1.0);
        *k += 1;
        y
    };
    let mut labels = Labels::default();
    let mut arcs_svg = String::new();
    let width = xr + right;
    for ((a, b), (count, services)) in &edges {
        let label = band_label(*count, services);
        let stroke = (1.0 + (*count as f64).ln()).min(6.0);
        let span = index[a].abs_diff(index[b]) as f64;
        let (d, at, anchor) = if index[a] > index[b] {
            let (ya, yb) = (slot(*a, false), slot(*b, false));
            let bulge = arc_bulge(span);
            (
                format!(
                    "M{xl:.1},{ya:.1} C{:.1},{ya:.1} {:.1},{yb:.1} {:.1},{yb:.1}",
                    xl - bulge,
                    xl - bulge,
                    xl - 1.0
                ),
                (xl - bulge * 0.75 - 4.0, f64::midpoint(ya, yb)),
                "end",
            )
        } else {
            let (ya, yb) = (slot(*a, true), slot(*b, true));
            let bulge = if a == b { 40.0 } else { arc_bulge(span) };
            let yb = if a == b { ya + 12.0 } else { yb };
            (
                format!(
                    "M{xr:.1},{ya:.1} C{:.1},{ya:.1} {:.1},{yb:.1} {:.1},{yb:.1}",
                    xr + bulge,
                    xr + bulge,
                    xr + 1.0
                ),
                (xr + bulge * 0.75 + 4.0, f64::midpoint(ya, yb)),
                "start",
            )
        };
        let _ = writeln!(
            arcs_svg,
            "<path class=\"conduit group\" style=\"stroke-width:{stroke:.1}\" d=\"{d}\" marker-end=\"url(#wg-arrow-group)\"><title>{}</title></path>",
            esc(&format!("{} to {}: {label}", BANDS[*a], BANDS[*b]))
        );
        let (lx, ly) = labels.place_anchored(at, anchor);
        let _ = writeln!(
            arcs_svg,
            "<text class=\"label\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            ly + 3.5,
            esc(&label)
        );
    }
    body.push_str(&arcs_svg);
    Canvas {
        body,
        width,
        height: height.max(labels.bottom()),
    }
}

fn arc_bulge(span: f64) -> f64 {
    30.0 + 22.0 * span
}

fn bands_only(policy: &Policy, graph: &FlowGraph) -> Canvas {
    let cols = columns(policy);
    let mut body = String::new();
    let mut centre = BTreeMap::new();
    let (w, h) = (220.0, 120.0);
    let mut x = 20.0;
    for (b, col) in &cols {
        band_box(&mut body, *b, x, w, h, col.len());
        let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
        for &z in col {
            *tags.entry(first_tag(policy.zone(z))).or_default() += 1;
        }
        let mut by: Vec<_> = tags.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (i, (tag, n)) in by.iter().take(5).enumerate() {
            let t = if tag.is_empty() {
                format!("{n} zones without a tag")
            } else {
                format!("{n} zones tagged {tag}")
            };
            let _ = writeln!(
                body,
                "<text class=\"zmeta\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 12.0,
                80.0 + 18.0 * i as f64,
                esc(&truncate(&t, 34))
            );
        }
        centre.insert(*b, x + w / 2.0);
        x += w + GROUP_GAP;
    }
    let mut arcs_svg = String::new();
    let (min_y, max_y) = arcs(&mut arcs_svg, policy, graph, &centre, 40.0, 40.0 + h);
    let shift = (20.0 - min_y).max(0.0);
    Canvas {
        body: format!("<g transform=\"translate(0,{shift:.1})\">\n{body}{arcs_svg}</g>\n"),
        width: x - GROUP_GAP + 40.0,
        height: max_y + shift + 10.0,
    }
}

/// Names in the order people read them: runs of digits compare as numbers
/// (`ward2` before `ward10`), the rest as text; equal runs fall back to
/// plain text order, so distinct names never compare equal.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some(run)
        })
    }
    fn key(run: &str) -> (bool, usize, &str) {
        let number = run.trim_start_matches('0');
        (
            run.starts_with(|c: char| c.is_ascii_digit()),
            number.len(),
            number,
        )
    }
    let (mut x, mut y) = (runs(a), runs(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(p), Some(q)) => {
                let order = match (key(p), key(q)) {
                    ((true, lp, np), (true, lq, nq)) => lp.cmp(&lq).then(np.cmp(nq)),
                    _ => p.cmp(q),
                };
                if order.is_ne() {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod natural_tests {
    use super::natural;

    #[test]
    fn digits_compare_as_numbers() {
        let mut names = vec!["z10", "z2", "z100", "z1", "ward-b", "ward-a", "z02", "icu"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(
            names,
            ["icu", "ward-a", "ward-b", "z1", "z02", "z2", "z10", "z100"]
        );
    }
}
