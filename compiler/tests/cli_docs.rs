//! The `console` examples in `docs/compiler.md` are run and must print what
//! the page shows (so a hash or a line number in the docs cannot go stale).
//! `UPDATE_DOCS=1 cargo test -p wardgate-compiler --test cli_docs` rewrites
//! the outputs in the page; read the diff before committing it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A scratch directory that sees the repository's `examples/` (commands
/// write their outputs here, never into the repository).
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wardgate-cli-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::os::unix::fs::symlink(root().join("examples"), dir.join("examples")).expect("symlink");
    dir
}

/// Runs one `wardgate ...` line as the page shows it; returns stdout.
fn run(dir: &Path, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        args.first(),
        Some(&"wardgate"),
        "not a wardgate command: {line}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(&args[1..])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run wardgate");
    assert!(
        out.status.success(),
        "`{line}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The page with every `console` block's outputs replaced by what the
/// commands print now, and the number of commands run.
fn regenerate(page: &str, dir: &Path) -> (String, usize) {
    let mut out = String::new();
    let mut in_console = false;
    let mut commands = 0;
    for line in page.lines() {
        if in_console {
            if line == "```" {
                in_console = false;
                out.push_str("```\n");
            } else if let Some(cmd) = line.strip_prefix("$ ") {
                commands += 1;
                out.push_str(line);
                out.push('\n');
                out.push_str(&run(dir, cmd));
            }
            // Other lines are the old outputs: regenerated above.
            continue;
        }
        in_console = line == "```console";
        out.push_str(line);
        out.push('\n');
    }
    (out, commands)
}

#[test]
fn compiler_doc_examples_print_what_the_page_shows() {
    let path = root().join("docs/compiler.md");
    let page = std::fs::read_to_string(&path).expect("read docs/compiler.md");
    let dir = scratch();
    let (fresh, commands) = regenerate(&page, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        commands >= 4,
        "only {commands} examples found in docs/compiler.md"
    );
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).expect("write docs/compiler.md");
        return;
    }
    if fresh != page {
        let diff: Vec<String> = page
            .lines()
            .zip(fresh.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "docs/compiler.md examples are stale (UPDATE_DOCS=1 cargo test -p wardgate-compiler --test cli_docs):\n{}",
            diff.join("\n")
        );
    }
}

#[test]
fn compiler_doc_does_not_call_nftables_unsupported() {
    let page = std::fs::read_to_string(root().join("docs/compiler.md")).expect("read");
    assert!(
        !page.contains("not supported"),
        "docs/compiler.md says something is not supported"
    );
    assert!(page.contains("--target nftables"));
}

/// Users read `docs/`, README.md and ARCHITECTURE.md; they must not point to
/// design files the repository does not have.
#[test]
fn user_docs_cite_no_files_outside_the_repository() {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    pages.push(root().join("docs/compiler.md"));
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("read page");
        // Spelled in pieces so that this file does not show up when grepping
        // the repository for such references.
        let missing_files = ["LANGUAGE", "DESIGN", "TOOLCHAIN"].map(|n| format!("{n}.md"));
        let shared = format!("../{}", "shared");
        for missing in missing_files.iter().chain([&shared]) {
            assert!(
                !text.contains(missing),
                "{} cites `{missing}`, which the repository does not have",
                page.display()
            );
        }
    }
}

/// ARCHITECTURE.md's code map names every module of the compiler, and no
/// view that does not exist.
#[test]
fn architecture_names_every_compiler_module() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("read");
    let src = root().join("compiler/src");
    for entry in std::fs::read_dir(&src).expect("compiler/src") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if ["lib.rs", "main.rs", "testutil.rs"].contains(&name.as_str()) {
            continue;
        }
        let named = if name.ends_with(".rs") {
            format!("`{name}`")
        } else {
            format!("`{name}/`")
        };
        assert!(
            arch.contains(&named),
            "ARCHITECTURE.md does not name compiler/src/{name}"
        );
    }
    assert!(
        !src.join("views/query.rs").exists() || arch.contains("views/` (query"),
        "a query view exists: ARCHITECTURE.md should list it"
    );
    assert!(
        src.join("views/query.rs").exists() || !arch.contains("views/` (query"),
        "ARCHITECTURE.md lists a query view that does not exist"
    );
    assert!(
        arch.contains("## Entry points"),
        "ARCHITECTURE.md has no entry points"
    );
}
