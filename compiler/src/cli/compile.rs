//! `wardgate compile FILE -o OUT`: the policy image (see `docs/image.md`).
//!
//! Also home of [`load`], which the other compiler commands share: load,
//! analyse, and on errors print them and stop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wardgate_compiler::{Analysis, Options, PolicyImage};
use wardgate_lang::Diagnostic;
use wardgate_lang::date::Date;
use wardgate_lang::render::{self, Format};

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, all_codes, exit, io_reason, parse_date};

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file.
    pub file: PathBuf,
    /// Where to write the image.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// What to compile to: `image` (the policy image) or `nftables` (an
    /// equivalent ruleset for `nft -f`, see `docs/nftables.md`).
    #[arg(long, default_value = "image")]
    pub target: String,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

/// A loaded, analysed policy without errors, and its image.
pub struct Compiled {
    pub analysis: Analysis,
    pub image: PolicyImage,
    /// Every file read (the evidence pack hashes them, `bundle` packs them).
    pub sources: wardgate_lang::SourceMap,
}

/// Loads and analyses a policy. On an I/O failure or any error, prints the
/// diagnostics (human form) to stderr and returns the exit code.
pub fn load(file: &Path, today: Option<Date>) -> Result<Compiled, ExitCode> {
    load_with(file, today, false)
}

/// [`load`], optionally going on despite violated requirements (WG4xx):
/// `diff` must show a change that breaks one.
pub fn load_with(
    file: &Path,
    today: Option<Date>,
    requirement_errors_ok: bool,
) -> Result<Compiled, ExitCode> {
    let loaded = wardgate_lang::load(file).map_err(|e| {
        eprintln!("error: cannot read `{}`: {}", file.display(), io_reason(&e));
        exit(EXIT_FAILURE)
    })?;
    let opts = Options {
        today: Some(today.unwrap_or_else(Date::today_utc)),
    };
    let mut analysis = wardgate_compiler::analyze(&loaded, &opts);
    let mut diags: Vec<Diagnostic> = loaded.diagnostics.clone();
    diags.extend(analysis.diagnostics.iter().cloned());
    let errors: Vec<Diagnostic> = diags
        .into_iter()
        .filter(|d| d.is_error() && !(requirement_errors_ok && d.code.starts_with("WG4")))
        .collect();
    let image = analysis.image.take().or_else(|| {
        let lowered = analysis.lowered.as_ref()?;
        PolicyImage::build(&analysis.policy, lowered).ok()
    });
    match image {
        Some(image) if errors.is_empty() => Ok(Compiled {
            analysis,
            image,
            sources: loaded.sources,
        }),
        _ => {
            eprint!(
                "{}",
                render::render(Format::Human, &errors, &loaded.sources, &all_codes())
            );
            eprintln!(
                "{}: {} error{}; run `wardgate check` for details",
                file.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            Err(exit(EXIT_PROBLEMS))
        }
    }
}

pub fn run(args: &Args) -> ExitCode {
    let nftables = match args.target.as_str() {
        "image" => false,
        "nftables" => true,
        other => {
            eprintln!("error: unknown target `{other}` (expected `image` or `nftables`)");
            return exit(EXIT_FAILURE);
        }
    };
    let compiled = match load(&args.file, args.today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let image = &compiled.image;
    if nftables {
        return write_nftables(args, image);
    }
    if let Err(e) = std::fs::write(&args.output, image.to_bytes()) {
        eprintln!(
            "error: cannot write `{}`: {}",
            args.output.display(),
            io_reason(&e)
        );
        return exit(EXIT_FAILURE);
    }
    outln!(
        "{}: {} zones, {} prefixes, {}, {} zone-pair tables, {} intervals; sha256:{}",
        args.output.display(),
        image.zones().len(),
        image.prefixes().len(),
        rules_summary(image),
        image.pairs().len(),
        image.intervals().len(),
        image.hash()
    );
    exit(EXIT_OK)
}

/// `--target nftables`: the ruleset of `wardgate_compiler::nft`.
fn write_nftables(args: &Args, image: &PolicyImage) -> ExitCode {
    let ruleset = wardgate_compiler::nft::render(image);
    if let Err(e) = std::fs::write(&args.output, &ruleset) {
        eprintln!(
            "error: cannot write `{}`: {}",
            args.output.display(),
            io_reason(&e)
        );
        return exit(EXIT_FAILURE);
    }
    outln!(
        "{}: nftables table `inet {}` for {} zones, {}; load with `nft -f {}`",
        args.output.display(),
        wardgate_compiler::nft::TABLE,
        image.zones().len(),
        rules_summary(image),
        args.output.display()
    );
    exit(EXIT_OK)
}

/// `25 rules` or `25 rules in force, 1 expired`: expired rules stay in the
/// image's rule list (for logs) but are not lowered, so they are not counted
/// as enforced.
fn rules_summary(image: &PolicyImage) -> String {
    let active = image.rules().iter().filter(|r| r.active).count();
    let expired = image.rules().len() - active;
    let rules = if active == 1 { "rule" } else { "rules" };
    if expired == 0 {
        format!("{active} {rules}")
    } else {
        format!("{active} {rules} in force, {expired} expired")
    }
}
