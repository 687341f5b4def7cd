//! Turning the configured policy file into a verified image: a `.ward`
//! source is compiled (for today's date, so that `until` rules lower as they
//! should), an image file is verified. Pure apart from reading files: nothing
//! here touches the kernel, so a policy that fails here changes nothing.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use wardgate_compiler::{Options, PolicyImage, image::IMAGE_MAGIC};
use wardgate_lang::{Diagnostic, date::Date, render};

/// The largest policy file (root, include or inventory) the agent reads.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// How many errors of a refused policy are rendered (the rest are counted).
const MAX_RENDERED_ERRORS: usize = 10;

/// A policy ready to load.
pub struct Compiled {
    pub image: PolicyImage,
    /// Every file it was built from (the root, includes, inventories), each
    /// with its stamp taken *before* it was read: the files to watch.
    pub stamps: Vec<(PathBuf, Stamp)>,
    /// True for a `.ward` source (recompiled when the date changes), false for an image.
    pub source: bool,
    /// Warnings worth logging (not errors).
    pub warnings: Vec<String>,
}

/// Why a policy could not be used. The text is ready to show an operator.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    pub message: String,
    /// The failure may pass without the files changing (too many open
    /// files, out of memory): worth retrying.
    pub transient: bool,
    /// The files read, with their stamps from before reading them.
    pub stamps: Vec<(PathBuf, Stamp)>,
}

impl PolicyError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            stamps: Vec::new(),
        }
    }
}

/// Errors that say nothing about the file itself.
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR | libc::ENOBUFS
        )
    )
}

/// Reads a file the agent depends on: a regular file (never a device, FIFO
/// or directory, which could block or never end) of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {limit} bytes"),
        )
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Compiles or verifies the policy at `path`, for the rules in force on `today` (UTC).
pub fn compile(path: &Path, today: Date) -> Result<Compiled, PolicyError> {
    let mut stamps: Vec<(PathBuf, Stamp)> = Vec::new();
    let mut transient = false;
    let result = compile_inner(path, today, &mut stamps, &mut transient);
    result.map_err(|mut e| {
        e.transient |= transient;
        e.stamps = stamps;
        e
    })
}

