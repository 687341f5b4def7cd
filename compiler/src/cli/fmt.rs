//! `wardgate fmt PATH...`: canonical formatting, in place or `--check`.
//!
//! A PATH is a policy file, a directory (every `.ward` file below it, hidden
//! directories and symbolic links skipped), or `-`: the text on stdin,
//! formatted to stdout, for editors. Formatting needs only a parse: a file
//! that parses but has other errors (an undefined zone, say) is formatted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wardgate_lang::SourceMap;
use wardgate_lang::fmt::format_source;
use wardgate_lang::render;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason};

#[derive(clap::Args)]
pub struct Args {
    /// Policy files, directories (every `.ward` file below), or `-` for stdin
    /// to stdout.
    #[arg(required = true, value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Change nothing; exit 1 and name the files that would change.
    #[arg(long)]
    pub check: bool,
}

/// What happened to one file.
enum Outcome {
    Unchanged,
    Changed,
    /// Did not parse (diagnostics printed) or could not be read or written
    /// (message printed).
    Problem,
    IoFailed,
}

pub fn run(args: &Args) -> ExitCode {
    if args.files.iter().any(|p| p.as_os_str() == "-") {
        if args.files.len() > 1 {
            eprintln!("error: `-` (stdin) cannot be combined with other paths");
            return exit(EXIT_FAILURE);
        }
        return stdin(args.check);
    }
    let files = match expand(&args.files) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("error: {message}");
            return exit(EXIT_FAILURE);
        }
    };
    let mut io_failed = false;
    let mut problems = false;
    for path in &files {
        match file(path, args.check) {
            Outcome::Unchanged => {}
            Outcome::Changed => problems |= args.check,
            Outcome::Problem => problems = true,
            Outcome::IoFailed => io_failed = true,
        }
    }
    if io_failed {
        exit(EXIT_FAILURE)
    } else if problems {
        exit(EXIT_PROBLEMS)
    } else {
        exit(EXIT_OK)
    }
}

/// The files the paths name: files as given, directories replaced by the
/// `.ward` files below them (sorted). A directory without any is an error.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let before = files.len();
        let walk = walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            let entry = entry.map_err(|e| {
                let at = e.path().unwrap_or(path);
                let reason = e.io_error().map_or_else(|| e.to_string(), io_reason);
                format!("cannot read `{}`: {reason}", at.display())
            })?;
            if entry.file_type().is_file() && entry.path().extension() == Some("ward".as_ref()) {
                files.push(entry.into_path());
            }
        }
        if files.len() == before {
            return Err(format!("no `.ward` files under `{}`", path.display()));
        }
    }
    Ok(files)
}

/// Formats one file in place (or only reports it with `check`).
fn file(path: &Path, check: bool) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {}", path.display(), io_reason(&e));
            return Outcome::IoFailed;
        }
    };
    let Some(formatted) = format_or_report(path, text.clone()) else {
        eprintln!(
            "error: `{}` has errors and was not formatted",
            path.display()
        );
        return Outcome::Problem;
    };
    if formatted == text {
        return Outcome::Unchanged;
    }
    if check {
        outln!("would reformat {}", path.display());
    } else if let Err(e) = std::fs::write(path, formatted) {
        eprintln!(
            "error: cannot write `{}`: {}",
            path.display(),
            io_reason(&e)
        );
        return Outcome::IoFailed;
    } else {
        outln!("formatted {}", path.display());
    }
    Outcome::Changed
}

/// `fmt -`: stdin to stdout. With errors nothing goes to stdout (an editor
/// keeps its buffer); with `check` nothing does either, and the exit code
/// says whether the text would change.
fn stdin(check: bool) -> ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("error: cannot read stdin: {}", io_reason(&e));
        return exit(EXIT_FAILURE);
    }
    let Some(formatted) = format_or_report(Path::new("<stdin>"), text.clone()) else {
        eprintln!("error: stdin has errors and was not formatted");
        return exit(EXIT_PROBLEMS);
    };
    if check {
        if formatted == text {
            return exit(EXIT_OK);
        }
        outln!("would reformat <stdin>");
        return exit(EXIT_PROBLEMS);
    }
    out!("{formatted}");
    exit(EXIT_OK)
}

/// The formatted text, or `None` after printing the syntax errors.
fn format_or_report(path: &Path, text: String) -> Option<String> {
    match format_source(&text) {
        Ok(f) => Some(f),
        Err(diagnostics) => {
            // The parser's file ids start at 0: one file, one map.
            let mut sources = SourceMap::new();
            sources.add(path.to_path_buf(), text);
            eprint!("{}", render::human(&diagnostics, &sources));
            None
        }
    }
}
