//! Builds the XDP program (`ebpf/xdp`) for `bpfel-unknown-none` with the
//! nightly toolchain and bpf-linker (`cargo xtask setup` installs both), and
//! leaves the object in `OUT_DIR/wardgate-xdp` for `include_bytes_aligned!`.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ebpf/xdp")
        .canonicalize()
        .context("ebpf/xdp not found")?;
    let root = root.to_str().context("non-UTF-8 path to ebpf/xdp")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "wardgate-xdp",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the XDP program failed; run `cargo xtask setup` (nightly rust-src and bpf-linker)",
    )
}
