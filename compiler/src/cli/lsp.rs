//! `wardgate lsp`: the language server on stdin and stdout (see
//! `wardgate_compiler::lsp`).

use std::process::ExitCode;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit};

#[derive(clap::Args)]
pub struct Args {
    /// Accepted for editors that pass it; stdio is the only transport.
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(_args: &Args) -> ExitCode {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match wardgate_compiler::lsp::serve(stdin, stdout) {
        // The protocol: exit code 0 after `shutdown`, 1 without.
        Ok(true) => exit(EXIT_OK),
        Ok(false) => exit(EXIT_PROBLEMS),
        Err(e) => {
            eprintln!("error: wardgate lsp: {}", super::io_reason(&e));
            exit(EXIT_FAILURE)
        }
    }
}
