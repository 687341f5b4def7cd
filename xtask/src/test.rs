//! `cargo xtask test`: everything CI checks, in the order that fails fastest.
//!
//! The XDP programs (`wardgate-xdp`, `wardgate-bench-gen-xdp`) are not default
//! members, so the workspace clippy never sees them; they are linted apart,
//! for `bpfel-unknown-none` with nightly and `-Z build-std=core`, the way
//! `agent/build.rs` (aya-build) builds them.

use crate::{setup, sh};

/// The crates that only build for the BPF target.
pub const BPF_CRATES: &[&str] = &["wardgate-xdp", "wardgate-bench-gen-xdp"];

pub fn run() -> anyhow::Result<()> {
    setup::ebpf_toolchain()?;
    setup::debian_packages()?;
    if !sh::is_root() {
        println!(
            "test: not running as root: privileged kernel tests will print `skipping:` (under CI=true they fail)"
        );
    }
    sh::cargo(&["fmt", "--all", "--", "--check"])?;
    sh::cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    bpf_clippy()?;
    sh::cargo(&["test", "--no-fail-fast"])?;
    println!("test: all checks passed");
    Ok(())
}

/// The `cargo clippy` arguments that lint the BPF crates as aya-build builds
/// them (its own target directory: another toolchain, another target).
pub fn bpf_clippy_args() -> Vec<&'static str> {
    let mut args = vec!["run", "nightly", "cargo", "clippy"];
    for krate in BPF_CRATES {
        args.extend(["--package", krate]);
    }
    args.extend([
        "--all-targets",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
        "target/clippy-bpf",
        "--",
        "-D",
        "warnings",
    ]);
    args
}

/// Clippy on the XDP programs, adding nightly's clippy first if the minimal
/// nightly profile left it out.
fn bpf_clippy() -> anyhow::Result<()> {
    let installed = sh::output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("clippy")) {
        println!("test: nightly clippy present");
    } else {
        println!("test: adding clippy to nightly (to lint the XDP programs)");
        sh::run(
            "rustup",
            &["component", "add", "clippy", "--toolchain", "nightly"],
        )?;
    }
    // aya-build passes the host architecture as `bpf_target_arch`.
    let cfg = format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH);
    sh::run_env(
        "rustup",
        &bpf_clippy_args(),
        &[("CARGO_ENCODED_RUSTFLAGS", &cfg)],
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::sh;

    /// The workspace's members, from the root manifest's `members` list.
    fn members() -> Vec<String> {
        let manifest = std::fs::read_to_string(sh::root().join("Cargo.toml")).expect("read");
        let list = manifest
            .split("members = [")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .expect("members list");
        list.split(',')
            .map(|m| m.trim().trim_matches('"').to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// Every crate takes the workspace lints; a crate's own `[lints.*]`
    /// table would silently drop them.
    #[test]
    fn every_crate_uses_the_workspace_lints() {
        let members = members();
        assert!(members.len() >= 9, "{members:?}");
        for member in members {
            let path = Path::new(&member).join("Cargo.toml");
            let manifest =
                std::fs::read_to_string(sh::root().join(&path)).expect("read member manifest");
            let lines: Vec<&str> = manifest.lines().map(str::trim).collect();
            assert!(
                !lines.iter().any(|l| l.starts_with("[lints.")),
                "{} has its own lints table",
                path.display()
            );
            let lints = lines
                .iter()
                .position(|l| *l == "[lints]")
                .unwrap_or_else(|| panic!("{} has no [lints]", path.display()));
            assert!(
                lines[lints + 1..]
                    .iter()
                    .take_while(|l| !l.starts_with('['))
                    .any(|l| l.replace(' ', "") == "workspace=true"),
                "{} does not take the workspace lints",
                path.display()
            );
        }
    }

    /// The BPF clippy names every crate that is not a default member.
    #[test]
    fn bpf_clippy_covers_every_crate_outside_the_default_members() {
        let manifest = std::fs::read_to_string(sh::root().join("Cargo.toml")).expect("read");
        let defaults = manifest
            .split("default-members = [")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .expect("default-members");
        let args = super::bpf_clippy_args();
        for member in members() {
            if defaults.contains(&format!("\"{member}\"")) {
                continue;
            }
            let manifest =
                std::fs::read_to_string(sh::root().join(&member).join("Cargo.toml")).expect("read");
            let name = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .expect("package name")
                .trim_matches('"');
            assert!(args.contains(&name), "`{name}` is not linted by bpf_clippy");
        }
    }
}
