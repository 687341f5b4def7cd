//! `wardgate suggest POLICY --flows FILE... [--pcap FILE...]`: observed
//! traffic to `allow` rules with evidence, proved against the site's
//! requirements (`docs/discovery.md`). The work is in
//! `wardgate_compiler::discover`; this file reads the inputs and writes.
//!
//! Exit codes: 0 suggestions (or none) and nothing flagged, 1 something
//! flagged for review, 2 bad input or a write refused (nothing written).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wardgate_compiler::discover::suggest::{self, Settings};
use wardgate_compiler::mud::check;
use wardgate_lang::date::Date;

use super::observe::{self, Inputs};
use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason};

#[derive(clap::Args)]
pub struct Args {
    /// The site policy (`include`s and `inventory` files are followed).
    pub policy: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
    /// A service seen in fewer connections for a zone pair is not proposed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_connections: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ward)]
    pub format: Format,
    /// Add the suggested rules and services to POLICY (formatted as
    /// `wardgate fmt` does); refused if the result would not check.
    #[arg(long)]
    pub write: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A `.ward` fragment: services and rules, evidence as comments.
    Ward,
    Markdown,
    Json,
}

pub fn run(args: &Args) -> ExitCode {
    match suggest_cmd(args) {
        Ok(code) => exit(code),
        Err(message) => {
            eprintln!("error: {message}");
            exit(EXIT_FAILURE)
        }
    }
}

fn suggest_cmd(args: &Args) -> Result<u8, String> {
    let today = args.inputs.today.unwrap_or_else(Date::today_utc);
    let site = observe::load_policy(&args.policy, today)?;
    let obs = observe::read_inputs(&args.inputs)?;
    let settings = Settings {
        min_connections: args.min_connections,
    };
    let report = suggest::suggest(&site.policy, &site.image, &obs, settings, |candidates| {
        check::withhold(
            &args.policy,
            &mut |p: &Path| std::fs::read_to_string(p),
            candidates,
            Some(today),
        )
        .map_err(|e| format!("{}: {e}", args.policy.display()))
    })?;
    match args.format {
        Format::Ward => out!("{}", suggest::render_ward(&report)),
        Format::Markdown => out!("{}", suggest::render_markdown(&report)),
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ),
    }
    if args.write {
        write(&args.policy, &report, today)?;
    }
    Ok(
        if report.flagged.is_empty() && report.unknown_devices.is_empty() {
            EXIT_OK
        } else {
            EXIT_PROBLEMS
        },
    )
}

/// Appends the fragment to the policy's root file, formats it and checks
/// the result; writes nothing unless it checks without errors.
fn write(path: &Path, report: &suggest::Report, today: Date) -> Result<(), String> {
    if report.suggestions.is_empty() {
        eprintln!("note: nothing to add to `{}`", path.display());
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))?;
    let combined = format!(
        "{}\n{}",
        text.trim_end(),
        suggest::write_fragment(report, &today.to_string())
    );
    let formatted = wardgate_lang::fmt::format_source(&combined).map_err(|d| {
        format!(
            "the suggested rules do not parse: {}",
            d.first().map_or("", |d| d.message.as_str())
        )
    })?;
    let mut first = true;
    let loaded = wardgate_lang::load_with(path, &mut |p: &Path| {
        if std::mem::take(&mut first) {
            Ok(formatted.clone())
        } else {
            std::fs::read_to_string(p)
        }
    })
    .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))?;
    let opts = wardgate_compiler::Options { today: Some(today) };
    let (_, diags) = wardgate_compiler::compile(&loaded, &opts);
    if let Some(d) = diags.iter().find(|d| d.is_error()) {
        return Err(format!(
            "not written: `{}` with the suggested rules has an error: {}",
            path.display(),
            d.message
        ));
    }
    std::fs::write(path, formatted)
        .map_err(|e| format!("cannot write `{}`: {}", path.display(), io_reason(&e)))?;
    eprintln!(
        "wrote {} rule{} and {} service{} to `{}`",
        report.suggestions.len(),
        if report.suggestions.len() == 1 {
            ""
        } else {
            "s"
        },
        report.new_services.len(),
        if report.new_services.len() == 1 {
            ""
        } else {
            "s"
        },
        path.display()
    );
    Ok(())
}
