//! Suppression comments end to end (issue 10 item 15): `wardgate check`
//! with `--deny-warnings`, and how acknowledged findings appear in JSON,
//! SARIF and the human formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn check(file: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["check", file, "--today", "2026-11-30"])
        .args(args)
        .current_dir(root())
        .output()
        .expect("run wardgate")
}

const GOOD: &str = "compiler/tests/fixtures/suppression.ward";
const BAD: &str = "compiler/tests/fixtures/suppression-problems.ward";

#[test]
fn issue10_acknowledged_findings_do_not_fail_deny_warnings() {
    let out = check(GOOD, &["--deny-warnings"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.ends_with(": no problems found (2 acknowledged by suppression comments)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("WG502"), "{stdout}");
}

#[test]
fn issue10_acknowledged_findings_are_marked_in_json_and_sarif() {
    let json: serde_json::Value =
        serde_json::from_slice(&check(GOOD, &["--format", "json"]).stdout).unwrap();
    assert_eq!(json["warnings"], 0);
    assert_eq!(json["suppressed"], 2);
    let reasons: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["suppressed"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "vendor window, ticket 123",
            "filled by next week's inventory"
        ]
    );
    let sarif: serde_json::Value =
        serde_json::from_slice(&check(GOOD, &["--format", "sarif"]).stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["suppressions"][0]["kind"], "inSource");
    }
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    for rule in rules {
        let id = rule["id"].as_str().unwrap().to_lowercase();
        assert!(
            rule["helpUri"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/docs/diagnostics.md#{id}")),
            "{rule}"
        );
    }
}

#[test]
fn issue10_suppressions_without_reason_or_with_unknown_codes_warn() {
    let out = check(BAD, &["--format", "concise", "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
    let f = BAD;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{f}:5:1: warning[WG225] this suppression gives no reason\n\
             {f}:6:1: warning[WG502] this `allow` is redundant: other `allow` rules already allow everything it does\n\
             {f}:7:1: warning[WG502] this `allow` is redundant: other `allow` rules already allow everything it does\n\
             {f}:7:43: warning[WG225] `WG999` is not a wardgate diagnostic code\n\
             {f}:7:50: warning[WG225] `WG101` is an error, and errors cannot be suppressed\n"
        )
    );
}
