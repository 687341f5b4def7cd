//! The subcommands of `wardgate`, one module each.

/// `print!` to stdout that exits quietly on a closed pipe (see [`out`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))
    };
}

/// `println!` to stdout that exits quietly on a closed pipe (see [`out`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod bundle;
pub mod check;
pub mod compile;
pub mod diff;
pub mod drift;
pub mod explain;
pub mod export;
pub mod fmt;
pub mod graph;
pub mod import;
pub mod lsp;
pub mod observe;
pub mod out;
pub mod query;
pub mod report;
pub mod suggest;

use std::process::ExitCode;

use wardgate_lang::CodeInfo;
use wardgate_lang::date::Date;

/// No problems (or nothing to change).
pub const EXIT_OK: u8 = 0;
/// Problems found: errors, warnings with `--deny-warnings`, files to format.
pub const EXIT_PROBLEMS: u8 = 1;
/// Usage or I/O failure (clap also exits 2 on bad usage).
pub const EXIT_FAILURE: u8 = 2;

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// Every diagnostic code the CLI can report: SARIF rule entries and
/// `docs/diagnostics.md` are generated from this list.
pub fn all_codes() -> Vec<&'static CodeInfo> {
    let mut codes: Vec<&'static CodeInfo> = wardgate_lang::codes::ALL.iter().collect();
    // The compiler's codes (WG3xx-WG5xx) are appended here.
    codes.extend(wardgate_compiler::codes::ALL.iter());
    codes.sort_by_key(|c| c.code);
    codes
}

/// An I/O error in the words of the messages (lowercase, no OS error number).
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        // The loader's own reasons ("not a regular file", "larger than
        // 16 MiB"), already worded for the user.
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => e.to_string(),
        _ => e.to_string().to_lowercase(),
    }
}

/// clap value parser for `--today`.
pub fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|e| format!("`{s}` is not a date: {e}"))
}
