//! `wardgate-agent`: enforces a wardgate policy on a Linux gateway with XDP.

use clap::{Parser, Subcommand};
use wardgate_agent::Program;

#[derive(Parser)]
#[command(name = "wardgate-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the program, attach it to the interfaces and run until interrupted.
    Run {
        /// Interface to attach to (repeat for several).
        #[arg(long = "iface", required = true)]
        ifaces: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Run { ifaces } => {
            let mut program = Program::load()?;
            for iface in &ifaces {
                let attached = program.attach(iface)?;
                log::info!("attached to {} in {} mode", attached.iface, attached.mode);
            }
            log::info!("enforcing; press Ctrl-C to stop");
            let (tx, rx) = std::sync::mpsc::channel();
            ctrlc_wait(tx);
            let _ = rx.recv();
            Ok(())
        }
    }
}

fn ctrlc_wait(tx: std::sync::mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut signals = [0u8; 0];
        let _ = &mut signals;
        // A minimal wait; the full daemon (reload, control socket, metrics) replaces this.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            if tx.send(()).is_err() {
                break;
            }
        }
    });
}
