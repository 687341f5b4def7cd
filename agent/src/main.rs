//! `wardgate-agent`: enforces a wardgate policy on a Linux gateway with XDP.
//!
//! `run` is the daemon; `status`, `reload`, `reopen-log`, `quarantine` and
//! `detach` talk to it over its control socket (`quarantine` and `detach`
//! work on the pinned state directly when no agent runs). Exit status: 0
//! done; 1 the agent refused or the operation failed (any start-up
//! validation error, a policy that does not compile, a bad address); 2 usage
//! errors and no agent to talk to.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use wardgate_agent::{
    config::{self, FileConfig, Overrides, Settings, XdpModeSetting},
    control::{
        self, ClientError, DetachResult, QuarantineEntry, QuarantineResult, ReloadResult, Request,
        Response, Status,
    },
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
    Run(Box<RunArgs>),
    /// Show the policy in force, the interfaces and a counters summary.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        /// Print the agent's JSON answer (the same as `--format json`).
        #[arg(long)]
        json: bool,
        /// `json` prints the agent's JSON answer, for `wardgate report --status FILE`.
        #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
        format: StatusFormat,
    },
    /// Recompile the policy file and switch to it; on error the old policy stays (exit 1).
    Reload {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reopen the event log file (after log rotation); the policy is not reloaded.
    ReopenLog {
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
    /// Talks to the running agent (which then exits), or, when nothing
    /// listens on the socket and no running agent holds the pin path,
    /// removes the pinned state under the pin path itself.
    Detach {
        #[command(flatten)]
        client: ClientArgs,
        /// The pin directory, when no agent runs (default: the config file's, or /sys/fs/bpf/wardgate).
        #[arg(long, value_name = "DIR")]
        pin_path: Option<PathBuf>,
    },
}

/// With no agent running, quarantine commands change the pinned map
/// directly (the kernel enforces it at once).
#[derive(Subcommand)]
enum QuarantineAction {
    /// Quarantine ADDRESS.
    Add {
        address: String,
        /// Why (shown by `quarantine list`; kept by a running agent only).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// The pin directory, when no agent runs (default: the config file's, or /sys/fs/bpf/wardgate).
        #[arg(long, value_name = "DIR")]
        pin_path: Option<PathBuf>,
    },
    /// Lift the quarantine of ADDRESS.
    Remove {
        address: String,
        #[command(flatten)]
        client: ClientArgs,
        /// The pin directory, when no agent runs.
        #[arg(long, value_name = "DIR")]
        pin_path: Option<PathBuf>,
    },
    /// List quarantined addresses.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Print the agent's JSON answer.
        #[arg(long)]
        json: bool,
        /// The pin directory, when no agent runs.
        #[arg(long, value_name = "DIR")]
        pin_path: Option<PathBuf>,
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
    /// Size budget of the event log file in MiB; past it the file is renamed to `FILE.1`.
    #[arg(long, value_name = "MIB")]
    events_max_mib: Option<u64>,
    /// No per-rule series in the metrics.
    #[arg(long)]
    no_rule_metrics: bool,
    /// Flows log: flow records of new connections as JSON lines, appended to FILE [default: off].
    #[arg(long, value_name = "FILE")]
    flows_log: Option<PathBuf>,
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
    #[command(flatten)]
    bundle: BundleArgs,
}

/// Pulling the policy as a signed bundle (instead of `--policy`).
#[derive(Args)]
#[command(next_help_heading = "Bundle source")]
struct BundleArgs {
    /// Pull the policy as a signed bundle from this URL; `{gateway}` and `{LABEL}` are replaced.
    #[arg(long, value_name = "URL")]
    bundle_url: Option<String>,
    /// The public key bundles must be signed with (from `wardgate keygen`).
    #[arg(long, value_name = "PUB")]
    trusted_key: Option<PathBuf>,
    /// How often to check for a new bundle (`30s`, `5m`), jittered [default: 60s].
    #[arg(long, value_name = "DURATION")]
    poll: Option<String>,
    /// Trust this CA file (PEM) instead of the system's trust store.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// POST a JSON status here after each attempt.
    #[arg(long, value_name = "URL")]
    status_url: Option<String>,
    /// This gateway's id in URLs and status reports [default: the host name].
    #[arg(long, value_name = "ID")]
    gateway_id: Option<String>,
    /// A label for URLs and status reports (repeat).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Where the last activated bundle is kept [default: /var/lib/wardgate].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

const EXIT_REFUSED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        // A client whose output is cut (`status | head -1`) ends quietly, as
        // grep does, instead of panicking on the closed pipe.
        // SAFETY: restoring the default action of SIGPIPE before any thread starts.
        #[allow(unsafe_code, reason = "signal(2) to restore SIGPIPE's default")]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL)
        };
    }
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Status {
            client,
            json,
            format,
        } => call(&client, &Request::Status {}, |r| {
            if json || format == StatusFormat::Json {
                println!("{}", r.result.clone().unwrap_or_default());
                return Ok(());
            }
            print_status(&r.result_as::<Status>()?);
            Ok(())
        }),
        Command::Reload { client } => call(&client, &Request::Reload {}, |r| {
            let v: ReloadResult = r.result_as()?;
            println!(
                "{} {} (generation {})",
                if v.changed {
                    "switched to"
                } else {
                    "unchanged:"
                },
                v.hash,
                v.generation
            );
            Ok(())
        }),
        Command::ReopenLog { client } => call(&client, &Request::ReopenLog {}, |_| {
            println!("the agent reopens its event log");
            Ok(())
        }),
        Command::Quarantine { action } => quarantine(action),
        Command::Detach { client, pin_path } => detach(&client, pin_path),
    }
}

