//! `cargo xtask bench NAME`: the benchmarks that need root and the kernel.
//!
//! - `forward`: packets per second through a veth gateway namespace with no
//!   filter, wardgate XDP (with and without the fast path) and nftables from
//!   the same policy (`bench/forward`, method in `bench/README.md`); writes
//!   `target/bench/forward.json`.
//! - `datapath`: not yet implemented here.

use anyhow::bail;

use crate::{setup, sh};

pub fn run(name: &str) -> anyhow::Result<()> {
    match name {
        "forward" => forward(),
        "datapath" => bail!("`cargo xtask bench datapath` is not yet implemented"),
        other => bail!("unknown benchmark `{other}` (expected `forward` or `datapath`)"),
    }
}

fn forward() -> anyhow::Result<()> {
    setup::ebpf_toolchain()?;
    setup::debian_packages()?;
    if !sh::is_root() {
        bail!("the forwarding benchmark needs root (namespaces, XDP, nftables)");
    }
    let out = sh::root().join("target/bench/forward.json");
    let out = out.to_str().unwrap_or("target/bench/forward.json");
    sh::cargo(&[
        "run",
        "--release",
        "--package",
        "wardgate-bench-forward",
        "--",
        out,
    ])
}
