//! `wardgate diff OLD NEW`: flows opened and closed per zone pair and
//! service, requirements newly violated. Exit 0 whatever changed (use
//! `check` to gate a pull request); 1 if either policy has errors.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_compiler::views::diff;
use wardgate_lang::date::Date;

use super::{EXIT_OK, exit, parse_date};

#[derive(clap::Args)]
pub struct Args {
    /// The policy before the change (root file).
    pub old: PathBuf,
    /// The policy after the change (root file).
    pub new: PathBuf,
    /// Output format (`markdown` for a pull-request comment).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Markdown,
}

pub fn run(args: &Args) -> ExitCode {
    let old = match super::compile::load_with(&args.old, args.today, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let new = match super::compile::load_with(&args.new, args.today, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let d = diff::diff(&old.analysis, &new.analysis, &old.image, &new.image);
    match args.format {
        Format::Human => out!("{}", diff::human(&d)),
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&d).expect("diff serializes")
        ),
        Format::Markdown => out!("{}", diff::markdown(&d)),
    }
    exit(EXIT_OK)
}
