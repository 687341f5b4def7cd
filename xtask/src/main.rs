//! `cargo xtask`: the project's automation.
//!
//! - `setup`: installs what building and testing need (nightly `rust-src`,
//!   bpf-linker against nightly's LLVM, Debian packages); idempotent.
//! - `build-ebpf`: builds the XDP program (through the agent's build.rs).
//! - `test`: fmt check, clippy `-D warnings`, every test including the
//!   privileged kernel tests.
//! - `demo`: builds everything and shows wardgate's main job.
//! - `package`: the Debian package (cargo-deb), checked with `dpkg-deb -c`.
//! - `bench NAME`: a benchmark that needs root (`forward`; `datapath`; `nft`
//!   beside Aerleon; `suggest`; `fuzz`).
//!
//! Every command runs the parts of `setup` it needs first.
#![forbid(unsafe_code)]

mod bench;
mod demo;
mod package;
mod setup;
mod sh;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the toolchain parts, bpf-linker and Debian packages (idempotent).
    Setup,
    /// Build the XDP program and the agent that embeds it.
    BuildEbpf,
    /// Run the whole test suite: fmt, clippy, unit, integration and kernel tests.
    Test,
    /// Build everything and run the demo.
    Demo,
    /// Build the Debian package (target/debian/wardgate_*.deb) with cargo-deb.
    Package,
    /// Run a benchmark: `forward` (packets per second through a veth gateway), `datapath`,
    /// or `nft` (the nftables backend beside Aerleon's aclgen).
    Bench {
        /// Which benchmark: `forward`, `datapath`, `nft`, `suggest` or `fuzz` (1,000,000 frames through the parser).
        name: String,
        /// For `nft`: the zone counts to run (default 10 100 1000 10000).
        sizes: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::all(),
        Command::BuildEbpf => {
            setup::ebpf_toolchain()?;
            sh::cargo(&["build", "--package", "wardgate-agent"])
        }
        Command::Test => test::run(),
        Command::Demo => demo::run(),
        Command::Package => package::run(),
        Command::Bench { name, sizes } => bench::run(&name, &sizes),
    }
}
