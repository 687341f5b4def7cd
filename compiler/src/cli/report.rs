//! `wardgate report FILE`: exposure per zone, who reaches life-critical
//! zones, what `world` and guest-like zones reach; with `--format html` the
//! evidence pack (one self-contained file), with `--format json` its data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wardgate_compiler::discover::drift;
use wardgate_compiler::views::evidence::{self, Evidence, Meta};
use wardgate_compiler::views::report;
use wardgate_lang::date::Date;

use super::{EXIT_FAILURE, EXIT_OK, exit, io_reason, parse_date};

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file.
    pub file: PathBuf,
    /// Output format: `html` is the evidence pack, `json` its data.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The agent's status (`wardgate-agent status --format json`), shown as
    /// enforcement evidence.
    #[arg(long, value_name = "FILE")]
    pub status: Option<PathBuf>,
    /// The agents' flows logs (`--flows-log`), shown as drift: conduits
    /// used, rules never matched, dropped and audited flows.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub flows: Vec<PathBuf>,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Markdown,
    Html,
}

/// The commit of the repository holding `file`, `-dirty` if the policy's
/// files have uncommitted changes; `None` outside a repository or without git.
fn git_commit(file: &Path, files: &[evidence::FileHash]) -> Option<String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let mut args = vec!["status", "--porcelain", "--"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| {
            std::fs::canonicalize(&f.path)
                .map_or_else(|_| f.path.clone(), |p| p.display().to_string())
        })
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let dirty = git(&args).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn read_status(path: &Path) -> Result<serde_json::Value, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {}", path.display(), io_reason(&e));
        exit(EXIT_FAILURE)
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        eprintln!(
            "error: `{}` is not the agent's JSON status: {e}",
            path.display()
        );
        eprintln!("help: write it with `wardgate-agent status --format json > FILE`");
        exit(EXIT_FAILURE)
    })?;
    if v.get("policy").and_then(|p| p.get("hash")).is_none() {
        eprintln!(
            "error: `{}` is not the agent's JSON status: no `policy.hash`",
            path.display()
        );
        eprintln!("help: write it with `wardgate-agent status --format json > FILE`");
        return Err(exit(EXIT_FAILURE));
    }
    Ok(v)
}

/// Writes `text` to `output` or stdout.
pub fn emit(output: Option<&Path>, text: &str) -> ExitCode {
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!(
                    "error: cannot write `{}`: {}",
                    path.display(),
                    io_reason(&e)
                );
                return exit(EXIT_FAILURE);
            }
        }
        None => out!("{text}"),
    }
    exit(EXIT_OK)
}

pub fn run(args: &Args) -> ExitCode {
    if !args.flows.is_empty() && !matches!(args.format, Format::Html | Format::Json) {
        eprintln!(
            "error: `--flows` goes with `--format html` or `--format json` (the evidence pack)"
        );
        return exit(EXIT_FAILURE);
    }
    // Bad input changes nothing: the status is read before anything is written.
    let status = match args.status.as_deref().map(read_status).transpose() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let c = match super::compile::load(&args.file, args.today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let drift = if args.flows.is_empty() {
        None
    } else {
        let inputs = super::observe::Inputs {
            flows: args.flows.clone(),
            pcap: Vec::new(),
            since: None,
            now: None,
            today: args.today,
        };
        match super::observe::read_inputs(&inputs) {
            Ok(obs) => Some(drift::drift(
                &c.analysis.policy,
                &c.image,
                &obs,
                args.today.unwrap_or_else(Date::today_utc),
                None,
            )),
            Err(message) => {
                eprintln!("error: {message}");
                return exit(EXIT_FAILURE);
            }
        }
    };
    let graph = c.analysis.graph.as_ref().expect("an image implies a graph");
    let text = match args.format {
        Format::Human => report::human(&report::report(&c.analysis.policy, graph)),
        Format::Markdown => report::markdown(&report::report(&c.analysis.policy, graph)),
        Format::Json | Format::Html => {
            let files = Meta::of_sources(&c.sources);
            let meta = Meta {
                policy: args.file.display().to_string(),
                commit: git_commit(&args.file, &files),
                files,
                image_hash: Some(format!("sha256:{}", c.image.hash())),
                today: Some(args.today.unwrap_or_else(Date::today_utc).to_string()),
                generator: format!("wardgate {}", env!("CARGO_PKG_VERSION")),
            };
            let mut e = Evidence::with_status(&c.analysis, &meta, status);
            e.drift = drift;
            if args.format == Format::Json {
                let mut s = serde_json::to_string_pretty(&e).expect("evidence serializes");
                s.push('\n');
                s
            } else {
                evidence::html::render(&e)
            }
        }
    };
    emit(args.output.as_deref(), &text)
}
