//! `cargo xtask package`: the Debian package (`target/debian/wardgate_*.deb`)
//! built with cargo-deb from `[package.metadata.deb]` in `agent/Cargo.toml`:
//! `wardgate` and `wardgate-agent` in /usr/bin, the systemd unit
//! (`agent/debian/wardgate-agent.service`, installed but not enabled), the
//! example configs, the Prometheus examples and the deployment docs under
//! /usr/share/doc/wardgate. The package is checked with `dpkg-deb -c`
//! before this command succeeds.

use anyhow::{Context as _, bail};

use crate::{setup, sh};

/// The cargo-deb release line the package metadata is written for.
const CARGO_DEB_VERSION: &str = "^3";

/// Every file the package must hold (paths as `dpkg-deb -c` prints them).
pub const EXPECTED: &[&str] = &[
    "./usr/bin/wardgate",
    "./usr/bin/wardgate-agent",
    "./usr/lib/systemd/system/wardgate-agent.service",
    "./usr/share/doc/wardgate/deploy.md",
    "./usr/share/doc/wardgate/bundles.md",
    "./usr/share/doc/wardgate/agent.md",
    "./usr/share/doc/wardgate/examples/agent.yaml",
    "./usr/share/doc/wardgate/examples/agent-local.yaml",
    "./usr/share/doc/wardgate/examples/prometheus/wardgate-alerts.yml",
    "./usr/share/doc/wardgate/examples/prometheus/wardgate-dashboard.json",
];

/// cargo-deb, installed into `$CARGO_HOME/bin` when missing (as bpf-linker is).
fn cargo_deb() -> anyhow::Result<()> {
    if sh::output("cargo", &["deb", "--version"]).is_some() {
        println!("package: cargo-deb present");
        return Ok(());
    }
    println!("package: installing cargo-deb {CARGO_DEB_VERSION} (a few minutes, once)");
    sh::cargo(&[
        "install",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
        "--locked",
    ])
}

pub fn run() -> anyhow::Result<()> {
    setup::ebpf_toolchain()?;
    cargo_deb()?;
    sh::cargo(&[
        "build",
        "--release",
        "-p",
        "wardgate-agent",
        "-p",
        "wardgate-compiler",
        "--bin",
        "wardgate-agent",
        "--bin",
        "wardgate",
    ])?;
    sh::cargo(&["deb", "-p", "wardgate-agent", "--no-build"])?;
    let dir = sh::root().join("target/debian");
    let deb = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .context("cargo deb wrote no .deb")?;
    let listing = sh::output("dpkg-deb", &["-c", &deb.display().to_string()])
        .context("dpkg-deb -c failed")?;
    let missing: Vec<&&str> = EXPECTED
        .iter()
        .filter(|f| !listing.lines().any(|l| l.ends_with(**f)))
        .collect();
    if !missing.is_empty() {
        bail!("{} lacks {missing:?}:\n{listing}", deb.display());
    }
    println!(
        "package: {} ({} files checked)",
        deb.display(),
        EXPECTED.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(source, destination)` of every asset in `agent/Cargo.toml`.
    fn assets() -> Vec<(String, String)> {
        let manifest = std::fs::read_to_string(sh::root().join("agent/Cargo.toml")).unwrap();
        manifest
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("[\""))
            .map(|l| {
                let parts: Vec<&str> = l.split('"').collect();
                (parts[1].to_owned(), parts[3].to_owned())
            })
            .collect()
    }

    #[test]
    fn every_asset_exists_and_every_expected_file_has_one() {
        let assets = assets();
        assert!(assets.len() >= 9, "{assets:?}");
        for (source, _) in &assets {
            if source.starts_with("target/release/") {
                continue;
            }
            let path = sh::root().join("agent").join(source);
            assert!(path.is_file(), "asset `{source}` does not exist");
        }
        assert!(
            sh::root()
                .join("agent/debian/wardgate-agent.service")
                .is_file()
        );
        for expected in EXPECTED {
            let installed = expected.trim_start_matches("./");
            let covered = installed.ends_with("wardgate-agent.service")
                || assets.iter().any(|(source, dest)| {
                    dest == installed
                        || (dest.ends_with('/')
                            && Some(installed)
                                == source
                                    .rsplit('/')
                                    .next()
                                    .map(|name| format!("{dest}{name}"))
                                    .as_deref())
                });
            assert!(covered, "no asset installs `{installed}`");
        }
    }
}