fn quarantine(action: QuarantineAction) -> ExitCode {
    let (client, pin_path, req) = match action {
        QuarantineAction::Add {
            address,
            reason,
            client,
            pin_path,
        } => (client, pin_path, Request::QuarantineAdd { address, reason }),
        QuarantineAction::Remove {
            address,
            client,
            pin_path,
        } => (client, pin_path, Request::QuarantineRemove { address }),
        QuarantineAction::List {
            client,
            json,
            pin_path,
        } => {
            let show = move |list: Vec<QuarantineEntry>| print_quarantine(&list, json);
            return match send(&client, &Request::QuarantineList {}) {
                Err((_, Some(ClientError::NotRunning { .. }))) => {
                    offline_quarantine(&client, pin_path, None, None, show)
                }
                other => answer(other, |r| {
                    show(r.result_as()?);
                    Ok(())
                }),
            };
        }
    };
    match send(&client, &req) {
        Err((_, Some(ClientError::NotRunning { .. }))) => {
            let (add, remove) = match &req {
                Request::QuarantineAdd { address, .. } => (Some(address.as_str()), None),
                Request::QuarantineRemove { address } => (None, Some(address.as_str())),
                _ => (None, None),
            };
            offline_quarantine(&client, pin_path, add, remove, |_| {
                println!(
                    "no agent running; {} in the pinned quarantine set (enforced now)",
                    match (add, remove) {
                        (Some(a), _) => format!("quarantined {a}"),
                        (_, Some(a)) => format!("released {a}"),
                        _ => String::new(),
                    }
                );
            })
        }
        other => answer(other, |r| {
            let v: QuarantineResult = r.result_as()?;
            if v.quarantined {
                println!("quarantined {}", v.address);
            } else {
                println!("released {} from quarantine", v.address);
            }
            Ok(())
        }),
    }
}

fn print_quarantine(list: &[QuarantineEntry], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(list).expect("quarantine entries serialize")
        );
        return;
    }
    if list.is_empty() {
        println!("no address is quarantined");
    }
    for e in list {
        println!(
            "{}\t{}\t{}",
            e.address,
            e.since.as_deref().unwrap_or("-"),
            e.reason.as_deref().unwrap_or("")
        );
    }
}

/// The pin directory of a client command: the flag, the config file's, the default.
fn pin_dir(client: &ClientArgs, pin_path: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    let file = client_config(client)?;
    Ok(pin_path
        .or(file.pin_path)
        .unwrap_or_else(|| PathBuf::from(wardgate_agent::pin::DEFAULT_PIN_DIR)))
}

fn offline_quarantine(
    client: &ClientArgs,
    pin_path: Option<PathBuf>,
    add: Option<&str>,
    remove: Option<&str>,
    show: impl FnOnce(Vec<QuarantineEntry>),
) -> ExitCode {
    let dir = match pin_dir(client, pin_path) {
        Ok(d) => d,
        Err(c) => return c,
    };
    match daemon::offline_quarantine(&dir, add, remove) {
        Ok(list) => {
            show(list);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_REFUSED)
        }
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
        events_max_mib: args.events_max_mib,
        no_rule_metrics: args.no_rule_metrics,
        monitor_all: args.monitor_all,
        flows_log: args.flows_log,
        fast_path: args.fast_path,
        no_watch: args.no_watch,
        no_failsafe: args.no_failsafe,
        failsafe_ports: args.failsafe_port,
        source: wardgate_agent::bundle_source::SourceFlags {
            url: args.bundle.bundle_url,
            trusted_key: args.bundle.trusted_key,
            poll: args.bundle.poll,
            ca_file: args.bundle.ca_file,
            status_url: args.bundle.status_url,
            gateway_id: args.bundle.gateway_id,
            labels: args.bundle.labels,
            state_dir: args.bundle.state_dir,
        },
    };
    // Every start-up validation error exits 1, wherever it was found.
    let settings = match Settings::resolve(args.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_REFUSED);
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

