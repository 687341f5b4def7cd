//! `cargo xtask setup`: make the machine able to build and test wardgate.
//!
//! Idempotent: each step checks first and says what it found; a second run
//! changes nothing and says so. Facts behind the steps: the aya crates are
//! pinned to the last line that builds with the installed rustc; `cargo
//! install bpf-linker` alone finds Debian's LLVM 14 and fails, so bpf-linker
//! is linked against nightly's own libLLVM with the `llvm-N` feature read
//! from `rustc +nightly -vV`, and rebuilt when nightly changes.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, bail};

use crate::sh;

/// Debian packages the tests and the demo use: `ip` for namespaces and veth
/// links, `ping` for ICMP echo through them, `nft` for the nftables backend's
/// differential test and the forwarding benchmark; `nc` for the demo's
/// servers and clients, `nsenter` and `setsid` (util-linux) to run the agent
/// in the demo's gateway namespace and clean up after it.
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "nftables",
    "netcat-openbsd",
    "util-linux",
    // Turns off checksum offload on test veths: an XDP redirect drops the
    // skb's "checksum still to be done" note, so the fast-path test needs full checksums.
    "ethtool",
    // `cargo xtask bench nft` installs Aerleon from PyPI into a virtual environment.
    "python3-venv",
    // Real peers for the end-to-end tests: a DICOM client and server
    // (storescu, storescp), a web server serving policy bundles, Prometheus
    // and promtool for the fleet metrics, headless Chromium for the HTML
    // report, tcpdump for captures, capsh to run the agent with fewer capabilities.
    "dcmtk",
    "nginx",
    "prometheus",
    "chromium",
    "tcpdump",
    "libcap2-bin",
];

/// The bpf-linker release line known to build against nightly's LLVM here.
const BPF_LINKER_VERSION: &str = "~0.13";

/// Runs every step; prints a one-line summary when nothing needed doing.
pub fn all() -> anyhow::Result<()> {
    let mut changed = ebpf_toolchain_steps()?;
    changed |= debian_packages()?;
    if changed {
        println!("setup: done");
    } else {
        println!("setup: everything already in place, nothing to do");
    }
    Ok(())
}

/// Nightly with rust-src and bpf-linker: what building the XDP program needs.
pub fn ebpf_toolchain() -> anyhow::Result<()> {
    ebpf_toolchain_steps().map(|_| ())
}

fn ebpf_toolchain_steps() -> anyhow::Result<bool> {
    let mut changed = nightly()?;
    changed |= rust_src()?;
    changed |= bpf_linker()?;
    Ok(changed)
}

fn nightly_version() -> Option<String> {
    sh::output("rustup", &["run", "nightly", "rustc", "-vV"])
}

/// Installs nightly only if it is missing: reinstalling unconditionally could
/// move it to a newer LLVM and break bpf-linker.
fn nightly() -> anyhow::Result<bool> {
    if let Some(version) = nightly_version() {
        let release = version
            .lines()
            .find_map(|l| l.strip_prefix("release: "))
            .unwrap_or("?");
        println!("setup: nightly toolchain present ({release})");
        return Ok(false);
    }
    println!("setup: installing the nightly toolchain (the XDP program needs -Z build-std)");
    sh::run(
        "rustup",
        &["toolchain", "install", "nightly", "--profile", "minimal"],
    )?;
    Ok(true)
}

fn rust_src() -> anyhow::Result<bool> {
    let installed = sh::output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        println!("setup: nightly rust-src present");
        return Ok(false);
    }
    println!("setup: adding rust-src to nightly (to build `core` for bpfel-unknown-none)");
    sh::run(
        "rustup",
        &["component", "add", "rust-src", "--toolchain", "nightly"],
    )?;
    Ok(true)
}

fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cache/wardgate")
}

/// The LLVM major version nightly uses, from `rustc +nightly -vV`.
fn llvm_major(version: &str) -> anyhow::Result<u32> {
    version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.trim().parse().ok())
        .context("`rustc +nightly -vV` printed no LLVM version")
}

/// bpf-linker, built against the very libLLVM that nightly ships (Debian's
/// LLVM 14 is too old, and bpf-linker's default feature targets another LLVM).
/// A stamp records which nightly it was built for; a new nightly rebuilds it.
fn bpf_linker() -> anyhow::Result<bool> {
    let version = nightly_version().context("nightly toolchain missing")?;
    let stamp = cache_dir().join("bpf-linker.stamp");
    let works = sh::output("bpf-linker", &["--version"]).is_some();
    if works && fs::read_to_string(&stamp).is_ok_and(|s| s == version) {
        println!("setup: bpf-linker present, built for this nightly's LLVM");
        return Ok(false);
    }
    let major = llvm_major(&version)?;
    let sysroot = sh::output("rustup", &["run", "nightly", "rustc", "--print", "sysroot"])
        .context("nightly sysroot")?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let libllvm = fs::read_dir(&lib_dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
    println!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against nightly's {libllvm} (feature llvm-{major}, about a minute)"
    );
    let prefix = cache_dir().join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)?;
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(&libllvm)] {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(lib_dir.join(&libllvm), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    let feature = format!("llvm-{major}");
    sh::run_env(
        "cargo",
        &[
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            &feature,
        ],
        &[(
            "LLVM_PREFIX",
            prefix.to_str().context("non-UTF-8 cache path")?,
        )],
    )?;
    if sh::output("bpf-linker", &["--version"]).is_none() {
        bail!("bpf-linker was installed but does not run");
    }
    fs::write(&stamp, version)?;
    Ok(true)
}

fn installed(package: &str) -> bool {
    sh::output("dpkg-query", &["-W", "-f=${Status}", package])
        .is_some_and(|status| status.contains("install ok installed"))
}

/// The Debian packages the kernel tests and the demo use.
pub fn debian_packages() -> anyhow::Result<bool> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        println!(
            "setup: Debian packages present ({})",
            DEBIAN_PACKAGES.join(", ")
        );
        return Ok(false);
    }
    if !sh::is_root() {
        println!(
            "setup: missing Debian packages {}; run as root to install them (kernel tests will skip without them)",
            missing.join(", ")
        );
        return Ok(false);
    }
    println!("setup: installing Debian packages {}", missing.join(", "));
    sh::run("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    sh::run_env("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])?;
    Ok(true)
}
