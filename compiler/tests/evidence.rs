//! The evidence pack (issue 14): its JSON form as a snapshot, every section
//! in the HTML, one SVG node per zone, and escaping of everything the policy
//! says. The browser test (`tests/tests/report/browser.rs`) renders it.

use std::path::Path;

use wardgate_compiler::model::Date;
use wardgate_compiler::views::evidence::{self, Evidence, Meta, html};
use wardgate_compiler::{Analysis, Options, analyze};

const TODAY: &str = "2026-06-01";

fn load(path: &str) -> (wardgate_lang::Loaded, Analysis) {
    let loaded = wardgate_lang::load(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!loaded.has_errors(), "{path}: {:#?}", loaded.diagnostics);
    let a = analyze(
        &loaded,
        &Options {
            today: TODAY.parse::<Date>().ok(),
        },
    );
    (loaded, a)
}

fn meta(loaded: &wardgate_lang::Loaded, policy: &str) -> Meta {
    Meta {
        policy: policy.to_owned(),
        files: Meta::of_sources(&loaded.sources),
        image_hash: Some("sha256:0000".to_owned()),
        commit: None,
        today: Some(TODAY.to_owned()),
        generator: "wardgate (test)".to_owned(),
    }
}

#[test]
fn evidence_json_of_the_clinic() {
    let (loaded, a) = load("../examples/clinic.ward");
    let e = Evidence::new(&a, &meta(&loaded, "clinic.ward"));
    insta::assert_snapshot!(
        "evidence-clinic.json",
        serde_json::to_string_pretty(&e).unwrap()
    );
}

#[test]
fn html_has_every_section_and_one_svg_node_per_zone() {
    for path in ["../examples/clinic.ward", "../examples/hospital.ward"] {
        let (loaded, a) = load(path);
        let e = Evidence::new(&a, &meta(&loaded, path));
        let doc = html::render(&e);
        for (id, _) in html::SECTIONS {
            assert!(
                doc.contains(&format!("<section id=\"{id}\">")),
                "{path}: no section {id}"
            );
        }
        assert_eq!(
            doc.matches("<g class=\"zone ").count(),
            a.policy.zones.len(),
            "{path}: one node per zone"
        );
        // Self-contained: no script, no external reference.
        assert!(!doc.contains("<script"), "{path}: a script");
        for attr in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(!doc.contains(attr), "{path}: external reference {attr}");
        }
    }
}

#[test]
fn everything_from_the_policy_is_escaped() {
    let src = r#"
zone evil { networks 10.1.0.0/24 description "<script>alert(1)</script> & \"x\"" tags x }
zone ok { networks 10.2.0.0/24 }
allow evil -> ok : tcp/443 until 2026-07-01 "<img src=x onerror=alert(2)>"
"#;
    let loaded = wardgate_lang::parse_str("<b>evil</b>.ward", src);
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let a = analyze(
        &loaded,
        &Options {
            today: TODAY.parse::<Date>().ok(),
        },
    );
    let e = Evidence::new(&a, &meta(&loaded, "<b>evil</b>.ward"));
    let doc = html::render(&e);
    assert!(!doc.contains("<script"), "{doc}");
    assert!(!doc.contains("<img"), "{doc}");
    assert!(!doc.contains("<b>evil"), "{doc}");
    assert!(doc.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
    assert!(doc.contains("&lt;img src=x onerror=alert(2)&gt;"));
    // The expiring conduit is dashed and dated in the diagram.
    assert!(
        e.diagram.contains("class=\"conduit expiring\""),
        "{}",
        e.diagram
    );
    assert!(e.diagram.contains("until 2026-07-01 (30 days)"));
    assert_eq!(evidence::esc("a<'&'>"), "a&lt;&#39;&amp;&#39;&gt;");
}

#[test]
fn large_policies_group_the_diagram_and_keep_a_node_per_zone() {
    use std::fmt::Write as _;
    let mut src = String::new();
    for i in 0..150 {
        let crit = ["low", "medium", "high", "life-critical"][i % 4];
        let tag = ["imaging", "lab", "ward", "infra", "admin"][i % 5];
        let _ = writeln!(
            src,
            "zone z{i} {{ networks 10.{}.{}.0/24 tags {tag} criticality {crit} }}",
            i / 256,
            i % 256
        );
    }
    for i in 0..150 {
        let _ = writeln!(src, "allow z{i} -> z{} : tcp/443", (i * 7 + 3) % 150);
    }
    let loaded = wardgate_lang::parse_str("big.ward", &src);
    let a = analyze(&loaded, &Options::default());
    assert!(!a.has_errors());
    let svg = evidence::svg::diagram(&a.policy, a.graph.as_ref().unwrap(), None);
    assert_eq!(svg.matches("<g class=\"zone ").count(), 151);
    assert!(svg.contains("class=\"tag-head\""), "grouped by tag");
    assert!(svg.contains("zone pairs: tcp/443"), "band-to-band conduits");
}
