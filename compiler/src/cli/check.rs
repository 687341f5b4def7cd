//! `wardgate check FILE`: parse, resolve, prove requirements, lint.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_lang::date::Date;
use wardgate_lang::render::{self, Format};
use wardgate_lang::{Diagnostic, Loaded};

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, all_codes, exit, io_reason, parse_date};

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file (`include`s and `inventory` files are followed).
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Human)]
    pub format: FormatArg,
    /// Exit 1 on warnings too (findings acknowledged by a suppression
    /// comment do not count).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Accept a policy that declares no zone (WG221 `no-zones`), such as an
    /// empty file; without it an empty policy is an error.
    #[arg(long)]
    pub allow_empty: bool,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
    /// A directory outside the root policy's directory that `include` and
    /// `inventory` may read from (repeatable).
    #[arg(long, value_name = "DIR")]
    pub allow_outside: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Human,
    /// One line per diagnostic: `file:line:col: severity[CODE] message`.
    Concise,
    Json,
    Sarif,
    Github,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Human => Format::Human,
            FormatArg::Concise => Format::Concise,
            FormatArg::Json => Format::Json,
            FormatArg::Sarif => Format::Sarif,
            FormatArg::Github => Format::Github,
        }
    }
}

pub fn run(args: &Args) -> ExitCode {
    let options = wardgate_lang::LoadOptions {
        allow_outside: args.allow_outside.clone(),
    };
    let loaded = match wardgate_lang::load_with_options(&args.file, &options) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!(
                "error: cannot read `{}`: {}",
                render::sanitize(&args.file.display().to_string(), false),
                io_reason(&e)
            );
            return exit(EXIT_FAILURE);
        }
    };
    let today = args.today.unwrap_or_else(Date::today_utc);
    let mut diagnostics = diagnostics(&loaded, today, args.allow_empty);
    // `# wardgate: allow(CODE) "reason"` comments acknowledge findings.
    loaded.suppress(&mut diagnostics, &all_codes());

    let format = Format::from(args.format);
    out!(
        "{}",
        render::render(format, &diagnostics, &loaded.sources, &all_codes())
    );
    // Findings acknowledged by a suppression comment count as neither.
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.iter().filter(|d| d.is_warning()).count();
    let suppressed = diagnostics
        .iter()
        .filter(|d| d.suppression.is_some())
        .count();
    if format == Format::Human {
        outln!(
            "{}",
            summary(
                &render::sanitize(&args.file.display().to_string(), false),
                errors,
                warnings,
                suppressed
            )
        );
    }
    if errors > 0 || (args.deny_warnings && warnings > 0) {
        exit(EXIT_PROBLEMS)
    } else {
        exit(EXIT_OK)
    }
}

/// Every diagnostic of a loaded policy, sorted; `allow_empty` drops WG221
/// (`no-zones`).
fn diagnostics(loaded: &Loaded, today: Date, allow_empty: bool) -> Vec<Diagnostic> {
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.extend(analyze(loaded, today));
    if allow_empty {
        diagnostics.retain(|d| d.code != wardgate_lang::codes::NO_ZONES.code);
    }
    wardgate_lang::diagnostic::sort(&mut diagnostics);
    diagnostics
}

/// The compiler's graph checks and lints over a loaded policy.
fn analyze(loaded: &Loaded, today: Date) -> Vec<Diagnostic> {
    // compiler analysis plugs in here: resolution (WG3xx), requirements
    // (WG4xx) and lints (WG5xx).
    let opts = wardgate_compiler::Options { today: Some(today) };
    wardgate_compiler::analyze(loaded, &opts).diagnostics
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn summary(file: &str, errors: usize, warnings: usize, suppressed: usize) -> String {
    let acknowledged = if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} acknowledged by suppression comments)")
    };
    if errors == 0 && warnings == 0 {
        format!("{file}: no problems found{acknowledged}")
    } else {
        format!(
            "{file}: {}, {}{acknowledged}",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_is_an_error_unless_allowed() {
        let loaded = wardgate_lang::parse_str("empty.ward", "# nothing yet\n");
        let today = Date::today_utc();
        let codes = |allow| -> Vec<&str> {
            diagnostics(&loaded, today, allow)
                .iter()
                .map(|d| d.code)
                .collect()
        };
        assert!(codes(false).contains(&wardgate_lang::codes::NO_ZONES.code));
        assert!(!codes(true).contains(&wardgate_lang::codes::NO_ZONES.code));
    }
}
