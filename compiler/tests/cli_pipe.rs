//! Every command that prints to stdout stops quietly when the reader has gone
//! (`wardgate report policy.ward | head -c1`), as `grep` and `rg` do: exit 0,
//! nothing on stderr, no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `wardgate ARGS` with a stdout whose reading end is already closed, so
/// the first write fails with EPIPE. Returns the exit code and stderr.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run wardgate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HOSPITAL: &str = "examples/hospital.ward";
const TODAY: &str = "2026-11-30";

#[test]
fn closed_stdout_exits_quietly() {
    let cases: &[&[&str]] = &[
        &["report", HOSPITAL, "--today", TODAY],
        &["report", HOSPITAL, "--format", "json", "--today", TODAY],
        &["graph", HOSPITAL, "--today", TODAY],
        &["diff", HOSPITAL, "examples/clinic.ward", "--today", TODAY],
        &["check", HOSPITAL, "--today", TODAY],
        &[
            "query",
            HOSPITAL,
            "--from",
            "10.20.0.5",
            "--to",
            "10.30.0.7",
            "--port",
            "104",
            "--today",
            TODAY,
        ],
        &["explain", "WG101"],
    ];
    for args in cases {
        let (code, stderr) = with_closed_stdout(args);
        assert_eq!(
            code,
            Some(0),
            "wardgate {}: exit {code:?}, stderr:\n{stderr}",
            args.join(" ")
        );
        assert!(
            stderr.is_empty(),
            "wardgate {}: stderr should be empty:\n{stderr}",
            args.join(" ")
        );
    }
}
