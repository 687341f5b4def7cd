//! `wardgate`: check, format, compile and explain segmentation policies.
//!
//! One file per command under `cli/`; each has an `Args` struct (clap) and a
//! `run(Args) -> ExitCode`. Exit codes: 0 success, 1 problems found, 2 usage
//! or I/O failure (see `cli::EXIT_*`).
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Segmentation policy as code for hospital networks.
#[derive(Parser)]
#[command(name = "wardgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve, prove requirements and lint a policy.
    Check(cli::check::Args),
    /// Format policies in place, every `.ward` below a directory, or stdin to stdout (`-`).
    Fmt(cli::fmt::Args),
    /// Compile a policy to a policy image for the gateway.
    Compile(cli::compile::Args),
    /// Decide a connection: verdict, both zones and the deciding rule.
    Query(cli::query::Args),
    /// The zone flow graph as Graphviz dot, Mermaid or an SVG diagram.
    Graph(cli::graph::Args),
    /// What a change does to reachability: flows opened and closed, requirements broken.
    Diff(cli::diff::Args),
    /// Exposure per zone and who reaches life-critical zones; `--format html`: the evidence pack.
    Report(cli::report::Args),
    /// What a diagnostic code means: what it reports, why, an example, the fix.
    Explain(cli::explain::Args),
    /// Rules from another format: `mud` (Manufacturer Usage Description files, RFC 8520).
    #[command(subcommand)]
    Import(cli::import::Command),
    /// A policy in another format: `mud` (a draft MUD file of what a zone needs).
    #[command(subcommand)]
    Export(cli::export::Command),
    /// Allow rules from observed traffic (flows logs, captures), with evidence, proved against the requirements.
    Suggest(cli::suggest::Args),
    /// The policy against observed traffic: unused rules, drops and audits by zone pair, expiring rules in use.
    Drift(cli::drift::Args),
    /// A language server for editors, over stdin and stdout (see docs/editors.md).
    Lsp(cli::lsp::Args),
    /// Write an Ed25519 key pair for signing bundles: `NAME.key` and `NAME.pub`.
    Keygen(cli::bundle::KeygenArgs),
    /// Compile a policy into a signed bundle that agents pull over HTTPS.
    Bundle(cli::bundle::BundleArgs),
    /// Check a bundle's signature, file hashes and expiry against a public key.
    VerifyBundle(cli::bundle::VerifyArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => cli::check::run(&args),
        Command::Fmt(args) => cli::fmt::run(&args),
        Command::Compile(args) => cli::compile::run(&args),
        Command::Query(args) => cli::query::run(&args),
        Command::Graph(args) => cli::graph::run(&args),
        Command::Diff(args) => cli::diff::run(&args),
        Command::Report(args) => cli::report::run(&args),
        Command::Explain(args) => cli::explain::run(&args),
        Command::Import(command) => cli::import::run(&command),
        Command::Export(command) => cli::export::run(&command),
        Command::Suggest(args) => cli::suggest::run(&args),
        Command::Drift(args) => cli::drift::run(&args),
        Command::Lsp(args) => cli::lsp::run(&args),
        Command::Keygen(args) => cli::bundle::keygen(&args),
        Command::Bundle(args) => cli::bundle::bundle(&args),
        Command::VerifyBundle(args) => cli::bundle::verify(&args),
    }
}
