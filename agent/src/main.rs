//! `wardgate-agent`: enforces a wardgate policy on a Linux gateway with XDP.
//!
//! `run` is the daemon; `status`, `reload`, `quarantine` and `detach` talk to
//! it over its control socket. Exit status: 0 done; 1 the agent refused or
//! the operation failed (a policy that does not compile, a bad address); 2
//! usage errors and no agent to talk to.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use wardgate_agent::{
    config::{self, FileConfig, Overrides, Settings, XdpModeSetting},
    control::{self, ClientError, Request, Response},
    daemon,
};

#[derive(Parser)]
#[command(name = "wardgate-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the program, attach it to the interfaces and enforce the policy until stopped.
    ///
    /// Stopping the agent leaves enforcement in place (maps and links are
    /// pinned); a new agent adopts it. `detach` removes it.
    Run(RunArgs),
    /// Show the policy in force, the interfaces and a counters summary.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        /// Print the agent's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Recompile the policy file and switch to it; on error the old policy stays (exit 1).
    Reload {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cut all traffic from and to an address at once, established connections included.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Detach from every interface and unpin all state: the gateway stops enforcing.
    ///
    /// Talks to the running agent (which then exits), or, when none runs,
    /// removes the pinned state under the pin path itself.
    Detach {
        #[command(flatten)]
        client: ClientArgs,
        /// The pin directory, when no agent runs (default: the config file's, or /sys/fs/bpf/wardgate).
        #[arg(long, value_name = "DIR")]
        pin_path: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Quarantine ADDRESS.
    Add {
        address: String,
        /// Why (shown by `quarantine list`).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lift the quarantine of ADDRESS.
    Remove {
        address: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List quarantined addresses.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Print the agent's JSON answer.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// The agent's control socket (default: the config file's, or /run/wardgate/agent.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The agent's config file, to find its control socket and pin path.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// YAML config file; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The policy: a `.ward` source or an image from `wardgate compile`.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Interface to enforce on (repeat for several).
    #[arg(long = "iface", value_name = "IF")]
    ifaces: Vec<String>,
    /// XDP attach mode.
    #[arg(long, value_enum, value_name = "MODE")]
    xdp_mode: Option<XdpModeSetting>,
    /// Directory on bpffs for the pinned maps and links [default: /sys/fs/bpf/wardgate].
    #[arg(long, value_name = "DIR")]
    pin_path: Option<PathBuf>,
    /// Control socket path [default: /run/wardgate/agent.sock].
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Metrics address `HOST:PORT`, or `off` [default: 127.0.0.1:9750].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Event log: `stdout`, `off` or a file [default: stdout].
    #[arg(long, value_name = "DEST")]
    events: Option<String>,
    /// Events per CPU per second before rate limiting [default: 1000].
    #[arg(long, value_name = "N")]
    events_per_sec: Option<u32>,
    /// Global monitor override: every would-be drop passes as an audit.
    #[arg(long)]
    monitor_all: bool,
    /// Forward allowed, tracked traffic in XDP (FIB lookup and redirect)
    /// instead of the kernel stack; what XDP cannot forward still goes to the stack.
    #[arg(long)]
    fast_path: bool,
    /// Do not reload when the policy file changes.
    #[arg(long)]
    no_watch: bool,
    /// Turn the failsafe off (not recommended: a policy can then lock you out).
    #[arg(long)]
    no_failsafe: bool,
    /// Failsafe TCP port to the gateway's own addresses (repeat) [default: tcp/22].
    #[arg(long, value_name = "tcp/PORT")]
    failsafe_port: Vec<String>,
}

const EXIT_REFUSED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Status { client, json } => call(&client, &Request::Status {}, |v| {
            if json {
                println!("{v}");
            } else {
                print_status(v);
            }
        }),
        Command::Reload { client } => call(&client, &Request::Reload {}, |v| {
            let changed = v["changed"].as_bool().unwrap_or(false);
            println!(
                "{} {} (generation {})",
                if changed { "switched to" } else { "unchanged:" },
                v["hash"].as_str().unwrap_or("?"),
                v["generation"]
            );
        }),
        Command::Quarantine { action } => match action {
            QuarantineAction::Add {
                address,
                reason,
                client,
            } => call(&client, &Request::QuarantineAdd { address, reason }, |v| {
                println!("quarantined {}", v["address"].as_str().unwrap_or("?"))
            }),
            QuarantineAction::Remove { address, client } => {
                call(&client, &Request::QuarantineRemove { address }, |v| {
                    println!(
                        "released {} from quarantine",
                        v["address"].as_str().unwrap_or("?")
                    );
                })
            }
            QuarantineAction::List { client, json } => {
                call(&client, &Request::QuarantineList {}, |v| {
                    if json {
                        println!("{v}");
                        return;
                    }
                    let list = v.as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        println!("no address is quarantined");
                    }
                    for e in list {
                        println!(
                            "{}\t{}\t{}",
                            e["address"].as_str().unwrap_or("?"),
                            e["since"].as_str().unwrap_or("-"),
                            e["reason"].as_str().unwrap_or("")
                        );
                    }
                })
            }
        },
        Command::Detach { client, pin_path } => detach(&client, pin_path),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let overrides = Overrides {
        policy: args.policy,
        interfaces: args.ifaces,
        xdp_mode: args.xdp_mode,
        pin_path: args.pin_path,
        control_socket: args.control_socket,
        metrics: args.metrics,
        events: args.events,
        events_per_sec: args.events_per_sec,
        monitor_all: args.monitor_all,
        fast_path: args.fast_path,
        no_watch: args.no_watch,
        no_failsafe: args.no_failsafe,
        failsafe_ports: args.failsafe_port,
    };
    let settings = match Settings::resolve(args.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match daemon::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

/// The file config of a client command, if it named one.
fn client_config(client: &ClientArgs) -> Result<FileConfig, ExitCode> {
    match &client.config {
        Some(path) => FileConfig::read(path).map_err(|e| {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }),
        None => Ok(FileConfig::default()),
    }
}

fn socket_path(client: &ClientArgs, file: &FileConfig) -> PathBuf {
    client
        .socket
        .clone()
        .or_else(|| {
            let base = client
                .config
                .as_deref()
                .and_then(|c| c.parent())
                .unwrap_or(std::path::Path::new(""));
            file.control_socket.as_ref().map(|p| base.join(p))
        })
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONTROL_SOCKET))
}

fn send(client: &ClientArgs, req: &Request) -> Result<Response, (ExitCode, Option<ClientError>)> {
    let file = client_config(client).map_err(|c| (c, None))?;
    let socket = socket_path(client, &file);
    control::request(&socket, req, Duration::from_secs(120))
        .map_err(|e| (ExitCode::from(EXIT_USAGE), Some(e)))
}

fn call(client: &ClientArgs, req: &Request, show: impl FnOnce(&serde_json::Value)) -> ExitCode {
    match send(client, req) {
        Ok(resp) if resp.ok => {
            show(resp.result.as_ref().unwrap_or(&serde_json::Value::Null));
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            eprintln!("error: {}", resp.error.unwrap_or_default());
            ExitCode::from(EXIT_REFUSED)
        }
        Err((code, err)) => {
            if let Some(err) = err {
                eprintln!("error: {err}");
            }
            code
        }
    }
}

fn detach(client: &ClientArgs, pin_path: Option<PathBuf>) -> ExitCode {
    match send(client, &Request::Detach {}) {
        Ok(resp) if resp.ok => {
            let v = resp.result.unwrap_or_default();
            println!(
                "detached from {} and unpinned {} maps; the agent stopped",
                interfaces_text(&v["interfaces"]),
                v["maps"]
            );
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            eprintln!("error: {}", resp.error.unwrap_or_default());
            ExitCode::from(EXIT_REFUSED)
        }
        Err((code, Some(ClientError::NotRunning { .. }))) => {
            let file = match client_config(client) {
                Ok(f) => f,
                Err(c) => return c,
            };
            let dir = pin_path
                .or(file.pin_path)
                .unwrap_or_else(|| PathBuf::from(wardgate_agent::pin::DEFAULT_PIN_DIR));
            match daemon::detach_offline(&dir) {
                Ok(removed) => {
                    println!(
                        "no agent running; detached from {} and unpinned {} maps under `{}`",
                        interfaces_text(&serde_json::json!(removed.links)),
                        removed.maps,
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    code
                }
            }
        }
        Err((code, err)) => {
            if let Some(err) = err {
                eprintln!("error: {err}");
            }
            code
        }
    }
}

fn interfaces_text(v: &serde_json::Value) -> String {
    let names: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "no interface".to_owned()
    } else {
        names.join(", ")
    }
}

fn print_status(v: &serde_json::Value) {
    let p = &v["policy"];
    println!(
        "policy       {} ({}) {} generation {}, loaded {}",
        p["file"].as_str().unwrap_or("?"),
        p["kind"].as_str().unwrap_or("?"),
        p["hash"].as_str().unwrap_or("?"),
        p["generation"],
        p["loaded_at"].as_str().unwrap_or("?")
    );
    let ifaces: Vec<String> = v["interfaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    format!(
                        "{} ({}{})",
                        i["name"].as_str().unwrap_or("?"),
                        i["mode"].as_str().unwrap_or("?"),
                        if i["adopted"].as_bool() == Some(true) {
                            ", adopted"
                        } else {
                            ""
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("interfaces   {}", ifaces.join(", "));
    let s = &v["summary"];
    println!(
        "packets      {} seen, {} passed, {} dropped, {} audited",
        s["packets"], s["passed"], s["dropped"], s["audited"]
    );
    println!(
        "state        {} tracked connections, {} quarantined, {} failsafe entries{}",
        s["tracked_connections"],
        s["quarantined"],
        v["failsafe"]["entries"],
        if v["monitor_all"].as_bool() == Some(true) {
            ", monitor-all ON"
        } else {
            ""
        }
    );
    println!(
        "events       {} written, {} lost",
        s["events_written"], s["events_lost"]
    );
    let r = &v["reloads"];
    println!(
        "reloads      {} ok, {} failed{}",
        r["success"],
        r["failure"],
        r["last_error"]
            .as_str()
            .map(|e| format!(" (last: {})", e.lines().next().unwrap_or("")))
            .unwrap_or_default()
    );
}
