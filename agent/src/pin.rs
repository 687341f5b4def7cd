//! The agent's state under bpffs: every map of the program and one XDP link
//! per interface, pinned in one directory.
//!
//! Layout of the pin directory (default [`DEFAULT_PIN_DIR`]):
//! - one file per map, named as in `wardgate_common::maps::ALL` (`WG_CONFIG`, ...);
//! - one file per attached interface, `link_<mode>_<interface>` (`link_driver_eth1`):
//!   the XDP `bpf_link`. The mode is part of the name because a link cannot
//!   tell it, and an adopting agent must report it.
//!
//! While these pins exist the kernel keeps the program attached and its maps
//! alive, with no process holding them: enforcement survives the agent.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use std::os::fd::AsRawFd as _;

use anyhow::{Context as _, bail};
use wardgate_common::maps;

use crate::AttachMode;

/// Where the agent pins its maps and links unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/wardgate";

/// `statfs(2)` magic of bpffs (`include/uapi/linux/magic.h`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The filesystem magic of the filesystem holding `path`.
fn fs_magic(path: &Path) -> std::io::Result<i64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero `statfs` is a valid value (plain integers).
    #[allow(unsafe_code, reason = "statfs(2) has no safe wrapper in std")]
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `buf` a valid,
    // writable `statfs` that outlives the call.
    #[allow(unsafe_code, reason = "statfs(2) has no safe wrapper in std")]
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &raw mut buf) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is i64 on x86_64 but not on every target"
    )]
    Ok(buf.f_type as i64)
}

/// True if `path` is on bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    fs_magic(path).is_ok_and(|m| m == BPF_FS_MAGIC)
}

/// Checks that `dir` is (or can be created) on bpffs, and creates it.
/// Nothing else is touched when it is not.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    check(dir)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the pin directory `{}`", dir.display()))?;
    Ok(())
}

/// Checks that `dir`, or the nearest existing directory above it, is on bpffs.
pub fn check(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_absolute() {
        bail!(
            "the pin path `{}` must be absolute (a directory on bpffs, such as {DEFAULT_PIN_DIR})",
            dir.display()
        );
    }
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or_else(|| Path::new("/"));
    if !is_bpffs(existing) {
        bail!(
            "the pin path `{}` is not on bpffs (`{}` is not a bpf filesystem); \
             mount one with `mount -t bpf bpf /sys/fs/bpf` or choose a directory on bpffs",
            dir.display(),
            existing.display()
        );
    }
    Ok(())
}

/// The pin of map `name`.
pub fn map_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The pin of the XDP link of `iface` in `mode`.
pub fn link_path(dir: &Path, iface: &str, mode: AttachMode) -> PathBuf {
    dir.join(format!("link_{mode}_{iface}"))
}

/// A pinned link found in the pin directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedLinkFile {
    pub iface: String,
    pub mode: AttachMode,
    pub path: PathBuf,
}

/// Every pinned link in `dir`, sorted by interface.
pub fn links(dir: &Path) -> Vec<PinnedLinkFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PinnedLinkFile> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix("link_")?;
            let (mode, iface) = rest.split_once('_')?;
            let mode = match mode {
                "driver" => AttachMode::Driver,
                "generic" => AttachMode::Generic,
                _ => return None,
            };
            Some(PinnedLinkFile {
                iface: iface.to_owned(),
                mode,
                path: e.path(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.iface.cmp(&b.iface));
    found
}

/// True if a previous agent left its maps pinned in `dir`.
pub fn has_maps(dir: &Path) -> bool {
    map_path(dir, maps::CONFIG).exists()
}

/// What [`remove_all`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub links: Vec<String>,
    pub maps: usize,
}

/// Unpins every link (detaching the program from its interface once no
/// process holds the link) and every map, then removes `dir` if empty.
pub fn remove_all(dir: &Path) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    for link in links(dir) {
        std::fs::remove_file(&link.path)
            .with_context(|| format!("unpinning `{}`", link.path.display()))?;
        removed.links.push(link.iface);
    }
    for name in maps::ALL.iter().chain(maps::RETIRED) {
        let path = map_path(dir, name);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("unpinning `{}`", path.display()))?;
            removed.maps += 1;
        }
    }
    // Only an empty directory goes; anything else in it is not ours.
    let _ = std::fs::remove_dir(dir);
    Ok(removed)
}

/// Unpins the maps an older release pinned that this one no longer uses
/// (`maps::RETIRED`), once no interface runs that release's program: a
/// program keeps its maps while it is loaded, pinned or not. Returns their
/// names.
pub fn remove_retired(dir: &Path) -> anyhow::Result<Vec<&'static str>> {
    let mut removed = Vec::new();
    for name in maps::RETIRED {
        let path = map_path(dir, name);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("unpinning `{}`", path.display()))?;
            removed.push(*name);
        }
    }
    Ok(removed)
}

/// A shared `flock` on the pin directory, held while the agent runs: an
/// offline `detach` (or quarantine change) refuses while it is held.
pub struct PinLock {
    _dir: std::fs::File,
}

fn flock(file: &std::fs::File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid open descriptor.
    #[allow(unsafe_code, reason = "flock(2) has no safe wrapper in std")]
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl PinLock {
    /// Takes the running agent's (shared) lock on `dir`.
    pub fn hold(dir: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(dir)
            .with_context(|| format!("cannot open the pin directory `{}`", dir.display()))?;
        flock(&file, libc::LOCK_SH | libc::LOCK_NB)
            .with_context(|| format!("cannot lock the pin directory `{}`", dir.display()))?;
        Ok(Self { _dir: file })
    }

    /// Takes the exclusive lock of an offline operation on `dir`; fails
    /// while a running agent holds its lock.
    pub fn exclusive(dir: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(dir)
            .with_context(|| format!("cannot open the pin directory `{}`", dir.display()))?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Self { _dir: file }),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => bail!(
                "a running agent holds `{}` but did not answer on the control socket; \
                 nothing was changed (give its `--socket` or `--config`)",
                dir.display()
            ),
            Err(e) => Err(e).with_context(|| format!("cannot lock `{}`", dir.display())),
        }
    }
}
