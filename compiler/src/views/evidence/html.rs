//! The evidence pack as one self-contained HTML file: inline CSS and SVG, no
//! script, no external asset, a print stylesheet (print to PDF gives a clean
//! document).
//!
//! Templating is plain `write!` into a `String` with one escaping helper,
//! [`esc`], through which every value from the policy passes: the document
//! is a dozen fixed sections, which a template engine would not make
//! shorter, and a hand-written writer keeps the output linear and
//! dependency-free. Each section is a `<section id="...">`; the ids are
//! [`SECTIONS`], which the browser test looks for.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Evidence, esc};

/// Every section's id and title, in document order.
pub const SECTIONS: [(&str, &str); 9] = [
    ("summary", "Summary"),
    ("audit-map", "What each section answers"),
    ("inventory", "Zone inventory"),
    ("diagram", "Zone and conduit diagram"),
    ("conduits", "Conduit register"),
    ("requirements", "Requirement proofs"),
    ("exceptions", "Exceptions"),
    ("exposure", "Exposure and blast radius"),
    ("enforcement", "Enforcement evidence"),
];

const CSS: &str = r"
:root { --ink: #1a1a1a; --muted: #5a5a5a; --line: #d8d8d8; --pass: #1a7f37; --fail: #b2182b; --warn: #9a6700; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: var(--ink); margin: 0; background: #ffffff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
header.doc { border-bottom: 3px solid #2b4a6f; padding-bottom: 12px; margin-bottom: 8px; }
header.doc h1 { margin: 0 0 4px; font-size: 24px; color: #2b4a6f; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 0; font-size: 13px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-family: ui-monospace, 'DejaVu Sans Mono', monospace; overflow-wrap: anywhere; }
nav.toc { font-size: 13px; margin: 12px 0 4px; }
nav.toc a { margin-right: 14px; color: #2b4a6f; }
section { margin-top: 28px; }
h2 { font-size: 19px; border-bottom: 1px solid var(--line); padding-bottom: 4px; color: #2b4a6f; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.note { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 12px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; font-weight: bold; }
.pass { color: #ffffff; background: var(--pass); }
.fail { color: #ffffff; background: var(--fail); }
.warn { color: #ffffff; background: var(--warn); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card b { display: block; font-size: 22px; }
.diagram-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.diagram-wrap svg { max-width: 100%; height: auto; }
ol.chain { margin: 4px 0; padding-left: 20px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media print {
  @page { size: A4 landscape; margin: 14mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  section { break-before: page; margin-top: 0; }
  section#summary, section#audit-map { break-before: auto; }
  h2 { break-after: avoid; }
  tr, .card, ol.chain { break-inside: avoid; }
  thead { display: table-header-group; }
  .diagram-wrap { overflow: visible; border: none; padding: 0; }
  .diagram-wrap svg { width: 100%; height: auto; }
  a { color: inherit; text-decoration: none; }
  th, tbody tr:nth-child(even) td, .badge { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
";

fn opt(s: Option<&str>) -> String {
    s.map_or_else(String::new, esc)
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "<span class=\"note\">(none)</span>".to_owned()
    } else {
        esc(&v.join(", "))
    }
}

fn open(out: &mut String, id: &str) {
    let title = SECTIONS.iter().find(|s| s.0 == id).map_or(id, |s| s.1);
    let _ = writeln!(out, "<section id=\"{id}\">\n<h2>{title}</h2>");
}

/// The whole document.
#[must_use]
pub fn render(e: &Evidence) -> String {
    let mut out = String::with_capacity(64 * 1024 + e.diagram.len());
    let root = &e.meta.policy;
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"{}\">\n<title>Segmentation evidence: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>",
        esc(&e.meta.generator),
        esc(root)
    );
    header(&mut out, e);
    summary(&mut out, e);
    audit_map(&mut out);
    inventory(&mut out, e);
    open(&mut out, "diagram");
    out.push_str("<p class=\"note\">Zones stand in bands from outside the site (world and vendor access) to life-critical, filled by criticality; past 60 zones they are grouped by tag and each arc counts the conduits between two bands. Arrows are conduits: traffic one zone may open to another, labelled with its services. Dashed orange arrows exist only until a date; dashed borders mark zones in monitor mode, where default deny is not enforced yet.</p>\n<div class=\"diagram-wrap\">\n");
    out.push_str(&e.diagram);
    out.push_str("</div>\n</section>\n");
    conduits(&mut out, e);
    requirements(&mut out, e);
    exceptions(&mut out, e);
    exposure(&mut out, e);
    enforcement(&mut out, e);
    let _ = writeln!(
        out,
        "<footer>Generated by {} from the policy itself: regenerate with <code>wardgate report {} --format html --today {}</code> and compare the sha256 values above.</footer>\n</main>\n</body>\n</html>",
        esc(&e.meta.generator),
        esc(root),
        opt(e.meta.today.as_deref())
    );
    out
}

fn header(out: &mut String, e: &Evidence) {
    let m = &e.meta;
    let _ = writeln!(
        out,
        "<header class=\"doc\">\n<h1>Network segmentation evidence</h1>\n<div>Policy <code>{}</code></div>\n<dl class=\"meta\">",
        esc(&m.policy)
    );
    for f in &m.files {
        let _ = writeln!(
            out,
            "<dt>sha256 {}</dt><dd>{}</dd>",
            esc(&f.path),
            esc(&f.sha256)
        );
    }
    if let Some(h) = &m.image_hash {
        let _ = writeln!(out, "<dt>policy image</dt><dd>{}</dd>", esc(h));
    }
    let _ = writeln!(
        out,
        "<dt>git commit</dt><dd>{}</dd>\n<dt>as of</dt><dd>{}</dd>\n<dt>generated by</dt><dd>{}</dd>\n</dl>\n</header>",
        m.commit
            .as_deref()
            .map_or_else(|| "(not in a git repository)".to_owned(), esc),
        opt(m.today.as_deref()),
        esc(&m.generator)
    );
    out.push_str("<nav class=\"toc\">");
    for (id, title) in SECTIONS {
        let _ = write!(out, "<a href=\"#{id}\">{title}</a>");
    }
    out.push_str("</nav>\n");
}

fn summary(out: &mut String, e: &Evidence) {
    let s = &e.summary;
    open(out, "summary");
    out.push_str("<div class=\"cards\">\n");
    let req = format!(
        "{} of {} hold",
        s.requirements - s.requirements_failing,
        s.requirements
    );
    for (v, l) in [
        (s.zones.to_string(), "zones (with world)"),
        (s.devices.to_string(), "inventory devices"),
        (s.conduits.to_string(), "conduits (allow rules)"),
        (s.denies.to_string(), "deny rules"),
        (req, "requirements"),
        (
            format!("{} ({} expired)", s.exceptions, s.exceptions_expired),
            "exceptions",
        ),
    ] {
        let _ = writeln!(out, "<div class=\"card\"><b>{v}</b>{l}</div>");
    }
    out.push_str("</div>\n</section>\n");
}

fn audit_map(out: &mut String) {
    open(out, "audit-map");
    out.push_str("<table><thead><tr><th>section</th><th>IEC 62443-3-2</th><th>HIPAA Security Rule (proposed, 90 FR 898)</th><th>HHS 405(d) HICP practice 5</th></tr></thead><tbody>\n");
    for (id, iec, hipaa, hicp) in [
        (
            "inventory",
            "ZCR 3.1-3.3: zones identified, assets grouped, each zone documented",
            "asset inventory and network map",
            "5.M.A network segmentation: device groups",
        ),
        (
            "diagram",
            "ZCR 3.4-3.5 and ZCR 6: zone and conduit drawing",
            "network map showing segmentation",
            "5.M.A segmentation diagram",
        ),
        (
            "conduits",
            "ZCR 3.5 conduits identified; ZCR 6 requirements per conduit",
            "segmentation as a required specification: permitted flows",
            "5.M.A flows between segments with justification",
        ),
        (
            "requirements",
            "ZCR 5 security level and ZCR 6 requirements verified",
            "verification that segmentation separates ePHI systems",
            "5.L.B verification records",
        ),
        (
            "exceptions",
            "ZCR 6: documented deviations with end dates",
            "documented exceptions",
            "5.M.A temporary access reviewed",
        ),
        (
            "exposure",
            "ZCR 2 and ZCR 5: risk from what each zone can reach",
            "risk analysis input",
            "5.M.A blast radius of a compromised segment",
        ),
        (
            "enforcement",
            "ZCR 6: countermeasures in force",
            "technical safeguard in operation",
            "5.L.B verification of enforcement",
        ),
    ] {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#{id}\">{id}</a></td><td>{iec}</td><td>{hipaa}</td><td>{hicp}</td></tr>"
        );
    }
    out.push_str("</tbody></table>\n<p class=\"note\">The mapping is a reading aid for auditors, not a certification.</p>\n</section>\n");
}

fn inventory(out: &mut String, e: &Evidence) {
    open(out, "inventory");
    out.push_str("<table><thead><tr><th>zone</th><th>description</th><th>prefixes</th><th>devices</th><th>tags</th><th>criticality</th><th>mode</th><th>isolated</th><th>defined at</th></tr></thead><tbody>\n");
    for z in &e.zones {
        let mode = if z.mode == "monitor" {
            "<span class=\"badge warn\">monitor</span>"
        } else {
            "enforce"
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{mode}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(&z.name),
            if z.kind == "vendor" || z.kind == "world" {
                format!(" <span class=\"note\">({})</span>", z.kind)
            } else {
                String::new()
            },
            opt(z.description.as_deref()),
            esc(&z.prefixes.join(", ")),
            z.devices,
            esc(&z.tags.join(", ")),
            opt(z.criticality.as_deref()),
            if z.isolated { "yes" } else { "no" },
            opt(z.origin.as_deref())
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn conduits(out: &mut String, e: &Evidence) {
    open(out, "conduits");
    out.push_str("<p class=\"note\">Every <code>allow</code> rule. Everything else between zones is denied by default.</p>\n<table><thead><tr><th>from</th><th>to</th><th>services</th><th>justification</th><th>until</th><th>source</th></tr></thead><tbody>\n");
    for c in &e.conduits {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(&c.from),
            esc(&c.to),
            esc(&c.services.join(", ")),
            c.justification.as_deref().map_or_else(
                || "<span class=\"badge warn\">none given</span>".to_owned(),
                esc
            ),
            opt(c.until.as_deref()),
            esc(&c.origin)
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn requirements(out: &mut String, e: &Evidence) {
    open(out, "requirements");
    if e.requirements.is_empty() {
        out.push_str("<p class=\"note\">The policy states no <code>require</code>. Add one per guarantee (for example <code>require no-path world -&gt; tag:life-critical</code>) and each is proved on every check.</p>\n");
    }
    out.push_str("<table><thead><tr><th>requirement</th><th>result</th><th>chain (hop by hop)</th><th>source</th></tr></thead><tbody>\n");
    for r in &e.requirements {
        let badge = match r.status {
            "pass" => "<span class=\"badge pass\">PASS</span>",
            "fail" => "<span class=\"badge fail\">FAIL</span>",
            _ => "<span class=\"badge warn\">NOT ENFORCED</span>",
        };
        let chain = if r.chain.is_empty() {
            "proved: no chain of conduits exists".to_owned()
        } else {
            let mut c = String::from("<ol class=\"chain\">");
            for h in &r.chain {
                let _ = write!(c, "<li class=\"mono\">{}</li>", esc(h));
            }
            c.push_str("</ol>");
            c
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{badge}</td><td>{chain}</td><td class=\"mono\">{}</td></tr>",
            esc(&r.text),
            esc(&r.origin)
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn exceptions(out: &mut String, e: &Evidence) {
    open(out, "exceptions");
    if e.exceptions.is_empty() {
        out.push_str("<p class=\"note\">No rule has an <code>until</code> date.</p>\n");
    }
    out.push_str("<table><thead><tr><th>rule</th><th>justification</th><th>until</th><th>days left</th><th>source</th></tr></thead><tbody>\n");
    for x in &e.exceptions {
        let left = match x.days_left {
            Some(d) if d < 0 => {
                format!("<span class=\"badge fail\">expired {} days ago</span>", -d)
            }
            Some(d) => d.to_string(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{left}</td><td class=\"mono\">{}</td></tr>",
            esc(&x.text),
            opt(x.justification.as_deref()),
            esc(&x.until),
            esc(&x.origin)
        );
    }
    out.push_str("</tbody></table>\n<p class=\"note\">Expired rules no longer open anything; they stay listed until removed from the file.</p>\n</section>\n");
}

/// One row per zone: whom it reaches (or is reached by) directly and by any chain.
fn reach_rows(out: &mut String, rows: &[crate::views::report::Exposure]) {
    for x in rows {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&x.zone),
            list(&x.directly),
            list(&x.transitively)
        );
    }
}

fn exposure(out: &mut String, e: &Evidence) {
    let r = &e.exposure;
    open(out, "exposure");
    out.push_str("<h3>Who can reach the life-critical zones</h3>\n<table><thead><tr><th>zone</th><th>directly</th><th>by any chain</th></tr></thead><tbody>\n");
    reach_rows(out, &r.life_critical);
    out.push_str("</tbody></table>\n<h3>What untrusted sources can reach</h3>\n<table><thead><tr><th>source</th><th>directly</th><th>by any chain</th></tr></thead><tbody>\n");
    reach_rows(out, &r.untrusted);
    out.push_str("</tbody></table>\n<h3>Per zone: blast radius if compromised</h3>\n<table><thead><tr><th>zone</th><th>criticality</th><th>reaches directly</th><th>blast radius (zones by any chain)</th><th>reached by (zones by any chain)</th></tr></thead><tbody>\n");
    for z in &r.zones {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&z.zone),
            opt(z.criticality.as_deref()),
            list(&z.reaches),
            z.blast_radius,
            z.reached_by_transitively
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn scalar(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => esc(s),
        Some(Value::Null) | None => String::new(),
        Some(other) => esc(&other.to_string()),
    }
}

fn enforcement(out: &mut String, e: &Evidence) {
    open(out, "enforcement");
    let Some(status) = &e.enforcement else {
        out.push_str("<p class=\"note\">No enforcement evidence in this pack. On each gateway, run <code>wardgate-agent status --format json &gt; gw.json</code> and regenerate with <code>--status gw.json</code>: the pack then shows the policy in force, its hash against this policy's, the interfaces and the counters. </p>\n");
        flows(out, e);
        out.push_str("</section>\n");
        return;
    };
    let hash = field(status, &["policy", "hash"]).and_then(Value::as_str);
    let matches = match (hash, e.meta.image_hash.as_deref()) {
        (Some(a), Some(b)) if a == b => {
            "<span class=\"badge pass\">matches this policy</span>".to_owned()
        }
        (Some(_), Some(_)) => {
            "<span class=\"badge fail\">differs from this policy</span>".to_owned()
        }
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "<table><tbody>\n<tr><th>policy in force</th><td class=\"mono\">{}</td></tr>\n<tr><th>its hash</th><td class=\"mono\">{} {matches}</td></tr>\n<tr><th>generation</th><td>{}</td></tr>\n<tr><th>loaded at</th><td>{}</td></tr>\n<tr><th>monitor everywhere</th><td>{}</td></tr>\n<tr><th>agent uptime (s)</th><td>{}</td></tr>",
        scalar(field(status, &["policy", "file"])),
        scalar(field(status, &["policy", "hash"])),
        scalar(field(status, &["policy", "generation"])),
        scalar(field(status, &["policy", "loaded_at"])),
        scalar(field(status, &["monitor_all"])),
        scalar(field(status, &["uptime_secs"]))
    );
    if let Some(Value::Array(ifaces)) = field(status, &["interfaces"]) {
        let names: Vec<String> = ifaces
            .iter()
            .map(|i| format!("{} ({})", scalar(i.get("name")), scalar(i.get("mode"))))
            .collect();
        let _ = writeln!(
            out,
            "<tr><th>interfaces</th><td>{}</td></tr>",
            names.join(", ")
        );
    }
    out.push_str("</tbody></table>\n");
    if let Some(Value::Object(sum)) = field(status, &["summary"]) {
        out.push_str("<h3>Counters</h3>\n<table><thead><tr><th>counter</th><th>value</th></tr></thead><tbody>\n");
        for (k, v) in sum {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(k),
                scalar(Some(v))
            );
        }
        out.push_str("</tbody></table>\n");
    }
    flows(out, e);
    out.push_str("</section>\n");
}

/// The flows logs' evidence (`wardgate drift`), or how to add it.
fn flows(out: &mut String, e: &Evidence) {
    let Some(d) = &e.drift else {
        out.push_str("<p class=\"note\">No flow records in this pack. Run the agents with <code>--flows-log FILE</code> and regenerate with <code>--flows FILE</code> (several gateways' logs at once): the pack then shows which conduits traffic used, allow rules that never matched, and what was dropped or passed only as an audit.</p>\n");
        return;
    };
    let _ = writeln!(
        out,
        "<h3>Observed traffic</h3>\n<p>{} flow records, first seen {}, last seen {}.</p>",
        d.records,
        esc(&d.first_seen),
        esc(&d.last_seen)
    );
    out.push_str("<h4>Allow rules that never matched</h4>\n");
    if d.never_matched.is_empty() {
        out.push_str("<p>Every allow rule matched traffic in the window.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>rule</th><th>where</th></tr></thead><tbody>\n");
        for r in &d.never_matched {
            let _ = writeln!(
                out,
                "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                esc(&r.rule),
                esc(&r.location)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    for (title, pairs) in [
        ("Dropped flows by zone pair", &d.dropped),
        ("Flows passed only as audits (monitor mode)", &d.audited),
    ] {
        let _ = writeln!(out, "<h4>{title}</h4>");
        if pairs.is_empty() {
            out.push_str("<p>None.</p>\n");
            continue;
        }
        out.push_str("<table><thead><tr><th>from</th><th>to</th><th>services</th><th>connections</th></tr></thead><tbody>\n");
        for p in pairs.iter() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&p.src_zone),
                esc(&p.dst_zone),
                esc(&p.services.join(", ")),
                p.evidence.connections
            );
        }
        out.push_str("</tbody></table>\n");
    }
    if !d.expiring_in_use.is_empty() {
        out.push_str("<h4>Expiring rules still in use</h4>\n<table><thead><tr><th>rule</th><th>until</th><th>days left</th><th>connections</th></tr></thead><tbody>\n");
        for x in &d.expiring_in_use {
            let _ = writeln!(
                out,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&x.rule),
                esc(&x.until),
                x.days_left,
                x.connections
            );
        }
        out.push_str("</tbody></table>\n");
    }
}
