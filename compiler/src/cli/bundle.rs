//! `wardgate keygen`, `wardgate bundle` and `wardgate verify-bundle`: signed
//! policy bundles for agents that pull their policy over HTTPS. The format
//! and the checks live in the `wardgate-bundle` crate (the agent uses it
//! too); this module is the command line around it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wardgate_bundle::Timestamp;
use wardgate_lang::date::Date;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_PROBLEMS, exit, io_reason, parse_date};

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Writes `NAME.key` (private, PKCS#8 PEM, mode 0600) and `NAME.pub` (public, SPKI PEM).
    #[arg(short, long, value_name = "NAME")]
    pub output: PathBuf,
}

#[derive(clap::Args)]
pub struct BundleArgs {
    /// The root policy file.
    pub file: PathBuf,
    /// The private key to sign with (from `wardgate keygen`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Where to write the bundle (a `.tar.gz`).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The bundle's revision: agents only activate a revision greater than theirs
    /// [default: the current time in seconds since 1970].
    #[arg(long, value_name = "N")]
    pub revision: Option<u64>,
    /// After this date (`YYYY-MM-DD`, UTC midnight) or RFC 3339 time, agents refuse the bundle.
    #[arg(long, value_parser = wardgate_bundle::parse_expires, value_name = "DATE")]
    pub expires: Option<Timestamp>,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The bundle to check.
    pub file: PathBuf,
    /// The public key it must be signed with.
    #[arg(long, value_name = "PUB")]
    pub key: PathBuf,
}

pub fn keygen(args: &KeygenArgs) -> ExitCode {
    let written = wardgate_bundle::generate_key()
        .and_then(|k| wardgate_bundle::write_key_pair(&args.output, &k).map(|p| (k, p)));
    match written {
        Ok((key, (private, public))) => {
            outln!(
                "wrote {} (private, keep it off the gateways) and {} (public, for `--trusted-key`); key id {}",
                private.display(),
                public.display(),
                wardgate_bundle::key_id(&key.verifying_key())
            );
            exit(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit(EXIT_FAILURE)
        }
    }
}

/// The policy's files as paths relative to the root file's directory.
fn source_files(root: &Path, sources: &wardgate_lang::SourceMap) -> Vec<(String, Vec<u8>)> {
    let base = root.parent().unwrap_or(Path::new(""));
    sources
        .iter()
        .map(|(path, text)| {
            let rel = path
                .strip_prefix(base)
                .ok()
                .filter(|r| {
                    r.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                })
                .map_or_else(
                    || {
                        path.file_name()
                            .map_or_else(|| "policy".into(), |n| n.to_string_lossy().into_owned())
                    },
                    |r| r.to_string_lossy().into_owned(),
                );
            (rel, text.as_bytes().to_vec())
        })
        .collect()
}

pub fn bundle(args: &BundleArgs) -> ExitCode {
    let key = match wardgate_bundle::read_signing_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return exit(EXIT_FAILURE);
        }
    };
    let compiled = match super::compile::load(&args.file, args.today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let image = compiled.image.to_bytes();
    let revision = args
        .revision
        .unwrap_or_else(|| u64::try_from(Timestamp::now().as_second()).unwrap_or(0));
    if revision == 0 {
        eprintln!("error: revision 0 is not allowed (agents activate revisions from 1 up)");
        return exit(EXIT_FAILURE);
    }
    let manifest = wardgate_bundle::manifest_for(&image, revision, args.expires);
    let mut files = source_files(&args.file, &compiled.sources);
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    let bytes = match wardgate_bundle::build(&manifest, &image, &files, &key) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit(EXIT_FAILURE);
        }
    };
    if let Err(e) = write_atomically(&args.output, &bytes) {
        eprintln!(
            "error: cannot write `{}`: {}",
            args.output.display(),
            io_reason(&e)
        );
        return exit(EXIT_FAILURE);
    }
    outln!(
        "{}: revision {}, {} source file{}, image sha256:{}{}; signed by {}",
        args.output.display(),
        revision,
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        manifest.image_sha256,
        manifest
            .expires
            .as_deref()
            .map(|e| format!(", expires {e}"))
            .unwrap_or_default(),
        wardgate_bundle::key_id(&key.verifying_key())
    );
    exit(EXIT_OK)
}

/// Writes a temporary file next to `path` and renames it over `path`: a web
/// server never serves half a bundle.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

pub fn verify(args: &VerifyArgs) -> ExitCode {
    let result = (|| {
        let key = wardgate_bundle::read_verifying_key(&args.key)?;
        let bytes = std::fs::read(&args.file).map_err(|e| {
            wardgate_bundle::Error::Archive(format!(
                "cannot read `{}`: {}",
                args.file.display(),
                io_reason(&e)
            ))
        })?;
        let v = wardgate_bundle::verify(&bytes, &key)?;
        v.manifest.check_fresh(Timestamp::now(), None)?;
        Ok::<_, wardgate_bundle::Error>(v)
    })();
    match result {
        Ok(v) => {
            outln!(
                "{}: good signature by {}; revision {}, created {}, {}; image sha256:{}, {} source file{}",
                args.file.display(),
                v.key_id,
                v.manifest.revision,
                v.manifest.created,
                v.manifest
                    .expires
                    .as_deref()
                    .map_or_else(|| "no expiry".to_owned(), |e| format!("expires {e}")),
                v.manifest.image_sha256,
                v.sources.len(),
                if v.sources.len() == 1 { "" } else { "s" }
            );
            exit(EXIT_OK)
        }
        Err(e @ wardgate_bundle::Error::Key(_)) => {
            eprintln!("error: {e}");
            exit(EXIT_FAILURE)
        }
        Err(e) => {
            eprintln!("error: `{}` refused: {e}", args.file.display());
            exit(EXIT_PROBLEMS)
        }
    }
}
