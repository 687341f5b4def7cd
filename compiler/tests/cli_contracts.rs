//! Contracts of the `wardgate` commands that scripts rely on, run as
//! processes: the exact shape of `query --format json`, and bad input that
//! must leave every file as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn wardgate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run wardgate")
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("wardgate-contracts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Self(dir)
    }

    /// Every file in the directory with its contents.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(&self.0)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TODAY: &str = "2026-11-30";

/// Runs a query on the hospital example and parses its JSON answer, checking
/// the documented shape: exactly `verdict`, `src_zone`, `dst_zone`, `rule`;
/// `rule` is null or exactly `file`, `line`, `text`.
fn query_json(extra: &[&str]) -> Value {
    let mut args = vec![
        "query",
        "examples/hospital.ward",
        "--format",
        "json",
        "--today",
        TODAY,
    ];
    args.extend_from_slice(extra);
    let out = wardgate_in(&root(), &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one object on one line: {stdout}"
    );
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    let obj = v.as_object().expect("an object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{stdout}");
    for key in ["verdict", "src_zone", "dst_zone", "rule"] {
        assert!(obj.contains_key(key), "`{key}` missing: {stdout}");
    }
    assert!(
        ["allow", "deny", "audit"].contains(&obj["verdict"].as_str().expect("verdict string")),
        "{stdout}"
    );
    assert!(
        obj["src_zone"].is_string() && obj["dst_zone"].is_string(),
        "{stdout}"
    );
    match &obj["rule"] {
        Value::Null => {}
        Value::Object(rule) => {
            assert_eq!(rule.len(), 3, "{stdout}");
            assert!(rule["file"].is_string(), "{stdout}");
            assert!(rule["line"].is_u64(), "{stdout}");
            assert!(rule["text"].is_string(), "{stdout}");
        }
        other => panic!("`rule` is {other}"),
    }
    v
}

#[test]
fn query_json_is_one_object_of_the_documented_shape() {
    let allow = query_json(&["--from", "10.20.0.5", "--to", "10.30.0.7", "--port", "104"]);
    assert_eq!(allow["verdict"], "allow");
    assert_eq!(allow["src_zone"], "imaging");
    assert_eq!(allow["dst_zone"], "pacs");
    assert_eq!(allow["rule"]["file"], "examples/hospital.ward");
    assert_eq!(allow["rule"]["line"], 132);
    assert_eq!(
        allow["rule"]["text"],
        "allow imaging -> pacs : dicom \"modalities store studies\""
    );

    let deny = query_json(&[
        "--from",
        "10.20.0.5",
        "--to",
        "203.0.113.9",
        "--port",
        "443",
    ]);
    assert_eq!(deny["verdict"], "deny");
    assert_eq!(deny["dst_zone"], "world");
    assert!(deny["rule"].is_object());

    let default_deny = query_json(&[
        "--from",
        "192.168.100.7",
        "--to",
        "10.40.0.9",
        "--port",
        "443",
    ]);
    assert_eq!(default_deny["verdict"], "deny");
    assert!(default_deny["rule"].is_null());

    let intra = query_json(&["--from", "10.20.0.5", "--to", "10.20.0.6", "--port", "22"]);
    assert_eq!(intra["verdict"], "allow");
    assert!(intra["rule"].is_null());
}

