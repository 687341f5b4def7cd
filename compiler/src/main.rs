//! `wardgate`: check, format, compile and explain segmentation policies.

use clap::Parser;

/// Segmentation policy as code for hospital networks.
#[derive(Parser)]
#[command(name = "wardgate", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
