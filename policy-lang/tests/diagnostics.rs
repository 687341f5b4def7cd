//! Every diagnostic of the language has a fixture in `examples/bad/` (named
//! after the diagnostic) whose rendered output is snapshotted; every good
//! example is clean and formatted.

use std::path::{Path, PathBuf};

use wardgate_lang::render;
use wardgate_lang::{CodeInfo, Loaded, codes};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Loads a file by its path relative to the workspace root, so rendered
/// paths are the ones a user at the root sees.
fn load(rel: &str) -> Loaded {
    let root = root();
    wardgate_lang::load_with(Path::new(rel), &mut |p: &Path| {
        std::fs::read_to_string(root.join(p))
    })
    .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn ward_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .expect("examples directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ward"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    files
}

fn all_codes() -> Vec<&'static CodeInfo> {
    codes::ALL.iter().collect()
}

#[test]
fn every_code_has_a_fixture_that_reports_it() {
    for code in codes::ALL {
        let rel = format!("examples/bad/{}.ward", code.name);
        assert!(
            root().join(&rel).exists(),
            "{} has no fixture {rel}",
            code.code
        );
        let loaded = load(&rel);
        assert!(
            loaded.diagnostics.iter().any(|d| d.code == code.code),
            "{rel} does not report {}: {:#?}",
            code.code,
            loaded.diagnostics
        );
    }
}

/// Every fixture in all four formats. SARIF is snapshotted as its results
/// (where line and column are); the rule table is the same for every run and
/// is snapshotted once, in full, by `full_sarif_log`.
#[test]
fn bad_examples_render_in_every_format() {
    for rel in ward_files("examples/bad") {
        let loaded = load(&rel);
        assert!(!loaded.diagnostics.is_empty(), "{rel} reports nothing");
        let name = Path::new(&rel)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let human = render::human(&loaded.diagnostics, &loaded.sources);
        let json = render::json(&loaded.diagnostics, &loaded.sources);
        let github = render::github(&loaded.diagnostics, &loaded.sources);
        let sarif = render::sarif(&loaded.diagnostics, &loaded.sources, &all_codes());
        let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
        let results = serde_json::to_string_pretty(&sarif["runs"][0]["results"]).unwrap();
        insta::assert_snapshot!(format!("{name}.human"), human);
        insta::assert_snapshot!(format!("{name}.json"), json);
        insta::assert_snapshot!(format!("{name}.github"), github);
        insta::assert_snapshot!(format!("{name}.sarif-results"), results);
    }
}

#[test]
fn full_sarif_log() {
    let loaded = load("examples/bad/include-cycle.ward");
    let out = render::sarif(&loaded.diagnostics, &loaded.sources, &all_codes());
    insta::assert_snapshot!("include-cycle.sarif", out);
}

#[test]
fn sarif_has_one_rule_per_code_and_valid_indexes() {
    let loaded = load("examples/bad/undefined-zone.ward");
    let out = render::sarif(&loaded.diagnostics, &loaded.sources, &all_codes());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), codes::ALL.len());
    let result = &v["runs"][0]["results"][0];
    let index = usize::try_from(result["ruleIndex"].as_u64().unwrap()).unwrap();
    assert_eq!(rules[index]["id"], result["ruleId"]);
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        5
    );
}

#[test]
fn good_examples_are_clean_and_formatted() {
    let files = ward_files("examples");
    assert!(files.len() >= 2);
    for rel in files {
        let loaded = load(&rel);
        assert!(
            loaded.diagnostics.is_empty(),
            "{rel}:\n{}",
            render::human(&loaded.diagnostics, &loaded.sources)
        );
        let text = std::fs::read_to_string(root().join(&rel)).unwrap();
        let formatted = wardgate_lang::fmt::format_source(&text).unwrap();
        assert_eq!(
            formatted, text,
            "{rel} is not formatted: run `wardgate fmt {rel}`"
        );
    }
}

#[test]
fn hospital_inventory_fills_zones() {
    let loaded = load("examples/hospital.ward");
    let anesthesia = loaded.policy.zone("anesthesia").unwrap();
    let hosts: Vec<_> = anesthesia.hosts().collect();
    assert_eq!(hosts.len(), 2);
    let device = hosts[0].device.as_ref().unwrap();
    assert_eq!(device.name, "anesthesia-or-1");
    // The host's span points into the YAML file, at the address.
    assert_eq!(
        loaded.sources.path(hosts[0].span.file),
        Path::new("examples/hospital-assets.yaml")
    );
    assert_eq!(loaded.sources.snippet(hosts[0].span), "10.47.0.11");
    // The file-level AST is untouched: the zone has no hosts there.
    assert!(
        loaded.files[0]
            .statements
            .iter()
            .any(|s| matches!(&s.node, wardgate_lang::ast::Statement::Inventory(_)))
    );
}
