//! `wardgate fmt FILE...`: canonical formatting, in place or `--check`.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_lang::SourceMap;
use wardgate_lang::fmt::format_source;
use wardgate_lang::render;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason};

#[derive(clap::Args)]
pub struct Args {
    /// Policy files to format.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Change nothing; exit 1 and name the files that would change.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &Args) -> ExitCode {
    let mut io_failed = false;
    let mut problems = false;
    for path in &args.files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {}", path.display(), io_reason(&e));
                io_failed = true;
                continue;
            }
        };
        let formatted = match format_source(&text) {
            Ok(f) => f,
            Err(diagnostics) => {
                // The parser's file ids start at 0: one file, one map.
                let mut sources = SourceMap::new();
                sources.add(path.clone(), text);
                eprint!("{}", render::human(&diagnostics, &sources));
                eprintln!(
                    "error: `{}` has errors and was not formatted",
                    path.display()
                );
                problems = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if args.check {
            println!("would reformat {}", path.display());
            problems = true;
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!(
                "error: cannot write `{}`: {}",
                path.display(),
                io_reason(&e)
            );
            io_failed = true;
        } else {
            println!("formatted {}", path.display());
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
