//! Turning the configured policy file into a verified image: a `.ward`
//! source is compiled (for today's date, so that `until` rules lower as they
//! should), an image file is verified. Pure apart from reading files: nothing
//! here touches the kernel, so a policy that fails here changes nothing.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use wardgate_compiler::{Options, PolicyImage, image::IMAGE_MAGIC};
use wardgate_lang::{Diagnostic, FileId, date::Date, render};

/// A policy ready to load.
pub struct Compiled {
    pub image: PolicyImage,
    /// Every file it was built from (the root, includes, inventories): the
    /// files to watch.
    pub files: Vec<PathBuf>,
    /// True for a `.ward` source (recompiled when the date changes), false for an image.
    pub source: bool,
    /// Warnings worth logging (not errors).
    pub warnings: Vec<String>,
}

/// Why a policy could not be used. The text is ready to show an operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// True if the file at `path` starts like a policy image.
fn is_image(path: &Path) -> std::io::Result<bool> {
    use std::io::Read as _;
    let mut head = [0u8; IMAGE_MAGIC.len()];
    let mut file = std::fs::File::open(path)?;
    let n = file.read(&mut head)?;
    Ok(n == head.len() && head == IMAGE_MAGIC.as_bytes())
}

/// Compiles or verifies the policy at `path`, for the rules in force on `today` (UTC).
pub fn compile(path: &Path, today: Date) -> Result<Compiled, PolicyError> {
    let io = |e: std::io::Error| PolicyError(format!("cannot read `{}`: {e}", path.display()));
    if is_image(path).map_err(io)? {
        let bytes = std::fs::read(path).map_err(io)?;
        let image = PolicyImage::from_bytes(&bytes)
            .map_err(|e| PolicyError(format!("`{}`: {e}", path.display())))?;
        let warnings = stale_rules(&image, today);
        return Ok(Compiled {
            image,
            files: vec![path.to_path_buf()],
            source: false,
            warnings,
        });
    }
    let loaded = wardgate_lang::load(path).map_err(io)?;
    let (image, diagnostics) = wardgate_compiler::compile(&loaded, &Options { today: Some(today) });
    let files = (0..loaded.sources.len())
        .map(|i| {
            let id = FileId(u32::try_from(i).unwrap_or(u32::MAX));
            loaded.sources.path(id).to_path_buf()
        })
        .collect();
    let errors: Vec<Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    match image {
        Some(image) if errors.is_empty() => {
            let count = diagnostics.len();
            let warnings = if count == 0 {
                Vec::new()
            } else {
                vec![format!(
                    "`{}`: {count} warning{}; run `wardgate check` for details",
                    path.display(),
                    if count == 1 { "" } else { "s" }
                )]
            };
            Ok(Compiled {
                image,
                files,
                source: true,
                warnings,
            })
        }
        _ => {
            let rendered = shorten_lines(&render::human(&errors, &loaded.sources));
            Err(PolicyError(format!(
                "`{}` does not compile ({} error{}):\n{}",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                rendered.trim_end()
            )))
        }
    }
}

/// Cuts over-long lines (a diagnostic quotes its source line, which can be
/// megabytes long in a generated policy) so that logs stay readable.
fn shorten_lines(text: &str) -> String {
    const MAX: usize = 240;
    text.lines()
        .map(|l| match l.char_indices().nth(MAX) {
            Some((i, _)) => format!("{}…", &l[..i]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rules an image keeps in force although their `until` date has passed: an
/// image is lowered on the day it was compiled and cannot expire rules itself.
fn stale_rules(image: &PolicyImage, today: Date) -> Vec<String> {
    image
        .rules()
        .iter()
        .filter(|r| r.active)
        .filter_map(|r| {
            let until: Date = r.until.as_deref()?.parse().ok()?;
            (until < today).then(|| {
                format!(
                    "{}:{}: rule expired on {until} but the image keeps it in force; \
                     recompile the image (or give the agent the `.ward` source)",
                    r.file, r.line
                )
            })
        })
        .collect()
}

/// What a file looked like when last read: changes are noticed by comparing these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp(Option<(SystemTime, u64, u64)>);

impl Stamp {
    pub fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self(std::fs::metadata(path).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        }))
    }
}

/// The stamps of `files`.
pub fn stamps(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    files.iter().map(|f| (f.clone(), Stamp::of(f))).collect()
}

/// True if any of the files changed since `stamps` were taken.
pub fn changed(stamps: &[(PathBuf, Stamp)]) -> bool {
    stamps.iter().any(|(path, stamp)| Stamp::of(path) != *stamp)
}

/// Today's date in UTC.
pub fn today() -> Date {
    Date::today_utc()
}

/// Time until the next UTC midnight, when `until` rules may expire.
pub fn until_next_midnight() -> std::time::Duration {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // One second past midnight, so that today_utc() has moved on.
    std::time::Duration::from_secs(86_400 - secs % 86_400 + 1)
}