fn compile_inner(
    path: &Path,
    today: Date,
    stamps: &mut Vec<(PathBuf, Stamp)>,
    transient: &mut bool,
) -> Result<Compiled, PolicyError> {
    let io = |e: std::io::Error| PolicyError {
        transient: is_transient(&e),
        ..PolicyError::new(format!("cannot read `{}`: {e}", path.display()))
    };
    // The stamp is taken before reading: an edit made while this reads or
    // compiles changes the file's stamp and is noticed by the next check.
    stamps.push((path.to_path_buf(), Stamp::of(path)));
    let root = read_regular(path, MAX_FILE_BYTES).map_err(io)?;
    if root.starts_with(IMAGE_MAGIC.as_bytes()) {
        let image = PolicyImage::from_bytes(&root)
            .map_err(|e| PolicyError::new(format!("`{}`: {e}", path.display())))?;
        if image.zones().len() <= 1 {
            return Err(PolicyError::new(format!(
                "`{}` declares no zone; refusing it",
                path.display()
            )));
        }
        let warnings = stale_rules(&image, today);
        return Ok(Compiled {
            image,
            stamps: std::mem::take(stamps),
            source: false,
            warnings,
        });
    }
    let root_text = String::from_utf8(root)
        .map_err(|_| PolicyError::new(format!("`{}` is not UTF-8 text", path.display())))?;
    let mut root_text = Some(root_text);
    let mut read = |p: &Path| -> std::io::Result<String> {
        if let Some(text) = root_text.take() {
            // The loader reads the root first.
            return Ok(text);
        }
        stamps.push((p.to_path_buf(), Stamp::of(p)));
        let bytes = read_regular(p, MAX_FILE_BYTES).inspect_err(|e| {
            *transient |= is_transient(e);
        })?;
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    };
    let loaded = wardgate_lang::load_with(path, &mut read).map_err(io)?;
    if loaded.policy.zones.is_empty() && loaded.diagnostics.iter().all(|d| !d.is_error()) {
        return Err(PolicyError::new(format!(
            "`{}` declares no zone; refusing it (an empty or half-written file?)",
            path.display()
        )));
    }
    let (image, diagnostics) = wardgate_compiler::compile(&loaded, &Options { today: Some(today) });
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
                stamps: std::mem::take(stamps),
                source: true,
                warnings,
            })
        }
        _ => {
            let shown = &errors[..errors.len().min(MAX_RENDERED_ERRORS)];
            let mut rendered = shorten_lines(&render::human(shown, &loaded.sources));
            if errors.len() > shown.len() {
                rendered = format!(
                    "{}\n... and {} more errors; run `wardgate check` for all of them",
                    rendered.trim_end(),
                    errors.len() - shown.len()
                );
            }
            Err(PolicyError::new(format!(
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

/// The stamps of the files of `stamps`, now.
pub fn current(stamps: &[(PathBuf, Stamp)]) -> Vec<Stamp> {
    stamps.iter().map(|(path, _)| Stamp::of(path)).collect()
}

/// True if any of the files changed since `stamps` were taken.
pub fn changed(stamps: &[(PathBuf, Stamp)]) -> bool {
    stamps.iter().any(|(path, stamp)| Stamp::of(path) != *stamp)
}

/// Seconds added to the system clock for `until` decisions: zero, except in
/// debug builds started with `WARDGATE_AGENT_TEST_NOW=<RFC 3339 time>`,
/// which tests use to reach a UTC midnight in seconds. Release builds ignore it.
fn clock_offset_ms() -> i128 {
    static OFFSET: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        if !cfg!(debug_assertions) {
            return 0;
        }
        let Some(fake) = std::env::var("WARDGATE_AGENT_TEST_NOW")
            .ok()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        else {
            return 0;
        };
        i128::from(fake.as_millisecond()) - i128::from(jiff::Timestamp::now().as_millisecond())
    })
}

/// Milliseconds since the epoch by the policy clock.
fn now_ms() -> i128 {
    i128::from(jiff::Timestamp::now().as_millisecond()) + clock_offset_ms()
}

/// Today's date in UTC (by the policy clock).
pub fn today() -> Date {
    let days = i64::try_from(now_ms().div_euclid(86_400_000)).unwrap_or(0);
    Date::from_days_since_epoch(days).unwrap_or_else(Date::today_utc)
}

/// Time until just past the next UTC midnight, when `until` rules may expire.
pub fn until_next_midnight() -> std::time::Duration {
    let into_day = now_ms().rem_euclid(86_400_000);
    let left = u64::try_from(86_400_000 - into_day).unwrap_or(0);
    // A little past midnight, so that today() has moved on.
    std::time::Duration::from_millis(left + 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wg-policy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn today() -> Date {
        "2026-06-01".parse().unwrap()
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let err = read_regular(Path::new("/dev/zero"), MAX_FILE_BYTES).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = read_regular(Path::new("/tmp"), MAX_FILE_BYTES).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let path = temp("big.ward", &"#".repeat(100));
        let err = read_regular(&path, 10).unwrap_err();
        assert!(err.to_string().contains("larger than 10 bytes"), "{err}");
        assert_eq!(read_regular(&path, 100).unwrap().len(), 100);
    }

    #[test]
    fn zoneless_policies_are_refused() {
        for text in ["", "# nothing\n", "service web = tcp/443\n"] {
            let path = temp("empty.ward", text);
            let err = compile(&path, today()).err().expect("refused");
            assert!(err.message.contains("declares no zone"), "{}", err.message);
            assert!(!err.transient);
        }
    }

    #[test]
    fn many_errors_are_capped() {
        let mut text = String::from("zone a { hosts 10.0.0.1 }\n");
        for i in 0..50 {
            text.push_str(&format!("allow a -> missing{i} : tcp/22\n"));
        }
        let path = temp("errors.ward", &text);
        let err = compile(&path, today()).err().expect("refused");
        assert!(err.message.contains("(50 errors)"), "{}", err.message);
        assert!(
            err.message.contains("... and 40 more errors"),
            "{}",
            err.message
        );
        assert!(err.message.len() < 20_000, "{} bytes", err.message.len());
    }

    #[test]
    fn stamps_are_taken_before_reading() {
        let path = temp("stamped.ward", "zone a { hosts 10.0.0.1 }\n");
        let compiled = compile(&path, today()).expect("compiles");
        assert!(!changed(&compiled.stamps));
        std::fs::write(&path, "zone a { hosts 10.0.0.22 }\n").unwrap();
        assert!(changed(&compiled.stamps));
    }
}
