//! `wardgate`: check, format, compile and explain segmentation policies.
//!
//! One file per command under `cli/`; each has an `Args` struct (clap) and a
//! `run(Args) -> ExitCode`. Exit codes: 0 success, 1 problems found, 2 usage
//! or I/O failure (see `cli::EXIT_*`).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Segmentation policy as code for hospital networks.
#[derive(Parser)]
#[command(name = "wardgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve, prove requirements and lint a policy.
    Check(cli::check::Args),
    /// Format policies in place (`--check`: only report files that would change).
    Fmt(cli::fmt::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => cli::check::run(&args),
        Command::Fmt(args) => cli::fmt::run(&args),
    }
}
