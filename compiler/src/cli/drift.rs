//! `wardgate drift POLICY --flows FILE... [--metrics FILE]`: the policy in
//! force against observed traffic (`docs/discovery.md`): allow rules that
//! never matched, dropped and audited flows by zone pair, expiring rules
//! still in use. The work is in `wardgate_compiler::discover::drift`.
//!
//! Exit codes: 0 no drift, 1 drift found, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_compiler::discover::drift;
use wardgate_lang::date::Date;

use super::observe::{self, Inputs};
use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason};

#[derive(clap::Args)]
pub struct Args {
    /// The site policy (`include`s and `inventory` files are followed).
    pub policy: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
    /// A scrape of the agent's metrics (Prometheus text): rule hits count as matches.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Markdown,
}

pub fn run(args: &Args) -> ExitCode {
    match drift_cmd(args) {
        Ok(code) => exit(code),
        Err(message) => {
            eprintln!("error: {message}");
            exit(EXIT_FAILURE)
        }
    }
}

fn drift_cmd(args: &Args) -> Result<u8, String> {
    let today = args.inputs.today.unwrap_or_else(Date::today_utc);
    let site = observe::load_policy(&args.policy, today)?;
    let metrics = match &args.metrics {
        Some(p) => Some(drift::metric_hits(&std::fs::read_to_string(p).map_err(
            |e| format!("cannot read `{}`: {}", p.display(), io_reason(&e)),
        )?)),
        None => None,
    };
    let obs = observe::read_inputs(&args.inputs)?;
    let report = drift::drift(&site.policy, &site.image, &obs, today, metrics.as_ref());
    match args.format {
        Format::Human => out!("{}", drift::render_human(&report)),
        Format::Markdown => out!("{}", drift::render_markdown(&report)),
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ),
    }
    Ok(if report.has_drift() {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    })
}