type Sent = Result<Response, (ExitCode, Option<ClientError>)>;

/// Shows a response with `show`, or its error.
fn answer(sent: Sent, show: impl FnOnce(&Response) -> Result<(), String>) -> ExitCode {
    match sent {
        Ok(resp) if resp.ok => match show(&resp) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_REFUSED)
            }
        },
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

fn call(
    client: &ClientArgs,
    req: &Request,
    show: impl FnOnce(&Response) -> Result<(), String>,
) -> ExitCode {
    answer(send(client, req), show)
}

fn detach(client: &ClientArgs, pin_path: Option<PathBuf>) -> ExitCode {
    match send(client, &Request::Detach {}) {
        // Only "nothing listens there" means no agent: a typo'd path, EACCES
        // or any other error never unpins a running agent's state.
        Err((_, Some(ClientError::NotRunning { path, .. }))) => {
            let dir = match pin_dir(client, pin_path) {
                Ok(d) => d,
                Err(c) => return c,
            };
            detach_offline(&path, &dir)
        }
        other => answer(other, |r| {
            let v: DetachResult = r.result_as()?;
            println!(
                "detached from {} and unpinned {} maps; the agent stopped",
                interfaces_text(&v.interfaces),
                v.maps
            );
            Ok(())
        }),
    }
}

fn detach_offline(socket: &str, dir: &Path) -> ExitCode {
    match daemon::detach_offline(dir) {
        Ok(removed) if removed.maps == 0 && removed.links.is_empty() => {
            println!(
                "no agent is listening on `{socket}` and nothing is pinned under `{}`; nothing changed",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Ok(removed) => {
            println!(
                "no agent is listening on `{socket}`; detached from {} and unpinned {} maps under `{}`",
                interfaces_text(&removed.links),
                removed.maps,
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

fn interfaces_text(names: &[String]) -> String {
    if names.is_empty() {
        "no interface".to_owned()
    } else {
        names.join(", ")
    }
}

/// How `status` prints.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StatusFormat {
    Human,
    Json,
}

fn print_status(v: &Status) {
    let p = &v.policy;
    println!(
        "policy       {} ({}) {} generation {}, loaded {}",
        p.file.display(),
        p.kind,
        p.hash,
        p.generation,
        p.loaded_at.as_deref().unwrap_or("?")
    );
    let ifaces: Vec<String> = v
        .interfaces
        .iter()
        .map(|i| {
            format!(
                "{} ({}{})",
                i.name,
                i.mode,
                if i.adopted { ", adopted" } else { "" }
            )
        })
        .collect();
    println!("interfaces   {}", ifaces.join(", "));
    let s = &v.summary;
    println!(
        "packets      {} seen, {} passed, {} dropped, {} audited",
        s.packets, s.passed, s.dropped, s.audited
    );
    println!(
        "state        {} tracked connections, {} quarantined, {} failsafe entries{}",
        s.tracked_connections,
        s.quarantined,
        v.failsafe.entries,
        if v.monitor_all {
            ", monitor-all ON"
        } else {
            ""
        }
    );
    println!(
        "events       {} written, {} not written (write errors), {} lost",
        s.events_written, s.events_write_failed, s.events_lost
    );
    if let Some(b) = &v.bundle {
        println!(
            "bundle       revision {} from {}, last download {}, last activation {}{}",
            b.active_revision
                .map_or_else(|| "none".to_owned(), |r| r.to_string()),
            b.url,
            b.last_download.as_deref().unwrap_or("-"),
            b.last_activation.as_deref().unwrap_or("-"),
            b.last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    let r = &v.reloads;
    println!(
        "reloads      {} ok, {} failed{}",
        r.success,
        r.failure,
        r.last_error
            .as_deref()
            .map(|e| format!(" (last: {})", e.lines().next().unwrap_or("")))
            .unwrap_or_default()
    );
}
