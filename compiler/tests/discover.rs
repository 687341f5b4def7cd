//! `wardgate suggest --write` end to end: the suggested rules land in the
//! policy formatted as `wardgate fmt` formats, the result checks, and the
//! same traffic then suggests nothing new. A refused write changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/discover");

fn wardgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("wardgate runs")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wardgate-discover-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["site.ward", "flows.jsonl", "capture.pcap"] {
        std::fs::copy(Path::new(FIXTURES).join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn suggest_write_adds_formatted_rules_that_check_and_cover_the_traffic() {
    let dir = tempdir("write");
    let before = std::fs::read_to_string(dir.join("site.ward")).unwrap();
    let out = wardgate(
        &dir,
        &[
            "suggest",
            "site.ward",
            "--flows",
            "flows.jsonl",
            "--write",
            "--today",
            "2026-01-10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Flagged flows (a requirement, unknown devices) make the exit 1.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("wrote 4 rules and 2 services to `site.ward`"),
        "{stderr}"
    );
    let after = std::fs::read_to_string(dir.join("site.ward")).unwrap();
    assert!(
        after.starts_with(before.trim_end()),
        "the policy is only appended to"
    );
    assert!(
        after.contains("\nallow imaging -> pacs : dicom\n"),
        "{after}"
    );
    assert!(after.contains("\nservice dicom = tcp/11112\n"), "{after}");
    assert!(
        !after.contains("guest -> imaging"),
        "flagged rules stay out: {after}"
    );

    let check = wardgate(&dir, &["check", "site.ward", "--today", "2026-01-10"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let fmt = wardgate(&dir, &["fmt", "--check", "site.ward"]);
    assert_eq!(
        fmt.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fmt.stderr)
    );

    // The same traffic again, and the capture: nothing left to suggest.
    for input in [["--flows", "flows.jsonl"], ["--pcap", "capture.pcap"]] {
        let again = wardgate(
            &dir,
            &[
                "suggest",
                "site.ward",
                input[0],
                input[1],
                "--format",
                "json",
                "--today",
                "2026-01-10",
            ],
        );
        let json: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(json["suggestions"], serde_json::json!([]), "{json:#}");
    }
}

#[test]
fn bad_input_with_write_changes_nothing() {
    let dir = tempdir("refused");
    let site = dir.join("site.ward");
    let before = std::fs::read_to_string(&site).unwrap();
    let out = wardgate(
        &dir,
        &[
            "suggest",
            "site.ward",
            "--flows",
            "missing.jsonl",
            "--write",
            "--today",
            "2026-01-10",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot read `missing.jsonl`: no such file\n"
    );
    assert_eq!(std::fs::read_to_string(&site).unwrap(), before);
}

/// The evidence pack shows the flows logs' drift: the traffic seen, allow
/// rules that never matched, dropped flows by zone pair.
#[test]
fn the_evidence_pack_shows_drift_from_flows_logs() {
    let dir = tempdir("pack");
    let out = wardgate(
        &dir,
        &[
            "report",
            "site.ward",
            "--format",
            "html",
            "-o",
            "pack.html",
            "--flows",
            "flows.jsonl",
            "--today",
            "2026-01-10",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(dir.join("pack.html")).unwrap();
    assert!(
        html.contains("<h3>Observed traffic</h3>"),
        "no drift section"
    );
    assert!(!html.contains("No flow records in this pack"));
    let dropped = html
        .split("<h4>Dropped flows by zone pair</h4>")
        .nth(1)
        .expect("dropped flows table");
    assert!(
        dropped.contains("<td>imaging</td><td>pacs</td>"),
        "{dropped}"
    );

    let json = wardgate(
        &dir,
        &[
            "report",
            "site.ward",
            "--format",
            "json",
            "--flows",
            "flows.jsonl",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v["drift"]["records"].as_u64().unwrap() > 0, "{v}");
}

/// A missing flows log, or `--flows` with a format that cannot show it, is
/// a clear error and writes nothing.
#[test]
fn report_flows_bad_input_writes_nothing() {
    let dir = tempdir("pack-bad");
    let args = ["report", "site.ward", "--format", "html", "-o", "pack.html"];
    let out = wardgate(&dir, &[&args[..], &["--flows", "missing.jsonl"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot read `missing.jsonl`: no such file\n"
    );
    assert!(!dir.join("pack.html").exists());
    let out = wardgate(&dir, &["report", "site.ward", "--flows", "flows.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--flows` goes with"));
}
