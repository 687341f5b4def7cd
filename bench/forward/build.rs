//! Builds the benchmark's XDP programs (`bench/gen-xdp`) for
//! `bpfel-unknown-none`, exactly as `agent/build.rs` builds the datapath.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gen-xdp")
        .canonicalize()
        .context("bench/gen-xdp not found")?;
    let root = root.to_str().context("non-UTF-8 path to bench/gen-xdp")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "wardgate-bench-gen-xdp",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the benchmark's XDP programs failed; run `cargo xtask setup`")
}
