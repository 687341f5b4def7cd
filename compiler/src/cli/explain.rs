//! `wardgate explain CODE`: the documentation of one diagnostic, by code
//! (`WG508`, any case) or name (`cleartext-management`), from the same
//! registries that `docs/diagnostics.md` is generated from.

use std::process::ExitCode;

use wardgate_lang::CodeInfo;

use super::{EXIT_FAILURE, EXIT_OK, all_codes, exit};

#[derive(clap::Args)]
pub struct Args {
    /// A diagnostic code (`WG508`) or name (`cleartext-management`).
    #[arg(value_name = "CODE")]
    pub code: String,
}

/// The registry entry for a code or name, case-insensitively.
pub fn find(code: &str) -> Option<&'static CodeInfo> {
    let code = code.trim();
    all_codes()
        .into_iter()
        .find(|c| c.code.eq_ignore_ascii_case(code) || c.name.eq_ignore_ascii_case(code))
}

/// What `explain` prints: heading, summary, explanation (what, why, fix) and
/// the example policy, indented.
pub fn render(c: &CodeInfo) -> String {
    let mut s = format!(
        "{} {} ({})\n\n{}\n\n{}\n",
        c.code, c.name, c.severity, c.summary, c.explanation
    );
    if !c.example.trim().is_empty() {
        s.push_str("\nexample:\n\n");
        for line in c.example.lines() {
            if line.is_empty() {
                s.push('\n');
            } else {
                s.push_str(&format!("    {line}\n"));
            }
        }
    }
    s
}

pub fn run(args: &Args) -> ExitCode {
    match find(&args.code) {
        Some(c) => {
            out!("{}", render(c));
            exit(EXIT_OK)
        }
        None => {
            eprintln!(
                "error: `{}` is not a diagnostic code or name\n  help: codes look like `WG508`; every code is listed in docs/diagnostics.md",
                args.code.escape_debug()
            );
            exit(EXIT_FAILURE)
        }
    }
}
