//! `wardgate graph FILE --format dot|mermaid|svg`: the zone flow graph; `svg`
//! is the evidence pack's zone-and-conduit diagram, drawn by wardgate.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_compiler::views;
use wardgate_lang::date::Date;

use super::parse_date;

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
    Svg,
}

pub fn run(args: &Args) -> ExitCode {
    let c = match super::compile::load(&args.file, args.today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let graph = c.analysis.graph.as_ref().expect("an image implies a graph");
    let out = match args.format {
        Format::Dot => views::graph::dot(&c.analysis.policy, graph),
        Format::Mermaid => views::graph::mermaid(&c.analysis.policy, graph),
        Format::Svg => views::evidence::svg::document(
            &c.analysis.policy,
            graph,
            Some(args.today.unwrap_or_else(Date::today_utc)),
        ),
    };
    super::report::emit(args.output.as_deref(), &out)
}
