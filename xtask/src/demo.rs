//! `cargo xtask demo`: build everything and show wardgate's main job.

use crate::{setup, sh};

pub fn run() -> anyhow::Result<()> {
    setup::all()?;
    sh::cargo(&["build", "--release"])?;
    sh::run(
        "target/release/wardgate",
        &["check", "examples/hospital.ward"],
    )?;
    Ok(())
}
