//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use crate::{setup, sh};

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
    sh::cargo(&["test", "--no-fail-fast"])?;
    println!("test: all checks passed");
    Ok(())
}
