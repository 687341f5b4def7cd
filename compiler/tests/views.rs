//! Snapshots of everything a reviewer reads from the compiler: diagnostics of
//! every lint and requirement (one fixture each, must fire), a clean fixture
//! (must not), and graph, report, diff and query on the examples.
//!
//! Review changes with `cargo insta review`; never hand-edit a `.snap`.

use std::path::Path;

use wardgate_compiler::model::Date;
use wardgate_compiler::views::{diff, graph, report};
use wardgate_compiler::{Analysis, Options, Packet, PolicyImage, analyze, decide};
use wardgate_lang::render::{Format, render};

const TODAY: &str = "2026-06-01";

fn opts() -> Options {
    Options {
        today: TODAY.parse::<Date>().ok(),
    }
}

fn load(path: &str) -> (wardgate_lang::Loaded, Analysis) {
    let loaded = wardgate_lang::load(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!loaded.has_errors(), "{path}: {:#?}", loaded.diagnostics);
    let analysis = analyze(&loaded, &opts());
    (loaded, analysis)
}

fn image(a: &Analysis) -> PolicyImage {
    a.image.clone().unwrap_or_else(|| {
        PolicyImage::build(&a.policy, a.lowered.as_ref().expect("lowered")).expect("fits")
    })
}

fn diagnostics(name: &str) -> String {
    let path = format!("tests/fixtures/{name}.ward");
    let (loaded, analysis) = load(&path);
    let codes: Vec<_> = wardgate_compiler::codes::ALL.iter().collect();
    render(
        Format::Human,
        &analysis.diagnostics,
        &loaded.sources,
        &codes,
    )
}

macro_rules! fixture {
    ($test:ident, $name:literal, $code:literal) => {
        #[test]
        fn $test() {
            let out = diagnostics($name);
            assert!(
                out.contains($code),
                "{} must report {}:\n{out}",
                $name,
                $code
            );
            insta::assert_snapshot!(concat!("diag-", $name), out);
        }
    };
}

fixture!(duplicate_prefix, "duplicate-prefix", "WG301");
fixture!(empty_world, "empty-world", "WG304");
fixture!(whole_address_space, "empty-world", "WG305");
fixture!(
    conntrack_limits_exceed_capacity,
    "conntrack-limits-exceed-capacity",
    "WG306"
);
fixture!(no_flow_violated, "no-flow-violated", "WG401");
fixture!(no_path_violated, "no-path-violated", "WG402");
fixture!(
    requirement_not_enforced,
    "requirement-not-enforced",
    "WG403"
);
fixture!(shadowed_by_deny, "shadowed-by-deny", "WG501");
fixture!(redundant_rule, "redundant-rule", "WG502");
fixture!(unused_service, "unused-service", "WG503");
fixture!(empty_zone, "empty-zone", "WG504");
fixture!(overlapping_prefix, "overlapping-prefix", "WG505");
fixture!(expired_rule, "expired-rule", "WG506");
fixture!(rule_expires_soon, "expired-rule", "WG507");
fixture!(cleartext_management, "cleartext-management", "WG508");
fixture!(medical_to_world, "medical-to-world", "WG509");
fixture!(broad_service, "broad-service", "WG510");

#[test]
fn clean_fixture_and_examples_have_no_compiler_diagnostics() {
    for path in [
        "tests/fixtures/clean.ward",
        "../examples/hospital.ward",
        "../examples/clinic.ward",
    ] {
        let (_, a) = load(path);
        assert!(a.diagnostics.is_empty(), "{path}: {:#?}", a.diagnostics);
        assert!(a.image.is_some(), "{path}");
    }
}

#[test]
fn graphs_of_the_examples() {
    for (name, path) in [
        ("hospital", "../examples/hospital.ward"),
        ("clinic", "../examples/clinic.ward"),
    ] {
        let (_, a) = load(path);
        let g = a.graph.as_ref().unwrap();
        insta::assert_snapshot!(format!("graph-{name}.dot"), graph::dot(&a.policy, g));
        insta::assert_snapshot!(
            format!("graph-{name}.mermaid"),
            graph::mermaid(&a.policy, g)
        );
    }
}

#[test]
fn reports_of_the_examples() {
    for (name, path) in [
        ("hospital", "../examples/hospital.ward"),
        ("clinic", "../examples/clinic.ward"),
    ] {
        let (_, a) = load(path);
        let r = report::report(&a.policy, a.graph.as_ref().unwrap());
        insta::assert_snapshot!(format!("report-{name}.txt"), report::human(&r));
        insta::assert_snapshot!(format!("report-{name}.md"), report::markdown(&r));
    }
    let (_, a) = load("../examples/clinic.ward");
    let r = report::report(&a.policy, a.graph.as_ref().unwrap());
    insta::assert_snapshot!(
        "report-clinic.json",
        serde_json::to_string_pretty(&r).unwrap()
    );
}

#[test]
fn diff_of_a_change_to_the_clinic() {
    let (_, old) = load("../examples/clinic.ward");
    let (_, new) = load("tests/fixtures/clinic-changed.ward");
    let d = diff::diff(&old, &new, &image(&old), &image(&new));
    assert_eq!(d.newly_violated.len(), 1);
    insta::assert_snapshot!("diff-clinic.txt", diff::human(&d));
    insta::assert_snapshot!("diff-clinic.md", diff::markdown(&d));
    insta::assert_snapshot!(
        "diff-clinic.json",
        serde_json::to_string_pretty(&d).unwrap()
    );
    let none = diff::diff(&old, &old, &image(&old), &image(&old));
    assert!(none.is_empty());
}

#[test]
fn queries_on_the_hospital() {
    let (_, a) = load("../examples/hospital.ward");
    let img = a.image.as_ref().unwrap();
    let q = |from: &str, to: &str, proto: u8, port: u16| {
        let d = decide(
            img,
            &Packet {
                src: from.parse().unwrap(),
                dst: to.parse().unwrap(),
                proto,
                port,
            },
        );
        let rule = d
            .rule
            .and_then(|r| img.rule(r))
            .map_or("null".to_owned(), |r| {
                format!("{}:{} {}", r.file, r.line, r.text)
            });
        format!(
            "{from} -> {to} proto {proto} port {port}: {} {} -> {} rule {rule}",
            d.verdict.as_str(),
            img.zone_name(d.src_zone),
            img.zone_name(d.dst_zone)
        )
    };
    let lines = [
        q("10.20.0.5", "10.30.0.7", 6, 104),
        q("10.20.0.5", "10.30.0.7", 6, 80),
        q("10.20.0.5", "8.8.8.8", 6, 443),
        q("10.40.0.5", "10.40.0.6", 6, 443),
        q("10.55.0.5", "10.55.0.6", 6, 443),
        q("10.60.0.5", "10.40.0.6", 1, 8),
        q("2001:db8:20::5", "2001:db8:30::7", 6, 11112),
        q("192.168.100.7", "10.50.0.1", 6, 443),
        q("203.0.113.9", "10.70.0.2", 50, 0),
        q("10.41.0.10", "10.40.1.1", 6, 443),
    ];
    insta::assert_snapshot!("query-hospital", lines.join("\n"));
}

#[test]
fn image_of_the_clinic_is_deterministic_and_stable() {
    let (_, a) = load("../examples/clinic.ward");
    let (_, b) = load("../examples/clinic.ward");
    let bytes = image(&a).to_bytes();
    assert_eq!(bytes, image(&b).to_bytes());
    insta::assert_snapshot!("image-clinic", String::from_utf8(bytes).unwrap());
}