#[test]
fn query_says_neighbour_discovery_passes() {
    for t in [
        "133",
        "134",
        "nd-neighbor-solicit",
        "nd-neighbor-advert",
        "nd-redirect",
    ] {
        let nd = query_json(&[
            "--from",
            "2001:db8:20::5",
            "--to",
            "2001:db8:30::7",
            "--proto",
            "icmpv6",
            "--icmp-type",
            t,
        ]);
        assert_eq!(nd["verdict"], "allow", "type {t}");
        assert!(nd["rule"].is_null(), "type {t}");
        let out = wardgate_in(
            &root(),
            &[
                "query",
                "examples/hospital.ward",
                "--today",
                TODAY,
                "--from",
                "2001:db8:20::5",
                "--to",
                "2001:db8:30::7",
                "--proto",
                "icmpv6",
                "--icmp-type",
                t,
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("passes: neighbour discovery"), "{stdout}");
    }
    // Other ICMPv6 types are the policy's business.
    let echo = query_json(&[
        "--from",
        "2001:db8:20::5",
        "--to",
        "2001:db8:30::7",
        "--icmp-type",
        "echo-request",
    ]);
    assert_eq!(echo["verdict"], "deny");
}

const POLICY: &str = "zone imaging { networks 10.20.0.0/23 }\nzone pacs    { networks 10.30.0.0/24 }\n\nallow imaging -> pacs : tcp/104\n";
const UNDEFINED_ZONE: &str =
    "zone imaging { networks 10.20.0.0/23 }\nallow imaging -> nowhere : tcp/104\n";
const SYNTAX_ERROR: &str = "zone a {netwroks 10.0.0.0/8}\n";
const UNFORMATTED: &str = "zone a {networks 10.0.0.0/8}\n";

#[test]
fn bad_input_writes_nothing() {
    let s = Scratch::new("nothing-written");
    std::fs::write(s.0.join("good.ward"), POLICY).unwrap();
    std::fs::write(s.0.join("bad.ward"), UNDEFINED_ZONE).unwrap();
    std::fs::write(s.0.join("broken.ward"), SYNTAX_ERROR).unwrap();
    std::fs::write(s.0.join("messy.ward"), UNFORMATTED).unwrap();
    std::fs::write(s.0.join("old.img"), b"an earlier image").unwrap();
    let before = s.files();
    let cases: &[(&[&str], i32)] = &[
        (
            &["compile", "bad.ward", "-o", "out.img", "--today", TODAY],
            1,
        ),
        (
            &["compile", "bad.ward", "-o", "old.img", "--today", TODAY],
            1,
        ),
        (
            &["compile", "broken.ward", "-o", "out.img", "--today", TODAY],
            1,
        ),
        (&["compile", "missing.ward", "-o", "out.img"], 2),
        (
            &[
                "compile",
                "good.ward",
                "--target",
                "iptables",
                "-o",
                "out.img",
            ],
            2,
        ),
        (
            &[
                "compile",
                "good.ward",
                "-o",
                "out.img",
                "--today",
                "2026-13-01",
            ],
            2,
        ),
        (
            &["compile", "good.ward", "-o", "out.img", "--frobnicate"],
            2,
        ),
        (&["fmt", "broken.ward"], 1),
        (&["fmt", "--check", "messy.ward"], 1),
        (&["fmt", "-", "messy.ward"], 2),
        (&["fmt", "messy.ward", "--frobnicate"], 2),
        (&["check", "bad.ward", "--today", TODAY], 1),
        (
            &[
                "query",
                "bad.ward",
                "--from",
                "10.20.0.5",
                "--to",
                "10.30.0.7",
                "--port",
                "104",
            ],
            1,
        ),
        (&["graph", "bad.ward", "--today", TODAY], 1),
        (&["report", "bad.ward", "--today", TODAY], 1),
        (&["diff", "good.ward", "bad.ward", "--today", TODAY], 1),
        (&["explain", "WG999"], 2),
    ];
    for (args, code) in cases {
        let out = wardgate_in(&s.0, args);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "wardgate {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.is_empty() || !out.stdout.is_empty(),
            "wardgate {}: no message",
            args.join(" ")
        );
        assert!(
            !stderr.contains("panicked"),
            "wardgate {}: {stderr}",
            args.join(" ")
        );
        assert_eq!(
            s.files(),
            before,
            "wardgate {} changed files",
            args.join(" ")
        );
    }
}

/// WG508 judges by port: SNMPv3 uses the ports of v1/v2c, so its help must
/// not send the user to v3 (the warning would stay).
#[test]
fn cleartext_management_help_does_not_recommend_snmp_v3() {
    let s = Scratch::new("wg508");
    std::fs::write(
        s.0.join("p.ward"),
        "zone imaging { networks 10.20.0.0/23 tags medical }\nzone nms { hosts 10.0.5.5 }\nallow nms -> imaging : udp/161\n",
    )
    .unwrap();
    let out = wardgate_in(
        &s.0,
        &["check", "p.ward", "--format", "json", "--today", TODAY],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let d = v["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .find(|d| d["code"] == "WG508")
        .expect("WG508 reported");
    let help = d["help"].as_str().expect("help");
    assert!(
        !help.contains("snmp v3 instead") && !help.contains("or snmp v3"),
        "{help}"
    );
    assert!(help.contains("same ports"), "{help}");
}
