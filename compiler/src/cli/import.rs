//! `wardgate import mud FILE... --zone NAME [--bindings FILE] [--policy SITE] [-o OUT]`:
//! Manufacturer Usage Description files (RFC 8520) to a `.ward` fragment of
//! rules for one zone (`docs/mud.md`).
//!
//! Every ACE is imported or reported on stderr with its name (and in the
//! fragment as a comment). Exit codes: 0 every ACE imported, 1 some ACEs
//! reported (the fragment is still written), 2 bad input (nothing written).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use wardgate_compiler::mud::{self, Bindings, Imported, Section, check};
use wardgate_lang::date::Date;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason, parse_date};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Manufacturer Usage Description files (RFC 8520) to `.ward` rules for one zone.
    Mud(Args),
}

#[derive(clap::Args)]
pub struct Args {
    /// MUD files (JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The device's zone (declared in the site policy).
    #[arg(long, value_name = "NAME")]
    pub zone: String,
    /// Where the MUD abstractions are on this site (YAML, see `docs/mud.md`).
    #[arg(long, value_name = "FILE")]
    pub bindings: Option<PathBuf>,
    /// The site policy: rules that would break one of its requirements are
    /// withheld (commented out, with the chain).
    #[arg(long, value_name = "SITE")]
    pub policy: Option<PathBuf>,
    /// Where to write the fragment (default stdout).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// The date rule expiry is judged against with `--policy` (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

pub fn run(command: &Command) -> ExitCode {
    match command {
        Command::Mud(args) => match mud_import(args) {
            Ok(code) => exit(code),
            Err(message) => {
                eprintln!("error: {message}");
                exit(EXIT_FAILURE)
            }
        },
    }
}

/// A path made absolute and free of `.` and `..`, to recognise one file
/// named two ways.
fn same_file(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))
}

fn mud_import(args: &Args) -> Result<u8, String> {
    if !mud::bindings::is_name(&args.zone) {
        return Err(format!("`{}` is not a zone name", args.zone));
    }
    let bindings = match &args.bindings {
        Some(path) => {
            Bindings::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Bindings::default(),
    };
    let mut imports: Vec<(String, Imported)> = Vec::new();
    for path in &args.files {
        let doc = mud::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        imports.push((path.display().to_string(), mud::import(&doc, &bindings)));
    }

    // With the site policy: withhold rules that break a requirement.
    let mut withheld: Vec<BTreeMap<usize, String>> = vec![BTreeMap::new(); imports.len()];
    if let Some(site) = &args.policy {
        let mut candidates = Vec::new();
        let mut index = Vec::new();
        for (s, (_, imported)) in imports.iter().enumerate() {
            for (f, flow) in imported.flows.iter().enumerate() {
                candidates.push(mud::import::rule_text(&args.zone, flow));
                index.push((s, f));
            }
        }
        let today = Some(args.today.unwrap_or_else(Date::today_utc));
        // The fragment being written replaces the one the site may include.
        let replaced = args.output.as_deref().map(same_file);
        if replaced.is_some() && replaced == Some(same_file(site)) {
            return Err(format!(
                "`-o {}` would overwrite the site policy",
                site.display()
            ));
        }
        let verdicts = check::withhold(
            site,
            &mut |p: &Path| {
                if replaced.is_some() && replaced == Some(same_file(p)) {
                    Ok(String::new())
                } else {
                    std::fs::read_to_string(p)
                }
            },
            &candidates,
            today,
        )
        .map_err(|e| format!("{}: {e}", site.display()))?;
        for ((s, f), v) in index.into_iter().zip(verdicts) {
            if let Some(why) = v {
                withheld[s].insert(f, why);
            }
        }
    }

    let sections: Vec<Section<'_>> = imports
        .iter()
        .zip(&withheld)
        .map(|((file, imported), withheld)| Section {
            file,
            imported,
            withheld,
        })
        .collect();
    let text = mud::render(&args.zone, &sections);

    let mut reported = false;
    for s in &sections {
        for (f, why) in s.withheld {
            let flow = &s.imported.flows[*f];
            let names: Vec<&str> = flow.aces.iter().map(|(a, _)| a.as_str()).collect();
            eprintln!(
                "warning: {}: ACE {} withheld: {why}",
                s.file,
                names.join(", ")
            );
            reported = true;
        }
        for p in &s.imported.problems {
            eprintln!(
                "warning: {}: ACE {} ({}) not imported: {}",
                s.file,
                p.ace,
                p.side.name(),
                p.message
            );
            reported = true;
        }
        if let Some(q) = mud::import::quarantine_text(&args.zone, s.imported) {
            eprintln!("note: {}: {}", s.file, q.replace('\n', "\n  "));
        }
    }

    match &args.output {
        Some(out) => std::fs::write(out, &text)
            .map_err(|e| format!("cannot write `{}`: {}", out.display(), io_reason(&e)))?,
        None => out!("{text}"),
    }
    Ok(if reported { EXIT_PROBLEMS } else { EXIT_OK })
}
