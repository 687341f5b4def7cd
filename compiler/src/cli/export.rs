//! `wardgate export mud POLICY --zone NAME --url URL [-o OUT] [--bindings-out FILE]`:
//! a draft MUD file (RFC 8520) of what a zone needs, for a manufacturer to
//! complete (`docs/mud.md`). What MUD cannot say is reported on stderr and
//! left out (exit 1); the file is still written.

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_compiler::mud::export;
use wardgate_lang::date::Date;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason, parse_date};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A draft Manufacturer Usage Description file (RFC 8520) of what a zone needs.
    Mud(Args),
}

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file.
    pub policy: PathBuf,
    /// The device's zone.
    #[arg(long, value_name = "NAME")]
    pub zone: String,
    /// The MUD URL the file will be served at.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Where to write the MUD file (default stdout).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Also write a bindings file that maps the file's peers back to zones.
    #[arg(long, value_name = "FILE")]
    pub bindings_out: Option<PathBuf>,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

pub fn run(command: &Command) -> ExitCode {
    let Command::Mud(args) = command;
    let today = args.today.unwrap_or_else(Date::today_utc);
    let compiled = match super::compile::load_with(&args.policy, Some(today), true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let exported = match export::export(&compiled.analysis, &args.zone, &args.url, today) {
        Ok(e) => e,
        Err(message) => {
            eprintln!("error: {message}");
            return exit(EXIT_FAILURE);
        }
    };
    let json = match serde_json::to_string_pretty(&exported.document) {
        Ok(j) => j + "\n",
        Err(e) => {
            eprintln!("error: cannot write the MUD file: {e}");
            return exit(EXIT_FAILURE);
        }
    };
    for (path, text) in [
        (&args.output, &json),
        (&args.bindings_out, &exported.bindings),
    ] {
        if let Some(path) = path
            && let Err(e) = std::fs::write(path, text)
        {
            eprintln!(
                "error: cannot write `{}`: {}",
                path.display(),
                io_reason(&e)
            );
            return exit(EXIT_FAILURE);
        }
    }
    if args.output.is_none() {
        out!("{json}");
    }
    for p in &exported.problems {
        eprintln!("warning: {p}");
    }
    exit(if exported.problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_PROBLEMS
    })
}
