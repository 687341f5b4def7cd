//! `examples/prometheus/`: the alert rules pass `promtool check rules`
//! (Debian's Prometheus), the Grafana dashboard is valid JSON, and every
//! metric either one queries is one the agent exports (so a renamed metric
//! cannot silently leave an alert that never fires).

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use wardgate_agent::{
    AttachMode,
    bundle_source::BundleStatus,
    metrics::{Input, RuleHits, render},
};
use wardgate_tests::privilege;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/prometheus")
        .join(name)
}

/// Every `wardgate_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("wardgate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every series name the agent exports, a bundle source included.
fn exported() -> BTreeSet<String> {
    let page = render(&Input {
        rules: vec![RuleHits {
            id: 0,
            action: "allow",
            location: "h.ward:1".into(),
            from: "a".into(),
            to: "b".into(),
            hits: 1,
        }],
        interfaces: vec![("eth1".into(), AttachMode::Driver)],
        bundle: Some(BundleStatus::default()),
        ..Input::default()
    });
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn check_known(what: &str, queried: &BTreeSet<String>) {
    let exported = exported();
    // Job and scrape names that are not metrics.
    let unknown: Vec<&String> = queried
        .iter()
        .filter(|n| !exported.contains(*n) && n.as_str() != "wardgate_")
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} queries metrics the agent does not export: {unknown:?}\nexported: {exported:?}"
    );
}

#[test]
fn alert_rules_pass_promtool_and_query_real_metrics() {
    let rules = example("wardgate-alerts.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let names = metric_names(&text);
    for expected in [
        "wardgate_bundle_last_success_timestamp_seconds",
        "wardgate_bundle_failures_total",
        "wardgate_drops_total",
        "wardgate_map_capacity",
    ] {
        assert!(names.contains(expected), "no alert uses {expected}");
    }
    check_known("wardgate-alerts.yml", &names);
    if !privilege::tool_available("alert_rules_pass_promtool", "promtool") {
        return;
    }
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("running promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SUCCESS: 9 rules found"), "{stdout}");
}

#[test]
fn dashboard_parses_and_queries_real_metrics() {
    let text = std::fs::read_to_string(example("wardgate-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut names = BTreeSet::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("every panel has targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            names.extend(metric_names(t["expr"].as_str().expect("an expr")));
        }
    }
    assert!(
        names.contains("wardgate_bundle_active_revision"),
        "{names:?}"
    );
    check_known("wardgate-dashboard.json", &names);
}
