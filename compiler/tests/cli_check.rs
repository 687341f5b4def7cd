//! `wardgate check` and `wardgate fmt` as a user runs them: exit code,
//! stdout and stderr, snapshotted. Also keeps `docs/diagnostics.md` in sync
//! with the code registries (`UPDATE_DOCS=1` rewrites it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `wardgate ARGS` at the workspace root; returns a transcript.
fn wardgate(args: &[&str]) -> String {
    wardgate_in(&root(), args)
}

fn wardgate_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run wardgate");
    format!(
        "$ wardgate {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status
            .code()
            .map_or("signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const TODAY: &str = "2026-11-30";

#[test]
fn check_good_examples_exit_0() {
    for example in ["examples/hospital.ward", "examples/clinic.ward"] {
        let out = wardgate(&["check", example, "--today", TODAY]);
        assert!(out.contains("exit: 0\n"), "{out}");
        assert!(out.contains("no problems found"), "{out}");
    }
}

#[test]
fn check_bad_example_every_format() {
    for format in ["human", "json", "sarif", "github"] {
        let out = wardgate(&[
            "check",
            "examples/bad/host-bits-set.ward",
            "--format",
            format,
            "--today",
            TODAY,
        ]);
        insta::assert_snapshot!(format!("host-bits-set.{format}"), out);
    }
}

#[test]
fn check_syntax_error_recovers_and_reports_later_errors() {
    let dir = tempdir("recovery");
    std::fs::write(
        dir.join("p.ward"),
        "zone imaging {\n    netwroks 10.20.0.0/23\n}\nzone pacs { networks 10.30.0.1/24 }\nservice dicom = tcp/104\n",
    )
    .unwrap();
    insta::assert_snapshot!(wardgate_in(&dir, &["check", "p.ward", "--today", TODAY]));
}

#[test]
fn check_json_is_machine_readable() {
    let out = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args([
            "check",
            "examples/bad/inventory-duplicate-address.ward",
            "--format",
            "json",
            "--today",
            TODAY,
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "WG220");
    assert_eq!(d["file"], "examples/bad/inventory/duplicate-address.yaml");
    assert_eq!(d["line"], 7);
    assert_eq!(d["column"], 14);
    assert_eq!(d["labels"][0]["line"], 3);
}

#[test]
fn check_usage_and_io_errors_exit_2() {
    insta::assert_snapshot!(
        "missing-file",
        wardgate(&["check", "examples/no-such.ward"])
    );
    insta::assert_snapshot!(
        "bad-today",
        wardgate(&["check", "examples/clinic.ward", "--today", "2026-02-30"])
    );
    let out = wardgate(&["check", "examples/clinic.ward", "--format", "xml"]);
    assert!(out.contains("exit: 2\n"), "{out}");
}

#[test]
fn check_deny_warnings() {
    // A rule that expired is a warning: exit 0, or 1 with --deny-warnings.
    let dir = tempdir("deny-warnings");
    std::fs::write(
        dir.join("p.ward"),
        "zone a { networks 10.0.0.0/24 }\nzone b { networks 10.0.1.0/24 }\nallow a -> b : tcp/22 until 2026-01-31\n",
    )
    .unwrap();
    let plain = wardgate_in(&dir, &["check", "p.ward", "--today", TODAY]);
    let denied = wardgate_in(
        &dir,
        &["check", "p.ward", "--today", TODAY, "--deny-warnings"],
    );
    if plain.contains("warning") {
        assert!(plain.contains("exit: 0\n"), "{plain}");
        assert!(denied.contains("exit: 1\n"), "{denied}");
    } else {
        // No lint reports the expired rule (yet): both clean.
        assert!(denied.contains("exit: 0\n"), "{denied}");
    }
}

#[test]
fn fmt_check_passes_on_examples() {
    let out = wardgate(&[
        "fmt",
        "--check",
        "examples/hospital.ward",
        "examples/clinic.ward",
    ]);
    assert_eq!(out.lines().nth(1), Some("exit: 0"), "{out}");
}

#[test]
fn fmt_check_names_files_and_fmt_rewrites_them() {
    let dir = tempdir("fmt");
    let messy = "service   https=tcp/443   # web\nzone a{networks 10.0.0.0/24}\nzone bb {\nhosts 10.0.1.1\ntags x,y }\nallow a->bb:https \"why\"\n";
    std::fs::write(dir.join("messy.ward"), messy).unwrap();
    std::fs::write(dir.join("broken.ward"), "zone a {\n").unwrap();
    let check = wardgate_in(&dir, &["fmt", "--check", "messy.ward", "broken.ward"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.ward")).unwrap(),
        messy,
        "--check changed the file"
    );
    let write = wardgate_in(&dir, &["fmt", "messy.ward"]);
    let formatted = std::fs::read_to_string(dir.join("messy.ward")).unwrap();
    let again = wardgate_in(&dir, &["fmt", "--check", "messy.ward"]);
    let missing = wardgate_in(&dir, &["fmt", "nope.ward"]);
    insta::assert_snapshot!(format!(
        "{check}\n{write}\n--- messy.ward\n{formatted}\n{again}\n{missing}"
    ));
}

fn tempdir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wardgate-cli-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every code the CLI can report, as `cli::all_codes` lists them.
fn all_codes() -> Vec<&'static wardgate_lang::CodeInfo> {
    let mut codes: Vec<_> = wardgate_lang::codes::ALL
        .iter()
        .chain(wardgate_compiler::codes::ALL.iter())
        .collect();
    codes.sort_by_key(|c| c.code);
    codes
}

#[test]
fn diagnostics_doc_is_generated_from_the_registries() {
    let path = root().join("docs/diagnostics.md");
    let expected = wardgate_lang::codes::render_markdown(&all_codes());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/diagnostics.md is stale: run `UPDATE_DOCS=1 cargo test -p wardgate-compiler --test cli_check`"
    );
}

#[test]
fn codes_are_unique_and_well_formed() {
    let codes = all_codes();
    for (i, c) in codes.iter().enumerate() {
        assert!(c.code.len() == 5 && c.code.starts_with("WG"), "{}", c.code);
        assert!(
            c.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
            "{}",
            c.name
        );
        for other in &codes[i + 1..] {
            assert_ne!(c.code, other.code, "code used twice");
            assert_ne!(c.name, other.name, "name used twice");
        }
    }
}
