//! `wardgate report FILE`: exposure per zone, who reaches life-critical
//! zones, what `world` and guest-like zones reach.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_compiler::views::report;
use wardgate_lang::date::Date;

use super::{EXIT_OK, exit, parse_date};

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file.
    pub file: PathBuf,
    /// Output format.
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
    let c = match super::compile::load(&args.file, args.today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let graph = c.analysis.graph.as_ref().expect("an image implies a graph");
    let r = report::report(&c.analysis.policy, graph);
    match args.format {
        Format::Human => out!("{}", report::human(&r)),
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&r).expect("report serializes")
        ),
        Format::Markdown => out!("{}", report::markdown(&r)),
    }
    exit(EXIT_OK)
}
